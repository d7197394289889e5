package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/lading-dev/lading/kubernetes"
	"github.com/lading-dev/lading/runner"
)

// The Kubernetes cases: `true` as a pod, on the cluster of -kubeconfig, in
// its context's namespace (default), against
//
//   - raw: the minimal client-go sequence (create the pod, watch it until
//     its container has terminated, read its log, delete it);
//   - kubectl: `kubectl run --rm --restart=Never -i`, one process a task.
//
// lading-bare is lading without an output directory (DisableOutputDir):
// with one, lading's pod has a sidecar and the runner execs tar in it
// after the script to bring the (empty) directory back.

// defaultKubeconfig is the admin kubeconfig of the cluster that
// .ci/kubernetes/up.sh starts.
const defaultKubeconfig = "/var/tmp/lading-k8s/admin.kubeconfig"

func kubeconfigPath(cfg config) string {
	if cfg.Kubeconfig != "" {
		return cfg.Kubeconfig
	}
	if v := os.Getenv("KUBECONFIG"); v != "" {
		return v
	}
	return defaultKubeconfig
}

func newK8sLading(cfg config) *kubernetes.Runner {
	r, err := kubernetes.New(kubernetes.Config{
		Kubeconfig: kubeconfigPath(cfg),
		// The file containers run the bench's image: the CI cluster has
		// no registry to pull busybox from.
		FileSidecar: kubernetes.FileSidecar{Image: cfg.Image},
	})
	if err != nil {
		fail(err)
	}
	return r
}

func k8sLadingRun(r *kubernetes.Runner, image string, bare bool) error {
	res, err := r.Run(ctx, runner.Task{Image: image, Commands: []string{"true"}, DisableOutputDir: bare})
	if res != nil {
		os.RemoveAll(res.WorkingDir)
	}
	return err
}

func k8sLadingTrivial(cfg config) (measurement, error) {
	r := newK8sLading(cfg)
	return latency(cfg, func() error { return k8sLadingRun(r, cfg.Image, false) })
}

func k8sLadingBareTrivial(cfg config) (measurement, error) {
	r := newK8sLading(cfg)
	return latency(cfg, func() error { return k8sLadingRun(r, cfg.Image, true) })
}

func k8sLadingParallel(cfg config) (measurement, error) {
	r := newK8sLading(cfg)
	return parallel(cfg, func() error { return k8sLadingRun(r, cfg.Image, false) })
}

func k8sLadingBareParallel(cfg config) (measurement, error) {
	r := newK8sLading(cfg)
	return parallel(cfg, func() error { return k8sLadingRun(r, cfg.Image, true) })
}

// latency times f cfg.N times after one unrecorded run.
func latency(cfg config, f func() error) (measurement, error) {
	if err := warm(f); err != nil {
		return measurement{}, err
	}
	s, err := timeIt(cfg.N, f)
	return measurement{Samples: s}, err
}

// k8sRaw is a client-go client of the cluster and its namespace.
type k8sRaw struct {
	cs *k8s.Clientset
	ns string
}

func newK8sRaw(cfg config) *k8sRaw {
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfigPath(cfg)}, &clientcmd.ConfigOverrides{})
	rc, err := cc.ClientConfig()
	if err != nil {
		fail(err)
	}
	// As lading sets it: client-go's default 5 QPS would serialise the
	// parallel case.
	rc.QPS, rc.Burst = 100, 200
	ns, _, err := cc.Namespace()
	if err != nil || ns == "" {
		ns = "default"
	}
	cs, err := k8s.NewForConfig(rc)
	if err != nil {
		fail(err)
	}
	return &k8sRaw{cs: cs, ns: ns}
}

func benchName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "lading-bench-" + hex.EncodeToString(b)
}

// run is the minimal sequence: create, watch until the container has
// terminated, read the log, delete (not waiting for the pod to be gone, as
// lading does not).
func (k *k8sRaw) run(image string) error {
	pods := k.cs.CoreV1().Pods(k.ns)
	name := benchName()
	never := false
	pod, err := pods.Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"lading-bench": "raw"}},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever, AutomountServiceAccountToken: &never, EnableServiceLinks: &never,
			Containers: []corev1.Container{{Name: "task", Image: image, ImagePullPolicy: corev1.PullIfNotPresent, Command: []string{"/bin/sh", "-c", "true"}}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	grace := int64(1)
	defer pods.Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
	rv := pod.ResourceVersion
	for done := false; !done; {
		w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String(), ResourceVersion: rv})
		if err != nil {
			return err
		}
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if ev.Type == watch.Deleted || ev.Type == watch.Error || !ok {
				w.Stop()
				return fmt.Errorf("pod %s: watch: %s %v", name, ev.Type, ev.Object)
			}
			rv = p.ResourceVersion
			// The container's terminated state, as lading waits for: the
			// pod's phase follows about a second later, once the kubelet
			// has torn the sandbox down.
			if cs := p.Status.ContainerStatuses; len(cs) == 1 && cs[0].State.Terminated != nil ||
				p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
				done = true
				break
			}
		}
		w.Stop()
	}
	_, err = pods.GetLogs(name, &corev1.PodLogOptions{Container: "task"}).DoRaw(ctx)
	return err
}

func k8sRawTrivial(cfg config) (measurement, error) {
	k := newK8sRaw(cfg)
	return latency(cfg, func() error { return k.run(cfg.Image) })
}

func k8sRawParallel(cfg config) (measurement, error) {
	k := newK8sRaw(cfg)
	return parallel(cfg, func() error { return k.run(cfg.Image) })
}

// kubectlPath is kubectl from PATH, else the one .ci/kubernetes/build.sh
// builds into its cache.
func kubectlPath() (string, error) {
	if p, err := exec.LookPath("kubectl"); err == nil {
		return p, nil
	}
	m, _ := filepath.Glob("/var/cache/lading-k8s/k8s-*/bin/kubectl")
	if len(m) > 0 {
		return m[len(m)-1], nil
	}
	return "", errors.New("no kubectl in PATH or /var/cache/lading-k8s/*/bin (.ci/kubernetes/build.sh builds it)")
}

func kubectlRun(kubectl, kubeconfig, image string) error {
	cmd := exec.Command(kubectl, "--kubeconfig", kubeconfig, "run", benchName(), "--rm", "--restart=Never", "-i", "-q",
		"--image", image, "--image-pull-policy", "IfNotPresent", "--labels", "lading-bench=kubectl", "--command", "--", "true")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("kubectl run: %w: %s", err, out.String())
	}
	return nil
}

func k8sKubectlTrivial(cfg config) (measurement, error) {
	kubectl, err := kubectlPath()
	if err != nil {
		return measurement{}, err
	}
	return latency(cfg, func() error { return kubectlRun(kubectl, kubeconfigPath(cfg), cfg.Image) })
}

func k8sKubectlParallel(cfg config) (measurement, error) {
	kubectl, err := kubectlPath()
	if err != nil {
		return measurement{}, err
	}
	return parallel(cfg, func() error { return kubectlRun(kubectl, kubeconfigPath(cfg), cfg.Image) })
}
