package kubernetes_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/kubernetes"
)

// TestMain fails the package when its tests leave a pod or a secret of
// this process in the test cluster's default namespace that is not being
// deleted: every run cleans up after itself.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if err := leftovers(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func leftovers() error {
	path := os.Getenv(testenv.KubeconfigEnv)
	if path == "" {
		path = testenv.DefaultKubeconfig
	}
	if _, err := os.Stat(path); err != nil {
		return nil // no cluster: the tests skipped (or failed under CI)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return err
	}
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sel := metav1.ListOptions{LabelSelector: kubernetes.LabelManaged + "=true," + kubernetes.LabelDetached + "!=true"}
	pid := strconv.Itoa(os.Getpid())
	pods, err := cs.CoreV1().Pods("default").List(ctx, sel)
	if err != nil {
		return nil // the cluster is gone: nothing to check
	}
	var left []string
	for _, p := range pods.Items {
		if p.Annotations[kubernetes.AnnotationOwnerPID] == pid && p.DeletionTimestamp == nil && p.Labels[keepLabel] == "" {
			left = append(left, "pod "+p.Name)
		}
	}
	secrets, err := cs.CoreV1().Secrets("default").List(ctx, sel)
	if err == nil {
		for _, s := range secrets.Items {
			if s.Annotations[kubernetes.AnnotationOwnerPID] == pid && s.DeletionTimestamp == nil && len(s.OwnerReferences) == 0 && s.Labels[keepLabel] == "" {
				left = append(left, "secret "+s.Name)
			}
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("kubernetes tests left behind: %v", left)
	}
	return nil
}

// keepLabel marks what a test leaves on purpose (Delete false) and removes
// itself.
const keepLabel = "lading-test-keep"
