package runnertest

import (
	"io"
	"io/fs"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

// modeSource is an input with a mode, as a [runner.ModeSource].
type modeSource struct {
	content string
	mode    fs.FileMode
}

func (m modeSource) Open() (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(m.content)), nil
}

func (m modeSource) Mode() fs.FileMode { return m.mode }

// modeCases: staged files keep the mode their source gives.
func modeCases() []Case {
	return []Case{
		{"InputFileMode", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{
				InputFiles: map[string]runner.Source{
					"run.sh":     modeSource{"#!/bin/sh\necho ran\n", 0o755},
					"bin/own.sh": modeSource{"#!/bin/sh\necho own\n", 0o700},
					"plain.txt":  text("plain"),
				},
				Commands: []string{"./run.sh", "./bin/own.sh", "test -r plain.txt && test ! -x plain.txt && echo plain"},
			})
			require.NoError(t, out.Err)
			assert.Equal(t, []string{"ran", "own", "plain"}, out.Texts(runner.Stdout))
		}},
		{"InputFileModeRefused", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{
				InputFiles: map[string]runner.Source{"suid": modeSource{"x", fs.ModeSetuid | 0o755}},
				Commands:   []string{"true"},
			})
			require.ErrorIs(t, out.Err, runner.ErrInvalidTask)
			var fe *runner.FieldError
			require.ErrorAs(t, out.Err, &fe)
			assert.Equal(t, "inputFiles", fe.Field)
			assert.Equal(t, "suid", fe.Value)
		}},
	}
}
