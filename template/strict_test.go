package template

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"github.com/flosch/pongo2/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

// shellValues holds every character class a shell script may carry.
var shellValues = map[string]string{
	"html":       `a&b<c>"d'e`,
	"quotes":     `'single' "double" ` + "`back`",
	"backslash":  `C:\path\n\t\\ end\`,
	"dollar":     `$HOME ${PATH} $(id) $((1+1))`,
	"newline":    "line1\nline2\r\nline3\n",
	"unicode":    "héllo wörld ✓ 日本語 🚀 \u00a0\u200b",
	"entities":   "&amp; &lt; &#39; &quot;",
	"braces":     "{} {a} %} }}",
	"semicolons": "a; b && c || d | e > f < g 2>&1",
	"glob":       "*.txt [ab]?.csv **/x",
}

func TestNothingIsEscaped(t *testing.T) {
	vars := map[string]any{"v": map[string]any{}}
	for k, v := range shellValues {
		vars["v"].(map[string]any)[k] = v
	}
	r := New(vars, Options{Secrets: map[string]string{"S": `p&ss<w>"o'rd`}})
	for name, want := range shellValues {
		t.Run(name, func(t *testing.T) {
			for _, tpl := range []string{
				"{{ v." + name + " }}",
				"{{ v." + name + "|default:'x' }}",
				"{% with x=v." + name + " %}{{ x }}{% endwith %}",
				"{% set x = v." + name + " %}{{ x }}",
				"{% for x in v." + name + "|make_list %}{{ x }}{% endfor %}",
				"{{ v." + name + " + '' }}",
			} {
				got, err := r.Render(t.Context(), "commands[0]", tpl)
				require.NoError(t, err, tpl)
				assert.Equal(t, want, got, tpl)
			}
		})
	}
	got, err := r.Render(t.Context(), "env.X", "{{ secret('S') }}")
	require.NoError(t, err)
	assert.Equal(t, `p&ss<w>"o'rd`, got)
	got, err = r.Render(t.Context(), "env.X", `{{ "<&>" }}`)
	require.NoError(t, err)
	assert.Equal(t, "<&>", got, "literals are not escaped either")
}

func TestAutoescapeTagIsRefused(t *testing.T) {
	for _, in := range []string{
		"{% autoescape on %}{{ workingDir }}{% endautoescape %}",
		"{% endautoescape %}{{ workingDir }}",
	} {
		_, err := Render(in, vars)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), "autoescape", in)
	}
}

func TestUndefinedFunctionIsAnError(t *testing.T) {
	tests := []struct{ in, name, hint string }{
		{"rm -rf {{ secret('DATA_DIR') }}/", "DATA_DIR", "no secrets"},
		{"echo {{ now() }}", "now", "date"},
		{"echo {{ nowhere() }}", "nowhere", "secret"},
		{"{% if later() %}x{% endif %}", "later", "secret"},
		{"{{ inputs.file|default:missing() }}", "missing", "secret"},
		{"{{ missing()|default:'x' }}", "missing", "secret"},
		{"{{ range(0, 3) }}", "range", "for x in"},
		{"{{ inputs.missing() }}", "inputs.missing", "undefined"},
		{"{{ inputs.file|nofilter }}", "nofilter", ""},
		{"{% notatag %}", "notatag", ""},
		{"{% raw %}{{ x }}{% endraw %}", "raw", "verbatim"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			out, err := New(vars, Options{}).Render(t.Context(), "commands[3]", tt.in)
			require.Error(t, err, "rendered %q", out)
			require.ErrorIs(t, err, runner.ErrInvalidTask)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "commands[3]", fe.Field)
			assert.Contains(t, err.Error(), tt.name)
			assert.Contains(t, err.Error(), tt.hint)
		})
	}
}

func TestSecretFunction(t *testing.T) {
	r := New(vars, Options{Secrets: map[string]string{"DATA_DIR": "/data", "TOKEN": "t0k3n-value"}})
	got, err := r.Render(t.Context(), "commands[0]", "rm -rf {{ secret('DATA_DIR') }}/x")
	require.NoError(t, err)
	assert.Equal(t, "rm -rf /data/x", got)

	_, err = r.Render(t.Context(), "commands[0]", "{{ secret('NOPE') }}")
	require.ErrorIs(t, err, runner.ErrInvalidTask)
	assert.Contains(t, err.Error(), "NOPE")
	assert.Contains(t, err.Error(), "DATA_DIR, TOKEN", "names the secrets there are")
	assert.NotContains(t, err.Error(), "t0k3n-value")
	assert.NotContains(t, err.Error(), "/data")

	// A variable named secret hides the function.
	got, err = New(map[string]any{"secret": "plain"}, Options{}).Render(t.Context(), "f", "{{ secret }}")
	require.NoError(t, err)
	assert.Equal(t, "plain", got)
}

