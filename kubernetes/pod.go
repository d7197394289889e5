package kubernetes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/lading-dev/lading/internal/core"
	"github.com/lading-dev/lading/runner"
)

// The pod's containers and the paths they share.
const (
	containerTask = "task"       // runs the script
	containerIn   = "lading-in"  // init container: waits for the input files
	containerOut  = "lading-out" // sidecar: waits until the output files are read
	volumeName    = "lading"
	volumeMount   = "/lading"             // the volume in the file containers
	markerIn      = "/lading/.lading-in"  // written once the input files are in
	markerOut     = "/lading/.lading-out" // written once the output files are out
)

// run is the Kubernetes engine of one Run call: what [core.Run] asks of it.
// Its container is the pod, named [core.State.Name].
type run struct {
	r     *Runner
	c     *core.State
	task  runner.Task // the task as given; c.Task is the rendered one
	files *podFiles   // chosen once, by Files

	secret   bool        // a secret holds the task's secrets
	uid      string      // the pod's uid, once created or found
	node     string      // the node the pod runs on, once known
	details  *Details    // the result's, once asked for
	attached bool        // Attach followed the pod: Start has nothing to do
	exit     *podExit    // the watch for the task container's end, once attached
	stopping atomic.Bool // Stop deleted the pod
	gone     atomic.Bool // someone else deleted the pod, or it failed
}

var (
	_ core.Engine  = (*run)(nil)
	_ core.Resumer = (*run)(nil)
)

func (run *run) log() *slog.Logger { return run.c.Log }

// Image has nothing to pull (the kubelet pulls, as the pull policy says);
// it checks that the API server can split the log streams when asked to.
func (run *run) Image(ctx context.Context) error {
	if run.r.cfg.LogStreams == LogStreamsSplit {
		return run.r.checkSplit(ctx)
	}
	return nil
}

// Details is the Kubernetes part of the result.
func (run *run) Details() any {
	run.details = &Details{Namespace: run.r.namespace, Pod: run.c.Name(), RunID: run.c.ID, Node: run.node}
	return run.details
}

func (run *run) setNode(pod *corev1.Pod) {
	run.node = pod.Spec.NodeName
	if run.details != nil {
		run.details.Node = run.node
	}
}

// Error wraps an error of the API server; one that says what was being
// done already is kept.
func (run *run) Error(doing string, err error) error {
	var done *core.EngineError
	if errors.As(err, &done) {
		return err
	}
	return run.r.apiError(doing, err)
}

// taskHash is the value of [LabelTask] for a task id.
func taskHash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

func (run *run) labels() map[string]string {
	l := map[string]string{LabelManaged: "true", LabelRun: run.c.ID}
	maps.Copy(l, run.r.cfg.Labels)
	if run.task.ID != "" {
		l[LabelTask] = taskHash(run.task.ID)
	}
	if !run.r.cfg.waits() {
		l[LabelDetached] = "true"
	}
	return l
}

func (run *run) annotations() map[string]string {
	a := maps.Clone(run.r.owner)
	if run.task.ID != "" {
		a[AnnotationTask] = run.task.ID
	}
	return a
}

// Create makes the secret holding the task's secrets (when it has some)
// and the pod. The calls are not cut short by ctx (a cancelled request can
// leave what the API server goes on to create); what a failed call may
// have made is removed.
func (run *run) Create(ctx context.Context) error {
	api := run.r.cs.CoreV1()
	name := run.c.Name()
	run.c.ContainerID = name
	run.c.Event(runner.StageCreating, name)
	call, cancel := core.EngineCall(ctx, core.EngineTimeout)
	defer cancel()
	call, cancelTimeout := context.WithTimeout(call, core.CleanupTimeout)
	defer cancelTimeout()
	meta := metav1.ObjectMeta{Name: name, Namespace: run.r.namespace, Labels: run.labels(), Annotations: run.annotations()}
	if len(run.task.Secrets) > 0 {
		// The values go in a Secret, not in the pod's spec, which anyone who
		// may read pods can read.
		data := make(map[string][]byte, len(run.task.Secrets))
		for k, v := range run.task.Secrets {
			data[k] = []byte(v)
		}
		run.secret = true
		sec := &corev1.Secret{ObjectMeta: meta, Data: data, Type: corev1.SecretTypeOpaque}
		if _, err := api.Secrets(run.r.namespace).Create(call, sec, metav1.CreateOptions{}); err != nil {
			return errors.Join(run.c.CallError(call, "create secret "+name, core.EngineTimeout, err), run.c.Remove(ctx))
		}
	}
	pod, err := api.Pods(run.r.namespace).Create(call, &corev1.Pod{ObjectMeta: meta, Spec: run.podSpec()}, metav1.CreateOptions{})
	if err != nil {
		return errors.Join(run.c.CallError(call, "create pod "+name, core.EngineTimeout, err), run.c.Remove(ctx))
	}
	run.uid = string(pod.UID)
	if run.secret {
		// Owned by the pod, the secret goes with it, also when lading does
		// not delete it (Delete false, or a crash).
		sec, err := api.Secrets(run.r.namespace).Get(call, name, metav1.GetOptions{})
		if err == nil {
			t := true
			sec.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID, BlockOwnerDeletion: &t}}
			_, err = api.Secrets(run.r.namespace).Update(call, sec, metav1.UpdateOptions{})
		}
		if err != nil {
			run.log().Warn("the secret is not owned by the pod", "error", err)
		}
	}
	if ctx.Err() != nil {
		return errors.Join(ctx.Err(), run.c.Remove(ctx))
	}
	return nil
}

