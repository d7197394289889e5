package runnertest

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

// templateValues are the character classes a shell script may carry
// (NUL aside, which environment variables cannot hold).
var templateValues = map[string]string{
	"html":      `a&b<c>"d'e`,
	"quotes":    `'single' "double" ` + "`back`",
	"backslash": `C:\path\n\t\\ end\`,
	"dollar":    `$HOME ${PATH} $(id) $((1+1))`,
	"newline":   "line1\nline2\r\nline3",
	"unicode":   "héllo wörld ✓ 日本語 🚀 \u00a0",
	"entities":  "&amp; &lt; &#39; &quot;",
	"operators": "a; b && c || d | e > f < g 2>&1 * ? [ab]",
}

// templateCases: how commands, env values and output globs are rendered.
func templateCases() []Case {
	return []Case{
		{"TemplateValuesAreNotEscaped", func(t *testing.T, s *Suite) {
			vals := map[string]any{}
			env := map[string]string{}
			var commands []string
			want := map[string]string{}
			names := make([]string, 0, len(templateValues))
			for name := range templateValues {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				vals[name] = templateValues[name]
				env["V_"+strings.ToUpper(name)] = "{{ v." + name + " }}"
				// A quoted here-document takes the rendered command as it
				// is; the env value comes back through printf.
				commands = append(commands,
					"cat > {{ outputDir }}/"+name+".cmd <<'LADING_END'\n{{ v."+name+" }}\nLADING_END",
					`printf '%s' "$V_`+strings.ToUpper(name)+`" > {{ outputDir }}/`+name+".env")
				want[name+".cmd"] = templateValues[name] + "\n"
				want[name+".env"] = templateValues[name]
			}
			glob := `a&b<c>"d'e.txt`
			env["GLOB_FILE"] = "{{ glob }}"
			commands = append(commands, `printf globbed > "$GLOB_FILE"`,
				`[ "{{ secret('TOKEN') }}" = "$TOKEN" ] && echo secret-function-ok`,
				"cat <<'LADING_END'\nsecret: {{ secret('TOKEN') }}\nLADING_END")
			want[glob] = "globbed"
			out := s.Exec(t, t.Context(), runner.Task{
				Vars:        map[string]any{"v": vals, "glob": glob},
				Env:         env,
				Secrets:     map[string]string{"TOKEN": "tok&<en>'x"},
				OutputFiles: []string{"{{ glob }}"},
				Commands:    commands,
			})
			require.NoError(t, out.Err)
			assert.Equal(t, want, readOutputs(t, out.Result))
			assert.Equal(t, []string{"secret-function-ok", "secret: ****"}, out.Texts(runner.Stdout), "a rendered secret is masked like any")
			assert.NotContains(t, out.Stdout, "tok&<en>'x")
		}},
		{"TemplateUndefinedFunctionFailsBeforeStart", func(t *testing.T, s *Suite) {
			for _, tt := range []struct{ cmd, name string }{
				{"rm -rf {{ secret('DATA_DIR') }}/", "DATA_DIR"},
				{"echo {{ now() }}", "now"},
				{"echo {{ nofunc(1) }}", "nofunc"},
				{"echo {{ x|nofilter }}", "nofilter"},
			} {
				cmd := tt.cmd
				var stages []runner.Stage
				out := s.Exec(t, t.Context(), runner.Task{
					Vars:     map[string]any{"x": "y"},
					Commands: []string{"echo ok", cmd},
					OnEvent:  func(e runner.Event) { stages = append(stages, e.Stage) },
				})
				require.ErrorIs(t, out.Err, runner.ErrInvalidTask, cmd)
				var fe *runner.FieldError
				require.ErrorAs(t, out.Err, &fe, cmd)
				assert.Equal(t, "commands[1]", fe.Field, cmd)
				assert.Contains(t, out.Err.Error(), tt.name, cmd)
				assert.Nil(t, out.Result, cmd)
				assert.NotContains(t, stages, runner.StageCreating, cmd)
				assert.NotContains(t, stages, runner.StageRunning, cmd)
			}
		}},
		{"TemplateNumbersRenderAsWritten", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{
				Vars: map[string]any{"outputs": map[string]any{"step": map[string]any{
					"n": int64(2), "f": 1.5, "whole": 2.0, "big": json.Number("9007199254740993"), "l": []any{0.25, int64(7)},
				}}},
				Commands: []string{"echo {{ outputs.step.n }} {{ outputs.step.f }} {{ outputs.step.whole }} {{ outputs.step.big }} {{ outputs.step.l.0 }}",
					"echo '{{ outputs.step|json }}'"},
			})
			require.NoError(t, out.Err)
			assert.Equal(t, []string{"2 1.5 2 9007199254740993 0.25", `{"big":9007199254740993,"f":1.5,"l":[0.25,7],"n":2,"whole":2}`}, out.Texts(runner.Stdout))
		}},
		{"TemplateRenderHonoursTimeout", func(t *testing.T, s *Suite) {
			list := make([]any, 1000)
			for i := range list {
				list[i] = int64(i)
			}
			ctx, cancel := context.WithTimeout(t.Context(), liveness)
			defer cancel()
			out := s.Exec(t, ctx, runner.Task{
				Vars:     map[string]any{"l": list},
				Timeout:  time.Second,
				Commands: []string{"echo {% for a in l %}{% for b in l %}{% for c in l %}{% endfor %}{% endfor %}{% endfor %}"},
			})
			require.Error(t, out.Err)
			assert.True(t, errors.Is(out.Err, runner.ErrTimeout), "the task's Timeout stops the render: %v", out.Err)
			assert.NoError(t, ctx.Err(), "Run returned within the liveness bound")
		}},
		{"TemplateRenderIsCapped", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{
				Vars:     map[string]any{"s": "0123456789"},
				Env:      map[string]string{"BIG": "{% set x = s %}{% for c in s|rjust:64|make_list %}{% set x = x + x %}{% endfor %}{{ x }}"},
				Commands: []string{"echo {% lorem 20000000 w %}"},
			})
			require.ErrorIs(t, out.Err, runner.ErrInvalidTask)
			out = s.Exec(t, t.Context(), runner.Task{
				Vars:     map[string]any{"s": "0123456789"},
				Env:      map[string]string{"BIG": "{% set x = s %}{% for c in s|rjust:64|make_list %}{% set x = x + x %}{% endfor %}{{ x }}"},
				Commands: []string{"echo ok"},
			})
			require.ErrorIs(t, out.Err, runner.ErrInvalidTask)
			var fe *runner.FieldError
			require.ErrorAs(t, out.Err, &fe)
			assert.Equal(t, "env.BIG", fe.Field)
		}},
	}
}