func TestPebbleSyntaxSaysWhatToWrite(t *testing.T) {
	tests := []struct{ in, hint string }{
		{"{{ inputs.file ~ '.bak' }}", "{{ a + b }}"},
		{"{{ missing ?? 'x' }}", "default:'fallback'"},
		{"{{ missing | default('x') }}", "name:arg"},
		{"{{ missing is defined }}", "{% if x %}"},
		{"{% lorem 20000000 w %}", "refused"},
		{"{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Render(tt.in, vars)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.hint)
		})
	}
	got, err := Render("{{ inputs.file + '.bak' }}", vars)
	require.NoError(t, err)
	assert.Equal(t, "data.csv.bak", got)
}

func TestJSONFilter(t *testing.T) {
	v := map[string]any{"o": map[string]any{
		"n": int64(2), "f": 1.5, "big": json.Number("123456789012345678901234567890"),
		"s": `a&b<c>"d'e`, "l": []any{int64(1), 2.5, "x"}, "whole": 2.0,
	}}
	for _, filter := range []string{"json", "toJson"} {
		got, err := Render("{{ o|"+filter+" }}", v)
		require.NoError(t, err)
		assert.Equal(t, `{"big":123456789012345678901234567890,"f":1.5,"l":[1,2.5,"x"],"n":2,"s":"a&b<c>\"d'e","whole":2}`, got)
	}
	got, err := Render("{{ o.l|json }} {{ o.s|json }}", v)
	require.NoError(t, err)
	assert.Equal(t, `[1,2.5,"x"] "a&b<c>\"d'e"`, got)
}

func TestNumbersRenderAsWritten(t *testing.T) {
	v := map[string]any{
		"i": int64(2), "f": 1.5, "whole": 2.0, "big": json.Number("9007199254740993"),
		"huge": json.Number("123456789012345678901234567890"), "tiny": 1e-7, "large": 1e21,
		"outputs": map[string]any{"step": map[string]any{"n": int64(2), "x": 0.1, "l": []any{3.25, int64(4)}, "ok": true}},
		"yes":     true, "no": false,
	}
	tests := []struct{ in, want string }{
		{"{{ i }}", "2"},
		{"{{ f }}", "1.5"},
		{"{{ whole }}", "2"},
		{"{{ big }}", "9007199254740993"},
		{"{{ huge }}", "123456789012345678901234567890"},
		{"{{ tiny }}", "1e-7"},
		{"{{ large }}", "1e+21"},
		{"{{ outputs.step.n }} {{ outputs.step.x }}", "2 0.1"},
		{"{{ outputs.step.l.0 }} {{ outputs.step.l.1 }}", "3.25 4"},
		{"{% for x in outputs.step.l %}{{ x }},{% endfor %}", "3.25,4,"},
		{"{% if f > 1 %}gt{% endif %} {{ f|floatformat:2 }}", "gt 1.50"},
		{"{{ i + 1 }}", "3"},
		{"{{ f * 2 }} {{ 1.5 }} {{ 10 / 4.0 }} {{ f + i }}", "3 1.5 2.5 3.5"},
		{"{{ yes }} {{ no }} {% if yes %}y{% endif %}{% if not no %}n{% endif %} {{ outputs.step.ok }}", "true false yn true"},
		{"{{ yes|json }} {{ outputs.step|json }}", `true {"l":[3.25,4],"n":2,"ok":true,"x":0.1}`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Render(tt.in, v)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
	assert.Equal(t, 1.5, v["f"], "Vars are not modified")
}

func TestRenderHonoursContext(t *testing.T) {
	list := make([]any, 1000)
	for i := range list {
		list[i] = int64(i)
	}
	v := map[string]any{"l": list}
	ctx, cancel := context.WithCancelCause(t.Context())
	cause := context.Canceled
	cancel(cause)
	_, err := New(v, Options{}).Render(ctx, "commands[0]", "{{ l.0 }}")
	require.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, runner.ErrInvalidTask)

	// A billion iterations that write nothing: only the context can stop them.
	ctx, cancel2 := context.WithTimeout(t.Context(), 100*millisecond)
	defer cancel2()
	_, err = New(v, Options{}).Render(ctx, "commands[0]",
		"{% for a in l %}{% for b in l %}{% for c in l %}{% endfor %}{% endfor %}{% endfor %}")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "commands[0]")
}