// env returns the task container's environment: the rendered one, but the
// secrets, which come from the run's Secret.
func (run *run) env() []corev1.EnvVar {
	var env []corev1.EnvVar
	for _, kv := range run.c.WS.Env {
		k, v, _ := strings.Cut(kv, "=")
		if _, secret := run.task.Secrets[k]; !secret {
			env = append(env, corev1.EnvVar{Name: k, Value: literal(v)})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(run.task.Secrets)) {
		env = append(env, corev1.EnvVar{Name: k, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: run.c.Name()}, Key: k}}})
	}
	return env
}

// podSpec is the run's pod: the task's container, and the file containers
// the run needs ([podFiles]).
func (run *run) podSpec() corev1.PodSpec {
	cfg := &run.r.cfg
	ws := run.c.WS
	command := run.task.Command()
	command[len(command)-1] = strings.Join(ws.Commands, "\n")
	for i := range command {
		command[i] = literal(command[i])
	}
	pull := cfg.pullPolicy()
	workMounts := []corev1.VolumeMount{{Name: volumeName, MountPath: ContainerWorkingDir, SubPath: "work"}}
	if ws.OutputRel != "" {
		// The kubelet makes a subPath's directory, so the output directory
		// exists before the script starts, with no container to make it.
		workMounts = append(workMounts, corev1.VolumeMount{Name: volumeName, MountPath: ws.OutputDir(), SubPath: "work/" + ws.OutputRel})
	}
	grace := cfg.gracePeriodSeconds()
	automount := cfg.ServiceAccountName != ""
	spec := corev1.PodSpec{
		RestartPolicy:                 corev1.RestartPolicyNever,
		ServiceAccountName:            cfg.ServiceAccountName,
		AutomountServiceAccountToken:  &automount,
		EnableServiceLinks:            new(bool),
		NodeSelector:                  cfg.NodeSelector,
		Tolerations:                   cfg.Tolerations,
		TerminationGracePeriodSeconds: &grace,
		Volumes:                       []corev1.Volume{{Name: volumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		Containers: []corev1.Container{{
			Name: containerTask, Image: run.task.Image, ImagePullPolicy: pull,
			Command: command, Env: run.env(), WorkingDir: ContainerWorkingDir, VolumeMounts: workMounts,
			Resources: run.resources(),
		}},
	}
	for _, s := range cfg.ImagePullSecrets {
		spec.ImagePullSecrets = append(spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
	}
	fileMounts := []corev1.VolumeMount{{Name: volumeName, MountPath: volumeMount}}
	if !ws.Empty {
		// Kestra's way: an init container that waits until the runner has
		// copied the files in (through exec and tar) and said so.
		spec.InitContainers = []corev1.Container{{
			Name: containerIn, Image: cfg.sidecarImage(), ImagePullPolicy: pull, VolumeMounts: fileMounts,
			Command: []string{"sh", "-c", "until [ -e " + markerIn + " ]; do sleep 0.1; done; rm -f " + markerIn},
		}}
	}
	if run.files.collects() && cfg.waits() {
		// And a sidecar that waits until the runner has copied the files out.
		spec.Containers = append(spec.Containers, corev1.Container{
			Name: containerOut, Image: cfg.sidecarImage(), ImagePullPolicy: pull, VolumeMounts: fileMounts,
			Command: []string{"sh", "-c", "trap 'exit 0' TERM; until [ -e " + markerOut + " ]; do sleep 0.2; done"},
		})
	}
	return spec
}

// Start has nothing to start: the pod starts the task once its files are
// in. Run waits for the start in Attach; without Wait, Start waits for it.
func (run *run) Start(ctx context.Context) error {
	if run.attached {
		return nil
	}
	pod, err := run.waitStarted(ctx, containerTask, false)
	if err == nil {
		run.setNode(pod)
	}
	return err
}

// Stop deletes the pod with the grace period (its containers get SIGTERM,
// then SIGKILL) and waits, within ctx, until the task's container has
// ended.
func (run *run) Stop(ctx context.Context, _ time.Duration) error {
	run.stopping.Store(true)
	if err := run.deletePod(ctx); err != nil {
		return err
	}
	if run.exit != nil {
		select {
		case <-run.exit.done:
		case <-ctx.Done():
			return fmt.Errorf("the task's container had not ended: %w", context.Cause(ctx))
		}
	}
	return nil
}

func (run *run) deletePod(ctx context.Context) error {
	grace := run.r.cfg.gracePeriodSeconds()
	err := run.r.cs.CoreV1().Pods(run.r.namespace).Delete(ctx, run.c.Name(), metav1.DeleteOptions{GracePeriodSeconds: &grace})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

// Remove deletes the pod, with the grace period, and the secret; what is
// already gone counts as removed.
func (run *run) Remove(ctx context.Context) error {
	err := run.deletePod(ctx)
	if run.secret {
		serr := run.r.cs.CoreV1().Secrets(run.r.namespace).Delete(ctx, run.c.Name(), metav1.DeleteOptions{})
		if serr != nil && !apierrors.IsNotFound(serr) {
			err = errors.Join(err, fmt.Errorf("delete secret %s: %w", run.c.Name(), serr))
		}
	}
	return err
}

// literal escapes s from Kubernetes' expansion of command, args and env
// values, which reads "$(NAME)" as the variable NAME and "$$" as "$": every
// "$" is doubled, so the container gets s as written.
func literal(s string) string { return strings.ReplaceAll(s, "$", "$$") }

// resources returns the task container's requests and limits.
func (run *run) resources() corev1.ResourceRequirements {
	cfg := &run.r.cfg
	var rr corev1.ResourceRequirements
	set := func(l *corev1.ResourceList, name corev1.ResourceName, q resource.Quantity) {
		if *l == nil {
			*l = corev1.ResourceList{}
		}
		(*l)[name] = q
	}
	if m := cfg.CPU.CPUs.Millicores(); m > 0 {
		set(&rr.Limits, corev1.ResourceCPU, *resource.NewMilliQuantity(m, resource.DecimalSI))
	}
	if b := int64(cfg.Memory.Memory); b > 0 {
		set(&rr.Limits, corev1.ResourceMemory, *resource.NewQuantity(b, resource.BinarySI))
	}
	if b := int64(cfg.Memory.MemoryReservation); b > 0 {
		set(&rr.Requests, corev1.ResourceMemory, *resource.NewQuantity(b, resource.BinarySI))
	}
	return rr
}

// unreachableBound is how long the watch of a pod goes on trying to reach
// an API server that does not answer (a restart is over in seconds) before
// the run fails with [runner.ErrEngineUnreachable].
const unreachableBound = time.Minute

// watchPod waits until cond holds for the run's pod, watching it (with a
// relist when the watch breaks). It returns the last state of the pod it
// saw, that of its deletion included. A pod that is gone fails with
// errPodGone; an API server that cannot be reached for unreachableBound,
// with an error saying so.
func (run *run) watchPod(ctx context.Context, cond func(*corev1.Pod) (bool, error)) (*corev1.Pod, error) {
	sel := fields.OneTermEqualSelector("metadata.name", run.c.Name()).String()
	pods := run.r.cs.CoreV1().Pods(run.r.namespace)
	parent := ctx
	ctx, giveUp := context.WithCancelCause(ctx)
	defer giveUp(nil)
	var failingSince time.Time
	note := func(err error) {
		switch {
		case err == nil:
			failingSince = time.Time{}
		case failingSince.IsZero():
			failingSince = time.Now()
		case time.Since(failingSince) > unreachableBound:
			giveUp(run.r.apiError(fmt.Sprintf("watch pod %s (failing for %s)", run.c.Name(), unreachableBound), err))
		}
	}
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			list, err := pods.List(ctx, o)
			note(err)
			return list, err
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			w, err := pods.Watch(ctx, o)
			note(err)
			return w, err
		},
	}
	var last *corev1.Pod
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Pod{}, func(store cache.Store) (bool, error) {
		if len(store.List()) == 0 {
			return false, errPodGone
		}
		return false, nil
	}, func(ev watch.Event) (bool, error) {
		pod, ok := ev.Object.(*corev1.Pod)
		if !ok {
			return false, nil
		}
		if run.uid != "" && string(pod.UID) != run.uid {
			return false, errPodGone // another pod of the same name
		}
		last = pod
		if ev.Type == watch.Deleted {
			return false, errPodGone
		}
		return cond(pod)
	})
	if err != nil && ctx.Err() != nil && parent.Err() == nil {
		return last, context.Cause(ctx) // the API server could not be reached
	}
	if errors.Is(err, watchtools.ErrWatchClosed) || (err != nil && ctx.Err() != nil) {
		err = ctx.Err()
	}
	return last, err
}

// errPodGone: the pod was deleted (from outside, or by an eviction).
var errPodGone = errors.New("the pod was deleted while the task ran")

func findStatus(statuses []corev1.ContainerStatus, name string) *corev1.ContainerStatus {
	for i := range statuses {
		if statuses[i].Name == name {
			return &statuses[i]
		}
	}
	return nil
}

// startProblem turns a container waiting for good into the runner's error:
// an image that cannot be pulled, a configuration the kubelet refuses.
func (run *run) startProblem(cs *corev1.ContainerStatus) error {
	w := cs.State.Waiting
	if w == nil {
		return nil
	}
	msg := w.Message
	image := cs.Image
	if image == "" {
		image = run.task.Image
	}
	switch w.Reason {
	case "ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName":
		low := strings.ToLower(msg)
		if strings.Contains(low, "unauthorized") || strings.Contains(low, "401") || strings.Contains(low, "403") ||
			strings.Contains(low, "authorization failed") || strings.Contains(low, "denied") {
			return fmt.Errorf("kubernetes: pull %s (container %s): %w: %s: %s", image, cs.Name, runner.ErrUnauthorized, w.Reason, msg)
		}
		return fmt.Errorf("kubernetes: pull %s (container %s): %w: %s: %s", image, cs.Name, runner.ErrImageNotFound, w.Reason, msg)
	case "CreateContainerConfigError", "CreateContainerError", "RunContainerError", "PreCreateHookError", "PreStartHookError":
		return fmt.Errorf("kubernetes: start container %s: %s: %s", cs.Name, w.Reason, msg)
	}
	return nil
}

// unschedulable returns the scheduler's reason when the pod cannot be
// placed, "" otherwise.
func unschedulable(pod *corev1.Pod) string {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return c.Message
		}
	}
	return ""
}

