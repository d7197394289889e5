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
			"WritersGetBytesUnchanged": `containerd's CRI log writer, which the kubelet's logs API reads, ends every line with "\n": a "\r" just before it is lost ("x\r\n" comes back "x\n")`,
		},
	})
}
