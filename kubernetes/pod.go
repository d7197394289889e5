package kubernetes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
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

	"github.com/lading-dev/lading/runner"
)

// taskHash is the value of [LabelTask] for a task id.
func taskHash(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

func (run *run) labels() map[string]string {
	l := map[string]string{LabelManaged: "true", LabelRun: run.id}
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

// create makes the secret holding the task's secrets (when it has some)
// and the pod.
func (run *run) create(ctx context.Context, ws *workspace) error {
	cfg := &run.r.cfg
	api := run.r.cs.CoreV1()
	run.event(runner.StageCreating, run.name())
	meta := metav1.ObjectMeta{Name: run.name(), Namespace: run.r.namespace, Labels: run.labels(), Annotations: run.annotations()}

	env := make([]corev1.EnvVar, 0, len(ws.env)+len(run.task.Secrets))
	for _, k := range slices.Sorted(maps.Keys(ws.env)) {
		env = append(env, corev1.EnvVar{Name: k, Value: literal(ws.env[k])})
	}
	if len(run.task.Secrets) > 0 {
		// The values go in a Secret, not in the pod's spec, which anyone who
		// may read pods can read.
		data := make(map[string][]byte, len(run.task.Secrets))
		for k, v := range run.task.Secrets {
			data[k] = []byte(v)
		}
		sec := &corev1.Secret{ObjectMeta: meta, Data: data, Type: corev1.SecretTypeOpaque}
		if _, err := api.Secrets(run.r.namespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			return run.r.apiError("create secret "+run.name(), err)
		}
		run.secret = true
		for _, k := range slices.Sorted(maps.Keys(run.task.Secrets)) {
			env = append(env, corev1.EnvVar{Name: k, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: run.name()}, Key: k}}})
		}
	}

	interp := run.task.Interpreter
	if len(interp) == 0 {
		interp = runner.DefaultInterpreter()
	}
	command := append(slices.Clone(interp), strings.Join(ws.script, "\n"))
	for i := range command {
		command[i] = literal(command[i])
	}
	pull := cfg.pullPolicy()
	workMounts := []corev1.VolumeMount{{Name: volumeName, MountPath: ContainerWorkingDir, SubPath: "work"}}
	if ws.outputRel != "" {
		// The kubelet makes a subPath's directory, so the output directory
		// exists before the script starts, with no container to make it.
		workMounts = append(workMounts, corev1.VolumeMount{Name: volumeName, MountPath: ws.outputDir(), SubPath: "work/" + ws.outputRel})
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
			Command: command, Env: env, WorkingDir: ContainerWorkingDir, VolumeMounts: workMounts,
			Resources: run.resources(),
		}},
	}
	for _, s := range cfg.ImagePullSecrets {
		spec.ImagePullSecrets = append(spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
	}
	fileMounts := []corev1.VolumeMount{{Name: volumeName, MountPath: volumeMount}}
	if ws.upload {
		// Kestra's way: an init container that waits until the runner has
		// copied the files in (through exec and tar) and said so.
		spec.InitContainers = []corev1.Container{{
			Name: containerIn, Image: cfg.sidecarImage(), ImagePullPolicy: pull, VolumeMounts: fileMounts,
			Command: []string{"sh", "-c", "until [ -e " + markerIn + " ]; do sleep 0.1; done; rm -f " + markerIn},
		}}
	}
	if ws.collects() && cfg.waits() {
		// And a sidecar that waits until the runner has copied the files out.
		spec.Containers = append(spec.Containers, corev1.Container{
			Name: containerOut, Image: cfg.sidecarImage(), ImagePullPolicy: pull, VolumeMounts: fileMounts,
			Command: []string{"sh", "-c", "trap 'exit 0' TERM; until [ -e " + markerOut + " ]; do sleep 0.2; done"},
		})
	}
	pod, err := api.Pods(run.r.namespace).Create(ctx, &corev1.Pod{ObjectMeta: meta, Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		err = run.r.apiError("create pod "+run.name(), err)
		if run.secret {
			err = errors.Join(err, run.remove())
		}
		return err
	}
	run.uid = string(pod.UID)
	if run.secret {
		// Owned by the pod, the secret goes with it, also when lading does
		// not delete it (Delete false, or a crash).
		sec, err := api.Secrets(run.r.namespace).Get(ctx, run.name(), metav1.GetOptions{})
		if err == nil {
			t := true
			sec.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID, BlockOwnerDeletion: &t}}
			_, err = api.Secrets(run.r.namespace).Update(ctx, sec, metav1.UpdateOptions{})
		}
		if err != nil {
			run.log.Warn("the secret is not owned by the pod", "error", err)
		}
	}
	return nil
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

