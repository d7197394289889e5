package runnertest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

// producedCases: output files are the ones the run produced, and a glob
// that matched none of them says so.
func producedCases() []Case {
	return []Case{
		{"OnlyProducedFilesAreOutputs", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{
				InputFiles:  map[string]runner.Source{"in.txt": text("in"), "edit.txt": text("e")},
				OutputFiles: []string{"*.txt"},
				Commands:    []string{"echo more >> edit.txt", "echo new > new.txt"},
			})
			require.NoError(t, out.Err)
			assert.Equal(t, map[string]string{"edit.txt": "emore\n", "new.txt": "new\n"}, readOutputs(t, out.Result))
			data, err := os.ReadFile(filepath.Join(out.Result.WorkingDir, "in.txt"))
			require.NoError(t, err)
			assert.Equal(t, "in", string(data), "the untouched input is still there, not an output")
		}},
		{"LaterRunListsOnlyItsOwnFiles", func(t *testing.T, s *Suite) {
			dir := t.TempDir()
			first := s.Exec(t, t.Context(), runner.Task{WorkingDir: dir, OutputFiles: []string{"*.txt"}, Commands: []string{"echo 1 > first.txt"}})
			require.NoError(t, first.Err)
			second := s.Exec(t, t.Context(), runner.Task{WorkingDir: dir, OutputFiles: []string{"*.txt"}, Commands: []string{"cat first.txt > second.txt"}})
			require.NoError(t, second.Err)
			assert.Equal(t, map[string]string{"second.txt": "1\n"}, readOutputs(t, second.Result))
		}},
		{"UnmatchedGlobWarns", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{OutputFiles: []string{"*.csv", "a.txt"}, Commands: []string{"echo a > a.txt"}})
			require.NoError(t, out.Err)
			var named []string
			for _, w := range out.Result.Warnings {
				if strings.Contains(w, `"*.csv"`) || strings.Contains(w, `"a.txt"`) {
					named = append(named, w)
				}
			}
			require.Len(t, named, 1, "one warning, for the glob that matched nothing: %q", out.Result.Warnings)
			assert.Contains(t, named[0], `"*.csv"`)
		}},
	}
}