// waitStarted waits until container name has started (running or ended),
// failing early on a problem that waiting does not solve, and after
// WaitUntilRunning on a pod that cannot be scheduled or is still waiting.
func (run *run) waitStarted(ctx context.Context, name string, init bool) (*corev1.Pod, error) {
	bound := run.r.cfg.waitUntilRunning()
	wctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	pod, err := run.watchPod(wctx, func(pod *corev1.Pod) (bool, error) {
		statuses := pod.Status.ContainerStatuses
		if init {
			statuses = pod.Status.InitContainerStatuses
		}
		if pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
			if cs := findStatus(statuses, name); cs != nil && cs.State.Terminated != nil {
				return true, nil
			}
			return false, fmt.Errorf("kubernetes: pod %s ended (%s) before container %s started: %s %s", run.c.Name(), pod.Status.Phase, name, pod.Status.Reason, pod.Status.Message)
		}
		for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
			for i := range list {
				if err := run.startProblem(&list[i]); err != nil {
					return false, err
				}
			}
		}
		cs := findStatus(statuses, name)
		return cs != nil && (cs.State.Running != nil || cs.State.Terminated != nil), nil
	})
	if err != nil && ctx.Err() == nil && wctx.Err() != nil {
		why := "its containers did not start"
		if pod != nil {
			if reason := unschedulable(pod); reason != "" {
				why = "it cannot be scheduled: " + reason
			} else if cs := findStatus(append(slices.Clone(pod.Status.InitContainerStatuses), pod.Status.ContainerStatuses...), name); cs != nil && cs.State.Waiting != nil {
				why = fmt.Sprintf("container %s is waiting: %s %s", name, cs.State.Waiting.Reason, cs.State.Waiting.Message)
			}
		}
		return pod, fmt.Errorf("kubernetes: pod %s not running after waitUntilRunning %s: %s", run.c.Name(), bound, why)
	}
	if err != nil && errors.Is(err, errPodGone) {
		return pod, fmt.Errorf("kubernetes: pod %s: %w", run.c.Name(), err)
	}
	if err != nil && ctx.Err() == nil && !strings.HasPrefix(err.Error(), "kubernetes:") {
		err = run.r.apiError("watch pod "+run.c.Name(), err)
	}
	return pod, err
}