// watchPod waits until cond holds for the run's pod, watching it (with a
// relist when the watch breaks). A pod that is gone fails with an error
// saying so.
func (run *run) watchPod(ctx context.Context, cond func(*corev1.Pod) (bool, error)) (*corev1.Pod, error) {
	sel := fields.OneTermEqualSelector("metadata.name", run.name()).String()
	pods := run.r.cs.CoreV1().Pods(run.r.namespace)
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return pods.List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return pods.Watch(ctx, o)
		},
	}
	var last *corev1.Pod
	_, err := watchtools.UntilWithSync(ctx, lw, &corev1.Pod{}, func(store cache.Store) (bool, error) {
		if len(store.List()) == 0 {
			return false, errPodGone
		}
		return false, nil
	}, func(ev watch.Event) (bool, error) {
		if ev.Type == watch.Deleted {
			return false, errPodGone
		}
		pod, ok := ev.Object.(*corev1.Pod)
		if !ok {
			return false, nil
		}
		if run.uid != "" && string(pod.UID) != run.uid {
			return false, errPodGone
		}
		last = pod
		return cond(pod)
	})
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
			return false, fmt.Errorf("kubernetes: pod %s ended (%s) before container %s started: %s %s", run.name(), pod.Status.Phase, name, pod.Status.Reason, pod.Status.Message)
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
		return pod, fmt.Errorf("kubernetes: pod %s not running after waitUntilRunning %s: %s", run.name(), bound, why)
	}
	if err != nil && errors.Is(err, errPodGone) {
		return pod, fmt.Errorf("kubernetes: pod %s: %w", run.name(), err)
	}
	if err != nil && ctx.Err() == nil && !strings.HasPrefix(err.Error(), "kubernetes:") {
		err = run.r.apiError("watch pod "+run.name(), err)
	}
	return pod, err
}

// execute copies the input files in, follows the script's output until its
// container ends, and copies the output files out.
func (run *run) execute(ctx context.Context, ws *workspace) (*runner.Result, error) {
	if ws.upload {
		if _, err := run.waitStarted(ctx, containerIn, true); err != nil {
			return nil, err
		}
		run.event(runner.StageStaging, ws.hostDir)
		if err := run.copyIn(ctx, ws); err != nil {
			return nil, err
		}
	}
	pod, err := run.waitStarted(ctx, containerTask, false)
	if err != nil {
		return nil, err
	}
	run.node = pod.Spec.NodeName
	res := &runner.Result{Started: time.Now()}
	run.event(runner.StageRunning, run.name())
	if !run.r.cfg.waits() {
		return res, nil
	}

	// The script's own limit counts from here.
	scriptCtx := ctx
	if run.task.ScriptTimeout > 0 {
		run.scriptTimeout = &runner.TimeoutError{Timeout: run.task.ScriptTimeout, Cause: context.DeadlineExceeded, Limit: "scriptTimeout"}
		var cancel context.CancelFunc
		scriptCtx, cancel = context.WithTimeoutCause(ctx, run.task.ScriptTimeout, run.scriptTimeout)
		defer cancel()
	}

	sink := run.newSink()
	streams := run.followLogs(sink)
	ended, err := run.watchPod(scriptCtx, func(pod *corev1.Pod) (bool, error) {
		cs := findStatus(pod.Status.ContainerStatuses, containerTask)
		return cs != nil && cs.State.Terminated != nil, nil
	})
	res.Finished = time.Now()
	var stopErr error
	if err != nil {
		// Cancelled, timed out, or the pod went away: delete it with the
		// grace period, then let the streams end.
		stopErr = err
		if scriptCtx.Err() != nil {
			stopErr = context.Cause(scriptCtx)
			run.event(runner.StageStopping, run.name())
			if derr := run.stopPod(); derr != nil {
				stopErr = errors.Join(stopErr, derr)
			}
		}
		bound := time.Duration(run.r.cfg.gracePeriodSeconds())*time.Second + APITimeout
		warn := streams.wait(bound)
		res.Finished = time.Now()
		cerr := sink.Close()
		sink.Fill(res)
		res.Warnings = append(res.Warnings, warn...)
		if cerr != nil {
			res.Warnings = append(res.Warnings, "output writer: "+cerr.Error())
		}
		if errors.Is(stopErr, errPodGone) {
			return res, fmt.Errorf("kubernetes: pod %s: %w", run.name(), stopErr)
		}
		if scriptCtx.Err() != nil && ctx.Err() == nil {
			// The script's own limit: the error is the TimeoutError itself.
			return res, errors.Join(run.scriptTimeout, derrOnly(stopErr, run.scriptTimeout))
		}
		return res, stopErr
	}
	if warn := streams.wait(OutputWaitDelay); len(warn) > 0 {
		res.Warnings = append(res.Warnings, warn...)
	}
	cerr := sink.Close()
	sink.Fill(res)
	if cerr != nil {
		res.Warnings = append(res.Warnings, "output writer: "+cerr.Error())
	}
	cs := findStatus(ended.Status.ContainerStatuses, containerTask)
	term := cs.State.Terminated
	res.ExitCode = int(term.ExitCode)
	res.OOMKilled = term.Reason == "OOMKilled"
	if streams.blocked() {
		return res, fmt.Errorf("kubernetes: %w: the task's writers did not return within %s of the container's end", runner.ErrOutputBlocked, OutputWaitDelay)
	}
	var errs []error
	if ws.collects() {
		errs = append(errs, run.collect(ctx, ws, res))
	}
	if res.ExitCode != 0 || res.OOMKilled {
		errs = append([]error{&runner.ExitError{ExitCode: res.ExitCode, OOMKilled: res.OOMKilled}}, errs...)
	}
	return res, errors.Join(errs...)
}

