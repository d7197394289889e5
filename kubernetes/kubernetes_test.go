package kubernetes_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/kubernetes"
	"github.com/lading-dev/lading/memory"
	"github.com/lading-dev/lading/runner"
)

// newRunner returns a runner on the test cluster, with the offline image as
// the file sidecar and the two output streams apart.
func newRunner(t *testing.T, cfg kubernetes.Config) *kubernetes.Runner {
	t.Helper()
	path, _ := testenv.Kubernetes(t)
	cfg.Kubeconfig = path
	if cfg.FileSidecar.Image == "" {
		cfg.FileSidecar.Image = testenv.Image
	}
	if cfg.LogStreams == "" {
		cfg.LogStreams = kubernetes.LogStreamsSplit
	}
	r, err := kubernetes.New(cfg)
	require.NoError(t, err)
	return r
}

func TestHello(t *testing.T) {
	r := newRunner(t, kubernetes.Config{})
	var lines []runner.Line
	res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"echo hello", "echo oops >&2", "exit 3"},
		OnLine: func(l runner.Line) { lines = append(lines, l) }})
	var exit *runner.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 3, exit.ExitCode)
	require.NotNil(t, res)
	assert.Equal(t, 3, res.ExitCode)
	assert.Equal(t, 1, res.StdoutLines)
	assert.Equal(t, 1, res.StderrLines)
	require.Len(t, lines, 2)
}

func TestOOM(t *testing.T) {
	r := newRunner(t, kubernetes.Config{Memory: memory.Config{Memory: 32 << 20}})
	t.Run("allocating past the limit is OOM", func(t *testing.T) {
		t.Parallel()
		res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image,
			Commands: []string{`awk 'BEGIN { s = "x"; while (1) s = s s }'`}})
		var exit *runner.ExitError
		require.ErrorAs(t, err, &exit)
		assert.True(t, exit.OOMKilled)
		require.NotNil(t, res)
		assert.True(t, res.OOMKilled)
		assert.Equal(t, 137, res.ExitCode)
	})
	t.Run("a SIGKILL from elsewhere is not OOM", func(t *testing.T) {
		t.Parallel()
		res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{`sh -c 'kill -9 $$'`, "exit $?"}})
		var exit *runner.ExitError
		require.ErrorAs(t, err, &exit)
		assert.Equal(t, 137, exit.ExitCode)
		assert.False(t, exit.OOMKilled)
		require.NotNil(t, res)
		assert.False(t, res.OOMKilled)
	})
}

func TestImageNotFound(t *testing.T) {
	for _, policy := range []kubernetes.PullPolicy{kubernetes.PullIfNotPresent, kubernetes.PullNever} {
		t.Run(string(policy), func(t *testing.T) {
			t.Parallel()
			r := newRunner(t, kubernetes.Config{PullPolicy: policy})
			res, err := r.Run(t.Context(), runner.Task{Image: "lading-test/no-such-image:1", Commands: []string{"true"}})
			require.ErrorIs(t, err, runner.ErrImageNotFound)
			assert.Nil(t, res)
			assert.Contains(t, err.Error(), "lading-test/no-such-image:1")
		})
	}
}

func TestUnschedulable(t *testing.T) {
	r := newRunner(t, kubernetes.Config{NodeSelector: map[string]string{"lading-test/no-such-node": "x"}, WaitUntilRunning: kubernetes.Duration(3 * time.Second)})
	start := time.Now()
	res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"true"}})
	require.Error(t, err)
	assert.Nil(t, res)
	assert.Contains(t, err.Error(), "cannot be scheduled")
	assert.Contains(t, err.Error(), "node affinity/selector", "the scheduler's reason")
	assert.Less(t, time.Since(start), 30*time.Second, "the wait is bounded")
}

func TestUnreachable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "kubeconfig")
	require.NoError(t, os.WriteFile(path, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: "t"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600))
	r, err := kubernetes.New(kubernetes.Config{Kubeconfig: path})
	require.NoError(t, err)
	_, err = r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"true"}})
	require.ErrorIs(t, err, runner.ErrEngineUnreachable)
	assert.Contains(t, err.Error(), "127.0.0.1:1")
	assert.Contains(t, err.Error(), "kubeconfig", "says what to set")
}

