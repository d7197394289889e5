package template

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

var vars = map[string]any{
	"workingDir": "/work",
	"outputDir":  "/work/out",
	"inputs":     map[string]any{"file": "data.csv", "nested": map[string]any{"n": 3}, "list": []any{"a", "b"}},
	"flag":       true,
}

func TestRender(t *testing.T) {
	tests := []struct{ in, want string }{
		{"echo plain", "echo plain"},
		{"cat {{ workingDir }}/x", "cat /work/x"},
		{"cat {{workingDir}}/{{ inputs.file }}", "cat /work/data.csv"},
		{"echo {{ inputs.nested.n }}", "echo 3"},
		{"echo {{ inputs.list.1 }}", "echo b"},
		{"echo {{ inputs.file|upper }}", "echo DATA.CSV"},
		{"echo {{ missing|default:'fallback' }}", "echo fallback"},
		{"echo {{ inputs.missing|default:inputs.file }}", "echo data.csv"},
		{"{% for x in inputs.list %}{{ x }}{{ forloop.Counter }} {% endfor %}", "a1 b2 "},
		{"{% if undefinedFlag %}yes{% else %}no{% endif %}", "no"},
		{"{% with name=inputs.file %}{{ name }}{% endwith %}", "data.csv"},
		{"echo '{{ \"literal\" }}'", "echo 'literal'"},
		{"{{ outputDir }}/{{ 'a' }}", "/work/out/a"},
		{"echo ${HOME} {not a template}", "echo ${HOME} {not a template}"},
		{"[ ${#TOKEN} -eq 3 ] && echo {{ workingDir }}", "[ ${#TOKEN} -eq 3 ] && echo /work"},
		{"echo ${#A} ${#B}", "echo ${#A} ${#B}"},
		{"{% verbatim %}{{ raw }}{% endverbatim %}", "{{ raw }}"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Render(tt.in, vars)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestUndefinedIsAnError(t *testing.T) {
	tests := []struct{ in, name string }{
		{"rm -rf {{ workDir }}/", "workDir"},
		{"cat {{ inputs.fiel }}", "inputs.fiel"},
		{"cat {{ inputs.nested.m }}", "inputs.nested.m"},
		{"{{ workingDir }} {{ outptuDir }}", "outptuDir"},
		{"{{ inputs.file + other }}", "other"},
		{"{% if flag %}{{ inputs.fiel }}{% endif %}", "inputs.fiel"},
		{"{{ inputs.list|join:sep }}", "sep"},
		{"{{ inputs.list.0|upper|default:x }}", "x"},
		{"{% for x in inputs.list %}{{ y }}{% endfor %}", "y"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := Render(tt.in, vars)
			var undef *UndefinedError
			require.ErrorAs(t, err, &undef)
			assert.Equal(t, tt.name, undef.Name)
			assert.Contains(t, err.Error(), tt.name)
			assert.Contains(t, err.Error(), "workingDir", "the error lists what is defined")
		})
	}
}

func TestSandbox(t *testing.T) {
	for _, in := range []string{`{% include "/etc/passwd" %}`, `{% ssi "/etc/passwd" %}`, `{% extends "/etc/passwd" %}`, `{% import "/etc/passwd" x %}`} {
		t.Run(in, func(t *testing.T) {
			out, err := Render(in, vars)
			require.Error(t, err)
			assert.NotContains(t, out, "root:")
		})
	}
}

func TestUnclosedBlockSaysSo(t *testing.T) {
	for _, in := range []string{"{% if flag %}abc", "{% for x in inputs.list %}", "{% with a=1 %}x"} {
		_, err := Render(in, vars)
		require.Error(t, err, in)
		assert.Contains(t, err.Error(), "not closed", in)
		assert.NotContains(t, err.Error(), "autoescape", "lading's wrapper stays out of the message")
	}
}

func TestSyntaxError(t *testing.T) {
	_, err := Render("echo {{ workingDir ", vars)
	require.Error(t, err)
	_, err = Render("{% if %}", vars)
	require.Error(t, err)
}

func TestRenderListNamesTheLine(t *testing.T) {
	out, err := RenderList("commands", []string{"echo {{ workingDir }}", "ls"}, vars)
	require.NoError(t, err)
	assert.Equal(t, []string{"echo /work", "ls"}, out)

	_, err = RenderList("commands", []string{"echo ok", "rm -rf {{ workDir }}/"}, vars)
	require.ErrorIs(t, err, runner.ErrInvalidTask)
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "commands[1]", fe.Field)
	assert.Equal(t, "rm -rf {{ workDir }}/", fe.Value)
	assert.Contains(t, err.Error(), "workDir")
}

func FuzzRender(f *testing.F) {
	f.Add("echo {{ workingDir }} {% for x in inputs.list %}{{ x }}{% endfor %}")
	f.Add("{{ a|default:'b' }}")
	f.Add("{% set x = inputs.file %}{% for c in inputs.file|make_list %}{% set x = x + x %}{% endfor %}{{ x|json }}")
	f.Add("{{ secret('S') }} {{ inputs.nested|toJson }} {{ 1.5 * 2 }} {% if flag %}{{ inputs.list.0|rjust:9 }}{% endif %}")
	f.Add("{{ a ~ b }} {{ a ?? b }} {% raw %}{% endraw %} {{ x|default('y') }}")
	r := New(vars, Options{Secrets: map[string]string{"S": "s3cr3t-value"}, MaxSize: 4096})
	f.Fuzz(func(t *testing.T, s string) {
		out, err := r.Render(t.Context(), "f", s) // must not panic
		if err == nil && len(out) > 4096 && len(out) > len(s) {
			t.Fatalf("rendered %d bytes, over the cap", len(out))
		}
	})
}

func BenchmarkRender(b *testing.B) {
	for b.Loop() {
		_, _ = Render("cp {{ workingDir }}/{{ inputs.file }} {{ outputDir }}/out.csv", vars)
	}
}
