package kubernetes_test

import (
	"testing"

	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/kubernetes"
	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/runner/runnertest"
)

func TestConformance(t *testing.T) {
	testenv.Kubernetes(t)
	runnertest.Run(t, runnertest.Config{
		Image: testenv.Image,
		New: func(t *testing.T) runner.Runner {
			return newRunner(t, kubernetes.Config{})
		},
		Skip: map[string]string{
			"WarningsFlood":            "an open defect of this runner: under a flood of 2,097,152 lines the followed pod log lost 4,096 of them in one CI run (it passed in others), with no error or warning; not found yet (issue 17)",
			"WritersGetBytesUnchanged": `containerd's CRI log writer, which the kubelet's logs API reads, ends every line with "\n": a "\r" just before it is lost ("x\r\n" comes back "x\n")`,
		},
	})
}
