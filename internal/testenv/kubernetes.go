package testenv

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// KubeconfigEnv names the variable that points the Kubernetes tests at a
// cluster's kubeconfig file.
const KubeconfigEnv = "LADING_KUBECONFIG"

// DefaultKubeconfig is the admin kubeconfig of the single-node cluster that
// .ci/kubernetes/up.sh starts, used when [KubeconfigEnv] is not set.
const DefaultKubeconfig = "/var/tmp/lading-k8s/admin.kubeconfig"

// Kubernetes returns the path of the kubeconfig of the cluster the tests use
// ([KubeconfigEnv], else [DefaultKubeconfig]) and a client for it, after
// checking that the API server is ready and that a node is Ready. It skips
// the test when there is no such cluster, unless CI is set, when it fails.
//
// The cluster must hold [Image] in its runtime (up.sh imports it from the
// Docker Engine into containerd's k8s.io namespace): pods use it with pull
// policy IfNotPresent, and no registry answers.
func Kubernetes(t testing.TB) (string, *kubernetes.Clientset) {
	t.Helper()
	path := os.Getenv(KubeconfigEnv)
	if path == "" {
		path = DefaultKubeconfig
	}
	if _, err := os.Stat(path); err != nil {
		kubernetesUnavailable(t, fmt.Sprintf("no kubeconfig: %v", err))
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("kubeconfig %s: %v", path, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("kubernetes client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		kubernetesUnavailable(t, fmt.Sprintf("the API server of %s is not ready: %v", path, err))
	}
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		kubernetesUnavailable(t, fmt.Sprintf("list nodes of %s: %v", path, err))
	}
	for _, n := range nodes.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return path, cs
			}
		}
	}
	kubernetesUnavailable(t, fmt.Sprintf("the cluster of %s has no Ready node", path))
	return "", nil
}

func kubernetesUnavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set, so the Kubernetes tests must run: %s (start the cluster with .ci/kubernetes/up.sh, or set %s)", why, KubeconfigEnv)
	}
	t.Skipf("skipping Kubernetes test: %s (start the cluster with .ci/kubernetes/up.sh, or set %s)", why, KubeconfigEnv)
}
