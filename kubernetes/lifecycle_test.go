package kubernetes_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/kubernetes"
	"github.com/lading-dev/lading/runner"
)

// TestDetached: with Wait false, Run returns once the task's container has
// started (its input files in), and hands the pod over, marked detached.
func TestDetached(t *testing.T) {
	_, cs := testenv.Kubernetes(t)
	f := false
	r := newRunner(t, kubernetes.Config{Wait: &f})
	res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, InputFiles: map[string]runner.Source{"in.txt": files.String("x")},
		Commands: []string{"cat in.txt", "sleep 30"}})
	require.NoError(t, err)
	d := res.Details.(*kubernetes.Details)
	t.Cleanup(func() {
		zero := int64(0)
		_ = cs.CoreV1().Pods(d.Namespace).Delete(context.Background(), d.Pod, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
	assert.NotEmpty(t, d.Node, "the node is known once the container has started")
	assert.False(t, res.Started.IsZero())
	pod, err := cs.CoreV1().Pods(d.Namespace).Get(t.Context(), d.Pod, metav1.GetOptions{})
	require.NoError(t, err)
	assert.Equal(t, "true", pod.Labels[kubernetes.LabelDetached])
	assert.Len(t, pod.Spec.Containers, 1, "no sidecar: nothing is collected from a detached run")
	var task *corev1.ContainerStatus
	for i := range pod.Status.ContainerStatuses {
		task = &pod.Status.ContainerStatuses[i]
	}
	require.NotNil(t, task)
	assert.NotNil(t, task.State.Running, "the task runs on after Run returned: %+v", task.State)
}
