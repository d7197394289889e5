package runnertest

import (
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

// templateText is a [runner.TemplateSource] of the suite's own.
type templateText string

func (s templateText) Open() (io.ReadCloser, error) { return text(s).Open() }
func (s templateText) Template() string             { return string(s) }

var _ runner.TemplateSource = templateText("")

// scriptCases: Kestra's fail-fast default, beforeCommands, templates in
// input files, and templates turned off.
func scriptCases() []Case {
	return []Case{
		{"FailFastByDefault", func(t *testing.T, s *Suite) {
			// Kestra's script tasks begin with set -e: the first failing
			// command ends the script with its status.
			out := s.Exec(t, t.Context(), runner.Task{Commands: []string{"no-such-command-lading", "echo 1"}})
			requireExit(t, out, 127)
			assert.Empty(t, out.Texts(runner.Stdout), "the command after the failing one does not run")
		}},
		{"FailFastOff", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{DisableFailFast: true, Commands: []string{"no-such-command-lading", "echo 1"}})
			require.NoError(t, out.Err)
			assert.Equal(t, 0, out.Result.ExitCode)
			assert.Equal(t, []string{"1"}, out.Texts(runner.Stdout))
		}},
		{"FailFastOnlyForShells", func(t *testing.T, s *Suite) {
			// echo is not a shell: it gets the script as written, with no
			// set -e line, and the before commands first.
			out := s.Exec(t, t.Context(), runner.Task{Interpreter: []string{"echo"}, BeforeCommands: []string{"before"}, Commands: []string{"a", "b"}})
			require.NoError(t, out.Err)
			assert.Equal(t, []string{"before", "a", "b"}, out.Texts(runner.Stdout))
		}},
		{"BeforeCommandsRunFirstInTheSameShell", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{
				BeforeCommands: []string{"X=set-before", "echo before"},
				Commands:       []string{`echo "$X"`},
			})
			require.NoError(t, out.Err)
			assert.Equal(t, []string{"before", "set-before"}, out.Texts(runner.Stdout))
		}},
		{"FailingBeforeCommandStopsTheScript", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{BeforeCommands: []string{"exit 3", "echo before"}, Commands: []string{"echo command"}})
			requireExit(t, out, 3)
			assert.Empty(t, out.Texts(runner.Stdout))
			out = s.Exec(t, t.Context(), runner.Task{BeforeCommands: []string{"false"}, Commands: []string{"echo command"}})
			requireExit(t, out, 1)
			assert.Empty(t, out.Texts(runner.Stdout), "set -e comes before the before commands")
		}},
		{"BeforeCommandsAreTemplates", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{
				Vars:           map[string]any{"inputs": map[string]any{"pkg": "tool"}},
				BeforeCommands: []string{"echo install {{ inputs.pkg }}"},
				Commands:       []string{"echo run {{ inputs.pkg }}"},
			})
			require.NoError(t, out.Err)
			assert.Equal(t, []string{"install tool", "run tool"}, out.Texts(runner.Stdout))
			out = s.Exec(t, t.Context(), runner.Task{BeforeCommands: []string{"echo {{ inputs.pkg }}"}, Commands: []string{"true"}})
			requireInvalid(t, out, "beforeCommands[0]")
		}},
		{"TemplatesDisabled", func(t *testing.T, s *Suite) {
			// A CI script's own template syntax reaches the script byte
			// for byte.
			const inspect = `docker inspect --format "{{ .State.Status }}"`
			out := s.Exec(t, t.Context(), runner.Task{
				DisableTemplates: true,
				Env:              map[string]string{"FORMAT": "{{.ID}}"},
				BeforeCommands:   []string{`docker() { printf '%s|' "$@"; echo; }`},
				Commands:         []string{inspect, `printf '%s\n' "$FORMAT"`},
			})
			require.NoError(t, out.Err)
			assert.Equal(t, []string{"inspect|--format|{{ .State.Status }}|", "{{.ID}}"}, out.Texts(runner.Stdout))
		}},
		{"InputFileTemplates", func(t *testing.T, s *Suite) {
			raw := "{{ inputs.name }} {% if %}"
			binary := string([]byte{0, 0xff, '{', '{', ' ', 'x', ' ', '}', '}', 0xfe, '\n'})
			out := s.Exec(t, t.Context(), runner.Task{
				Vars: map[string]any{"inputs": map[string]any{"name": "lading"}},
				InputFiles: map[string]runner.Source{
					"conf/app.yml": templateText("dir: {{ workingDir }}\nout: {{ outputDir }}\nname: {{ inputs.name }}\n"),
					"raw.txt":      text(raw),
					"bin.dat":      text(binary),
				},
				// Untouched inputs are not outputs: the script copies what
				// it was given into the output directory.
				Commands: []string{`echo "$WORKING_DIR"`, `echo "$OUTPUT_DIR"`, "cat conf/app.yml", `cp raw.txt bin.dat "$OUTPUT_DIR"/`},
			})
			require.NoError(t, out.Err)
			lines := out.Texts(runner.Stdout)
			require.Len(t, lines, 5)
			assert.Equal(t, []string{"dir: " + lines[0], "out: " + lines[1], "name: lading"}, lines[2:])
			got := readOutputs(t, out.Result)
			assert.Equal(t, raw, got["raw.txt"], "a source that is not a template is staged as it is")
			assert.Equal(t, binary, got["bin.dat"], "a binary source is staged byte for byte")
		}},
		{"InputFileTemplateErrorsNameTheFile", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{
				InputFiles: map[string]runner.Source{"conf/app.yml": templateText("name: {{ inputs.nmae }}\n")},
				Commands:   []string{"echo ran"},
			})
			require.ErrorIs(t, out.Err, runner.ErrInvalidTask)
			var fe *runner.FieldError
			require.ErrorAs(t, out.Err, &fe)
			assert.Equal(t, "inputFiles.conf/app.yml", fe.Field)
			assert.Contains(t, fe.Problem, "inputs.nmae")
			assert.Nil(t, out.Result, "nothing ran")
		}},
		{"InputFileTemplatesDisabled", func(t *testing.T, s *Suite) {
			const tpl = `{{ .State.Status }} {{ workingDir }}`
			out := s.Exec(t, t.Context(), runner.Task{
				DisableTemplates: true,
				InputFiles:       map[string]runner.Source{"fmt.txt": templateText(tpl)},
				Commands:         []string{"cat fmt.txt"},
			})
			require.NoError(t, out.Err)
			assert.Equal(t, []string{tpl}, out.Texts(runner.Stdout))
		}},
	}
}
