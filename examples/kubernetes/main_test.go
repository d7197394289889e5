package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/kubernetes"
)

// TestHello runs the example against the test cluster (skipped without
// one, failed without one when CI is set), in the offline image the
// cluster holds, through the kubeconfig flag and through KUBECONFIG.
func TestHello(t *testing.T) {
	path, cs := testenv.Kubernetes(t)
	for _, tc := range []struct {
		name string
		o    options
		env  string
	}{
		{name: "flag", o: options{Kubeconfig: path}},
		{name: "KUBECONFIG", env: path},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", tc.env)
			// Not in a pod: the kubeconfig, not the in-cluster configuration.
			t.Setenv("KUBERNETES_SERVICE_HOST", "")
			tc.o.Image = testenv.Image
			tc.o.SidecarImage = testenv.Image
			var out bytes.Buffer
			require.NoError(t, run(t.Context(), tc.o, &out))
			t.Log(out.String())
			assert.Contains(t, out.String(), "Hello World from lading\n")
			assert.Contains(t, out.String(), "exit code: 0\n")
			assert.Contains(t, out.String(), "outputs:   map[greeting:hi]\n")
			assert.Contains(t, out.String(), "lines:     2 stdout, 0 stderr")
			assert.Regexp(t, `pod:       default/lading-[0-9a-f]+ on node \S+ \(deleted\)`, out.String())

			// The pod is gone, or going.
			pods, err := cs.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: kubernetes.LabelManaged + "=true"})
			require.NoError(t, err)
			for _, p := range pods.Items {
				if bytes.Contains(out.Bytes(), []byte(p.Name)) {
					assert.NotNil(t, p.DeletionTimestamp, "pod %s is being deleted", p.Name)
				}
			}
		})
	}
}
