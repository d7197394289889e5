package build_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestBuildImportsNoEngine keeps the build vocabulary engine-neutral: its
// only moby dependency is the pattern matcher the docker CLI uses for
// ignore files, not the engine's API or client.
func TestBuildImportsNoEngine(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "github.com/lading-dev/lading/build").Output()
	require.NoError(t, err, "go list: %s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/moby/patternmatcher", "go list listed the dependencies")
	for _, dep := range deps {
		for _, banned := range []string{"github.com/moby/moby/", "github.com/docker/", "github.com/containerd/", "github.com/lading-dev/lading/docker"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("build depends on %s", dep)
			}
		}
	}
}