func TestRenderIsCapped(t *testing.T) {
	list := make([]any, 1000)
	for i := range list {
		list[i] = int64(i)
	}
	v := map[string]any{"l": list, "s": "0123456789"}
	tests := []struct{ name, in string }{
		{"output", "{% for a in l %}{% for b in l %}{{ s }}{% endfor %}{% endfor %}"},
		{"doubling", "{% set x = s %}{% for a in l %}{% set x = x + x %}{% endfor %}{{ x|length }}"},
		{"filter chain", `{% set x = "\\" %}{% for a in l %}{% set x = x|addslashes %}{% endfor %}`},
		{"rjust", "{{ s|rjust:2000000000 }}"},
		{"stringformat", "{{ 1|stringformat:'%02000000000d' }}"},
		{"make_list", "{% for c in s|rjust:1000000|make_list %}{% endfor %}"},
		{"split", "{% for c in s|rjust:1000000|split:'' %}{% endfor %}"},
		{"join", "{% set sep = s|rjust:2000 %}{{ l|join:sep }}"},
		{"lorem", "{% lorem 20000000 w %}"},
		{"nesting", "{{ " + repeat("(", 100000) + "1" + repeat(")", 100000) + " }}"},
		{"blocks", repeat("{%if s%}", 50000) + "x" + repeat("{%endif%}", 50000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(v, Options{}).Render(t.Context(), "env.BIG", tt.in)
			require.ErrorIs(t, err, runner.ErrInvalidTask)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "env.BIG", fe.Field)
			assert.LessOrEqual(t, len(err.Error()), 1000, "the error quotes a shortened template")
		})
	}
	got, err := New(v, Options{MaxSize: 25}).Render(t.Context(), "f", "{{ s }}{{ s }}")
	require.NoError(t, err, "exactly at a cap of 25 is fine")
	assert.Equal(t, "01234567890123456789", got)
	_, err = New(v, Options{MaxSize: 25}).Render(t.Context(), "f", "{{ s }}{{ s }}{{ s }}")
	require.ErrorIs(t, err, runner.ErrInvalidTask)
	assert.Contains(t, err.Error(), "25")
}

const millisecond = 1000000

func repeat(s string, n int) string {
	out := make([]byte, 0, len(s)*n)
	for range n {
		out = append(out, s...)
	}
	return string(out)
}

func TestInvalidVariableNameIsNamedNotItsValue(t *testing.T) {
	_, err := New(map[string]any{"my-var": "value-not-quoted"}, Options{}).Render(t.Context(), "commands[0]", "{{ workingDir }}")
	require.ErrorIs(t, err, runner.ErrInvalidTask)
	assert.Contains(t, err.Error(), "my-var")
	assert.NotContains(t, err.Error(), "value-not-quoted")
}

// A program that registered a pongo2 filter named json before lading's
// first render keeps its own; templates that use the name fail rather
// than render with a filter lading does not know. The registration is
// once per process, so the case runs in a child process.
func TestForeignJSONFilter(t *testing.T) {
	if os.Getenv("LADING_TEST_FOREIGN_JSON") == "1" {
		require.NoError(t, pongo2.RegisterFilter("json", func(in, _ *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
			return pongo2.AsValue("theirs"), nil
		}))
		_, err := Render("{{ inputs.file|json }}", vars)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "another package")
		got, err := Render("{{ inputs.file|toJson }}", vars)
		require.NoError(t, err)
		assert.Equal(t, `"data.csv"`, got, "toJson is still lading's")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestForeignJSONFilter$", "-test.count=1")
	cmd.Env = append(os.Environ(), "LADING_TEST_FOREIGN_JSON=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// A subscript written as a literal is checked like a dotted name: a missing
// key or an index past the end is an error, never an empty string (a
// workflow's outputs.t1.outputFiles['typo.csv'] rendered "" before).
func TestLiteralSubscriptsAreChecked(t *testing.T) {
	vars := map[string]any{
		"outputs": map[string]any{"t1": map[string]any{"outputFiles": map[string]any{"a.csv": "/w/a.csv"}}},
		"list":    []any{"zero", "one"},
		"k":       "a.csv",
	}
	good := map[string]string{
		"{{ outputs.t1.outputFiles['a.csv'] }}":                "/w/a.csv",
		`{{ outputs.t1.outputFiles["a.csv"] }}`:                "/w/a.csv",
		"{{ list[1] }}":                                        "one",
		"{{ outputs.t1.outputFiles[k] }}":                      "/w/a.csv",
		"{{ outputs.t1.outputFiles['b.csv']|default:'none' }}": "none",
	}
	for in, want := range good {
		got, err := New(vars, Options{}).Render(t.Context(), "commands[0]", in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	bad := map[string]string{
		"{{ outputs.t1.outputFiles['b.csv'] }}": "outputs.t1.outputFiles['b.csv']",
		"{{ outputs['t2'] }}":                   "outputs['t2']",
		"{{ list[2] }}":                         "list[2]",
	}
	for in, name := range bad {
		out, err := New(vars, Options{}).Render(t.Context(), "commands[0]", in)
		require.Error(t, err, "%s rendered %q", in, out)
		require.ErrorIs(t, err, runner.ErrInvalidTask)
		assert.Contains(t, err.Error(), name)
	}
}
