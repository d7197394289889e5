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
			"WarningsFlood":            "the CI node's runtime (containerd's CRI log pipeline) sometimes drops the tail of a flood that exits at once: the log file the kubelet serves itself lacks the lines (a run delivered 2,087,936 of 2,097,152, exactly the file's count; seq 2097152 left a file ending at 2,082,440, no gap before), so no reader can deliver them (see the package doc, Output)",
			"WritersGetBytesUnchanged": `containerd's CRI log writer, which the kubelet's logs API reads, ends every line with "\n": a "\r" just before it is lost ("x\r\n" comes back "x\n")`,
		},
	})
}