// TestCancelDeletesThePodAndTheTrapRuns: a cancelled run deletes its pod
// with the grace period, and the script's TERM trap gets to print.
func TestCancelDeletesThePodAndTheTrapRuns(t *testing.T) {
	_, cs := testenv.Kubernetes(t)
	r := newRunner(t, kubernetes.Config{KillGracePeriod: kubernetes.Duration(5 * time.Second)})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var once sync.Once
	res, err := r.Run(ctx, runner.Task{Image: testenv.Image,
		Commands: []string{`trap 'echo trapped; exit 5' TERM`, "echo started", "sleep 30 & wait"},
		OnLine: func(l runner.Line) {
			if l.Text == "started" {
				once.Do(func() { time.AfterFunc(500*time.Millisecond, cancel) })
			}
		}})
	require.ErrorIs(t, err, context.Canceled)
	require.NotNil(t, res)
	d, ok := res.Details.(*kubernetes.Details)
	require.True(t, ok)
	lines, _ := res.StdoutLines, res.StderrLines
	assert.Equal(t, 2, lines, "started, then the trap's line")
	p, err := cs.CoreV1().Pods(d.Namespace).Get(context.Background(), d.Pod, metav1.GetOptions{})
	if err == nil {
		assert.NotNil(t, p.DeletionTimestamp, "the pod is being deleted")
	} else {
		assert.True(t, apierrors.IsNotFound(err), "%v", err)
	}
}

// TestSecretsStayOutOfThePodSpec: the task's secrets reach the script
// through a Secret the pod owns, not through its spec.
func TestSecretsStayOutOfThePodSpec(t *testing.T) {
	_, cs := testenv.Kubernetes(t)
	f := false
	r := newRunner(t, kubernetes.Config{Delete: &f, Labels: map[string]string{keepLabel: "1"}})
	const secret = "s3cr3t-value-lading"
	res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Secrets: map[string]string{"TOKEN": secret},
		Commands: []string{`[ ${#TOKEN} -eq ` + strconv.Itoa(len(secret)) + ` ] && echo same`}})
	require.NoError(t, err)
	d := res.Details.(*kubernetes.Details)
	t.Cleanup(func() {
		_ = cs.CoreV1().Pods(d.Namespace).Delete(context.Background(), d.Pod, metav1.DeleteOptions{})
	})
	pod, err := cs.CoreV1().Pods(d.Namespace).Get(t.Context(), d.Pod, metav1.GetOptions{})
	require.NoError(t, err)
	spec, _ := json.Marshal(pod.Spec)
	assert.NotContains(t, string(spec), secret)
	sec, err := cs.CoreV1().Secrets(d.Namespace).Get(t.Context(), d.Pod, metav1.GetOptions{})
	require.NoError(t, err)
	require.Len(t, sec.OwnerReferences, 1)
	assert.Equal(t, pod.UID, sec.OwnerReferences[0].UID, "the secret goes with the pod")
}

// TestPrune removes the pod of a run whose process is gone, and keeps the
// one of a live process.
func TestPrune(t *testing.T) {
	_, cs := testenv.Kubernetes(t)
	r := newRunner(t, kubernetes.Config{})
	labels := map[string]string{kubernetes.LabelManaged: "true", "lading-test-prune": "1"}
	mk := func(name, pid string) {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: map[string]string{
			kubernetes.AnnotationOwnerHost: hostname(t), kubernetes.AnnotationOwnerPID: pid}},
			Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: testenv.Image, ImagePullPolicy: corev1.PullNever, Command: []string{"true"}}}}}
		_, err := cs.CoreV1().Pods("default").Create(t.Context(), pod, metav1.CreateOptions{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = cs.CoreV1().Pods("default").Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	// A pid that no process has: beyond the kernel's pid_max.
	mk("lading-prune-dead", "99999999")
	mk("lading-prune-live", strconv.Itoa(os.Getppid()))
	res, err := r.Prune(t.Context(), kubernetes.PruneOptions{Labels: map[string]string{"lading-test-prune": "1"}})
	require.NoError(t, err)
	assert.Equal(t, []string{"lading-prune-dead"}, res.Pods)
	p, err := cs.CoreV1().Pods("default").Get(t.Context(), "lading-prune-dead", metav1.GetOptions{})
	if err == nil {
		assert.NotNil(t, p.DeletionTimestamp)
	}
	_, err = cs.CoreV1().Pods("default").Get(t.Context(), "lading-prune-live", metav1.GetOptions{})
	assert.NoError(t, err, "the pod of a live process is kept")
}

func hostname(t *testing.T) string {
	h, err := os.Hostname()
	require.NoError(t, err)
	return h
}
