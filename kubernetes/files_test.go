package kubernetes_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/kubernetes"
	"github.com/lading-dev/lading/runner"
)

// TestOutputLimits: more output files than maxOutputFiles fail the
// collection with files.ErrLimit, and nothing of it is left on the host.
func TestOutputLimits(t *testing.T) {
	r := newRunner(t, kubernetes.Config{MaxOutputFiles: 3})
	dir := t.TempDir()
	res, err := r.Run(t.Context(), runner.Task{
		Image: testenv.Image, WorkingDir: dir, OutputFiles: []string{"*.dat"},
		Commands: []string{"for i in 1 2 3 4 5 6; do echo $i > f$i.dat; done"},
	})
	require.ErrorIs(t, err, files.ErrLimit)
	assert.Contains(t, err.Error(), "3 files")
	require.NotNil(t, res)
	matches, _ := filepath.Glob(filepath.Join(dir, "*.dat"))
	assert.Empty(t, matches, "partial output removed")
}

// TestChangedOnHostIsKept: an input file changed on the host while the run
// ran is not overwritten by the container's copy, which a warning says.
func TestChangedOnHostIsKept(t *testing.T) {
	r := newRunner(t, kubernetes.Config{})
	dir := t.TempDir()
	in := filepath.Join(dir, "state.txt")
	res, err := r.Run(t.Context(), runner.Task{
		Image: testenv.Image, WorkingDir: dir, OutputFiles: []string{"*.txt"},
		InputFiles: map[string]runner.Source{"state.txt": files.String("staged\n")},
		OnLine: func(l runner.Line) {
			if l.Text == "changing" {
				_ = os.WriteFile(in, []byte("host's own, longer\n"), 0o644)
			}
		},
		Commands: []string{"echo changing", "sleep 1", "echo container > state.txt"},
	})
	require.NoError(t, err)
	data, err := os.ReadFile(in)
	require.NoError(t, err)
	assert.Equal(t, "host's own, longer\n", string(data), "the host's change is kept")
	assert.NotContains(t, res.OutputFiles, "state.txt")
	assert.NotEmpty(t, res.Warnings, "the conflict is reported")
}
