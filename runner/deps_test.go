package runner_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRunnerImportsNoEngine keeps the contract runner-neutral: neither runner
// nor runnertest may depend on a container engine's packages.
func TestRunnerImportsNoEngine(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}",
		"github.com/lading-dev/lading/runner", "github.com/lading-dev/lading/runner/runnertest").Output()
	require.NoError(t, err, "go list: %s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/lading-dev/lading/runner", "go list listed the package itself")
	for _, dep := range deps {
		for _, banned := range []string{"github.com/moby/", "github.com/docker/", "github.com/containerd/", "github.com/lading-dev/lading/docker"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("runner depends on %s", dep)
			}
		}
	}
}