// derrOnly returns the part of err that is not the timeout itself.
func derrOnly(err error, timeout error) error {
	if err == timeout {
		return nil
	}
	var j interface{ Unwrap() []error }
	if errors.As(err, &j) {
		var rest []error
		for _, e := range j.Unwrap() {
			if e != timeout {
				rest = append(rest, e)
			}
		}
		return errors.Join(rest...)
	}
	return err
}

// stopPod deletes the pod with the grace period, on a fresh bounded
// context: its containers get SIGTERM, then SIGKILL.
func (run *run) stopPod() error {
	ctx, cancel := context.WithTimeout(context.Background(), APITimeout)
	defer cancel()
	grace := run.r.cfg.gracePeriodSeconds()
	err := run.r.cs.CoreV1().Pods(run.r.namespace).Delete(ctx, run.name(), metav1.DeleteOptions{GracePeriodSeconds: &grace})
	if err != nil && !apierrors.IsNotFound(err) {
		if ctx.Err() != nil {
			run.unresponsive = true
			return fmt.Errorf("kubernetes: delete pod %s: %w: no answer within %s", run.name(), runner.ErrEngineUnresponsive, APITimeout)
		}
		return run.r.apiError("delete pod "+run.name(), err)
	}
	return nil
}

// logStreams follows the task container's log streams.
type logStreams struct {
	wg     sync.WaitGroup
	mu     sync.Mutex
	bodies []io.Closer
	errs   []string
	moved  atomic.Int64 // when bytes last reached the sink, in Unix nanoseconds
	stuck  bool
}

// followLogs starts following the task container's output into sink: one
// stream with COMBINED, stdout and stderr apart with SPLIT. The streams end
// once the container has ended and its log is read to the end.
func (run *run) followLogs(sink interface{ Writer(runner.Stream) io.Writer }) *logStreams {
	ls := &logStreams{}
	type part struct {
		stream string
		to     runner.Stream
	}
	parts := []part{{"", runner.Stdout}}
	if run.r.cfg.LogStreams == LogStreamsSplit {
		parts = []part{{corev1.LogStreamStdout, runner.Stdout}, {corev1.LogStreamStderr, runner.Stderr}}
	}
	for _, p := range parts {
		ls.wg.Go(func() {
			opts := &corev1.PodLogOptions{Container: containerTask, Follow: true}
			if p.stream != "" {
				s := p.stream
				opts.Stream = &s
			}
			// The stream's own context: a cancelled run still reads what the
			// container wrote until it stopped.
			body, err := run.r.cs.CoreV1().Pods(run.r.namespace).GetLogs(run.name(), opts).Stream(context.Background())
			if err != nil {
				ls.mu.Lock()
				ls.errs = append(ls.errs, fmt.Sprintf("logs of %s: %v", p.to, err))
				ls.mu.Unlock()
				return
			}
			ls.mu.Lock()
			ls.bodies = append(ls.bodies, body)
			ls.mu.Unlock()
			defer body.Close()
			if _, err := io.Copy(progress{sink.Writer(p.to), &ls.moved}, body); err != nil && !errors.Is(err, io.ErrClosedPipe) && !strings.Contains(err.Error(), "closed") {
				ls.mu.Lock()
				ls.errs = append(ls.errs, fmt.Sprintf("logs of %s: %v", p.to, err))
				ls.mu.Unlock()
			}
		})
	}
	return ls
}

// wait waits for the streams to end, for as long as bytes keep coming and
// for at most bound after the last one (like os/exec's WaitDelay), closes
// those still open, and returns the warnings to add.
func (ls *logStreams) wait(bound time.Duration) []string {
	done := make(chan struct{})
	go func() { ls.wg.Wait(); close(done) }()
	var warn []string
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	ls.moved.Store(time.Now().UnixNano())
wait:
	for {
		select {
		case <-done:
			break wait
		case <-tick.C:
			if time.Since(time.Unix(0, ls.moved.Load())) < bound {
				continue
			}
			ls.mu.Lock()
			for _, b := range ls.bodies {
				_ = b.Close()
			}
			ls.mu.Unlock()
			select {
			case <-done:
				warn = append(warn, fmt.Sprintf("the log stream was still open %s after its last byte (and the container's end): closed", bound))
			case <-time.After(OutputWaitDelay):
				ls.stuck = true
			}
			break wait
		}
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return append(warn, ls.errs...)
}

// progress is the writer a stream is copied through: it notes when bytes
// last moved.
type progress struct {
	w     io.Writer
	moved *atomic.Int64
}

func (p progress) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.moved.Store(time.Now().UnixNano())
	return n, err
}

// blocked reports whether a copy into the sink was still under way when
// wait gave up: a writer that does not return.
func (ls *logStreams) blocked() bool { return ls.stuck }
