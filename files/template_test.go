package files_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/runner"
)

func TestTemplateSource(t *testing.T) {
	src := files.Template("name: {{ inputs.name }}")
	ts, ok := src.(runner.TemplateSource)
	require.True(t, ok, "a Template source is a runner.TemplateSource")
	assert.Equal(t, "name: {{ inputs.name }}", ts.Template())
	_, err := src.Open()
	require.Error(t, err, "a runner that does not render it fails instead of staging the template text")
	assert.Contains(t, err.Error(), "rendered by the runner")
	for _, plain := range []runner.Source{files.String("{{ x }}"), files.Bytes([]byte("{{ x }}")), files.HostFile("/etc/hostname")} {
		_, ok := plain.(runner.TemplateSource)
		assert.False(t, ok, "%T is not a template", plain)
	}
}

func TestStageRefusesAnUnrenderedTemplate(t *testing.T) {
	err := files.Stage(t.Context(), t.TempDir(), map[string]runner.Source{"a.txt": files.Template("{{ x }}")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rendered by the runner")
}

func TestStageRefusesAWrappedTemplate(t *testing.T) {
	err := files.Stage(t.Context(), t.TempDir(), map[string]runner.Source{"run.sh": files.WithMode(files.Template("{{ x }}"), 0o755)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "wrapped in another source")
}
