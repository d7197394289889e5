package service_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestServiceImportsNoEngine keeps the vocabulary engine-neutral: neither
// service nor servicetest may depend on a container engine's packages.
// The one moby module allowed is the pattern matcher of ignore files,
// which comes with the build vocabulary ([service.Spec.Build]).
func TestServiceImportsNoEngine(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}",
		"github.com/lading-dev/lading/service", "github.com/lading-dev/lading/service/servicetest").Output()
	require.NoError(t, err, "go list: %s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/lading-dev/lading/service", "go list listed the package itself")
	for _, dep := range deps {
		if strings.HasPrefix(dep, "github.com/moby/patternmatcher") {
			continue
		}
		for _, banned := range []string{"github.com/moby/", "github.com/docker/docker", "github.com/docker/go-connections", "github.com/containerd/", "github.com/lading-dev/lading/docker", "k8s.io/"} {
			if strings.HasPrefix(dep, banned) {
				t.Errorf("service depends on %s", dep)
			}
		}
	}
}
