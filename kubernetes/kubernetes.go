package kubernetes

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/lading-dev/lading/internal/core"
	"github.com/lading-dev/lading/internal/logs"
	"github.com/lading-dev/lading/internal/mask"
	"github.com/lading-dev/lading/runner"
)

// Labels set on every pod and secret lading creates. [LabelManaged] finds
// them all; [LabelRun] finds those of a run. They are the docker runner's
// label keys.
const (
	LabelManaged = "dev.lading.managed" // always "true"
	LabelRun     = "dev.lading.run"     // the run's random id, also in [Details.RunID]
	// LabelTask holds a hash of [runner.Task.ID] (a label value cannot
	// hold any text); the ID itself is in the annotation of the same name.
	LabelTask = "dev.lading.task"
	// LabelDetached is "true" on the pod of a run with [Config.Wait]
	// false: Run handed it over to the caller.
	LabelDetached = "dev.lading.detached"
)

// Annotations that say which process created a pod, read by
// [Runner.Prune], and the task's id as written.
const (
	AnnotationOwnerHost = "dev.lading.owner.host" // the creating process's host name
	AnnotationOwnerPID  = "dev.lading.owner.pid"  // its process id
	AnnotationTask      = "dev.lading.task"       // [runner.Task.ID]
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

// ContainerWorkingDir is where the working directory is inside the task's
// container, as in the docker runner; {{ workingDir }} and WORKING_DIR name
// it.
const ContainerWorkingDir = "/lading/work"

// cleanupTimeout bounds every cleanup call, which runs on a fresh context so
// that a cancelled caller still leaves a clean cluster.
const cleanupTimeout = 30 * time.Second

// APITimeout bounds each wait for the API server once a run is being
// stopped (its context cancelled or its timeout reached): the deletion of
// the pod, then the wait for its containers to stop gets the grace period
// plus APITimeout. When it is reached, Run returns without waiting longer;
// the pod is left for [Runner.Prune].
const APITimeout = 10 * time.Second

// OutputWaitDelay bounds how long Run waits, once the task's container has
// ended, for the log streams to end and their lines to be delivered (like
// os/exec's Cmd.WaitDelay). A stream still open then is closed, with a
// warning; a writer that blocks makes Run fail with
// [runner.ErrOutputBlocked].
const OutputWaitDelay = 5 * time.Second

// Runner runs tasks as pods on a Kubernetes cluster. It is safe for
// concurrent use and holds no resources that need closing.
type Runner struct {
	cfg       Config
	rest      *rest.Config
	cs        kubernetes.Interface
	namespace string
	host      string // the API server's address, for errors
	log       *slog.Logger
	owner     map[string]string // annotations naming this process

	splitOnce sync.Once
	splitErr  error // why LogStreams SPLIT cannot work, after the first check
}

var _ runner.Runner = (*Runner)(nil)

// Details is the Kubernetes-specific part of a [runner.Result], in its
// Details field.
type Details struct {
	// Namespace and Pod name the pod that ran the task. With
	// [Config.Delete] (the default) it no longer exists when Run returns.
	Namespace string
	Pod       string
	// RunID is the random id lading gave the run, in the pod's [LabelRun]
	// label and name ("lading-<RunID>").
	RunID string
	// Node is the node the pod ran on.
	Node string
}

// New returns a Runner for cfg. It validates cfg and reads the kubeconfig
// (or the in-cluster configuration), but does not contact the API server.
func New(cfg Config) (*Runner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	restCfg, ns, err := loadConfig(cfg)
	if err != nil {
		return nil, err
	}
	// The runner's watches and log streams are long-lived; client-go's
	// default limits (5 QPS) would serialise a few concurrent runs.
	restCfg.QPS, restCfg.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w: %w", runner.ErrInvalidConfig, err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, _ := os.Hostname()
	return &Runner{
		cfg: cfg, rest: restCfg, cs: cs, namespace: ns, host: restCfg.Host, log: log,
		owner: map[string]string{AnnotationOwnerHost: host, AnnotationOwnerPID: fmt.Sprint(os.Getpid())},
	}, nil
}

// loadConfig returns the client configuration and the namespace cfg names.
func loadConfig(cfg Config) (*rest.Config, string, error) {
	ns := cfg.Namespace
	if cfg.Kubeconfig == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "" && os.Getenv("KUBECONFIG") == "" {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, "", invalidConfig("kubeconfig", "", "empty, and the in-cluster configuration cannot be read: "+err.Error())
		}
		if ns == "" {
			if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
				ns = strings.TrimSpace(string(b))
			}
		}
		if ns == "" {
			ns = "default"
		}
		return rc, ns, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if cfg.Kubeconfig != "" {
		if _, err := os.Stat(cfg.Kubeconfig); err != nil {
			return nil, "", invalidConfig("kubeconfig", cfg.Kubeconfig, "cannot be read: "+err.Error())
		}
		rules.ExplicitPath = cfg.Kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: cfg.Context})
	rc, err := cc.ClientConfig()
	if err != nil {
		field, value := "kubeconfig", cfg.Kubeconfig
		if cfg.Context != "" {
			field, value = "context", cfg.Context
		}
		return nil, "", invalidConfig(field, value, "gives no usable cluster configuration (set kubeconfig, KUBECONFIG or run in a pod): "+err.Error())
	}
	if ns == "" {
		if ns, _, err = cc.Namespace(); err != nil || ns == "" {
			ns = "default"
		}
	}
	return rc, ns, nil
}

// Run runs the task's script in a new pod and returns when the script has
// ended, its output has been read to the end, its output files have been
// copied back and (with [Config.Delete]) the pod has been deleted.
//
// See [runner.Runner] for the meaning of the result and the errors. When ctx
// is cancelled or [runner.Task.Timeout] or [runner.Task.ScriptTimeout] is
// reached, the pod is deleted with [Config.KillGracePeriod] (the script gets
// SIGTERM, then SIGKILL), its output up to then is kept in the returned
// Result, and no output file is collected; the error matches ctx.Err() (or
// [runner.ErrTimeout] with [context.DeadlineExceeded]). ScriptTimeout counts
// from the moment the task's container is seen running.
func (r *Runner) Run(ctx context.Context, task runner.Task) (res *runner.Result, err error) {
	// The masker comes first, so that no error Run returns quotes a secret.
	masker := core.NewMasker(task.Secrets)
	if masker != nil {
		defer func() {
			err = core.MaskError(masker, err)
			if res != nil {
				for i, w := range res.Warnings {
					res.Warnings[i] = masker.String(w)
				}
			}
		}()
	}
	if err := task.Validate(); err != nil {
		return nil, err
	}
	if _, err := reference.ParseNormalizedNamed(task.Image); err != nil {
		return nil, &runner.FieldError{Field: "image", Value: task.Image, Problem: "is not a valid image reference: " + err.Error(), Err: runner.ErrInvalidTask}
	}
	run := &run{r: r, task: task, id: newRunID(), mask: masker}
	run.log = r.log.With("run", run.id, "image", task.Image)
	defer liveRuns.Add(run.id)()
	if task.Timeout > 0 {
		run.timeout = &runner.TimeoutError{Timeout: task.Timeout, Cause: context.DeadlineExceeded, Limit: "timeout"}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, task.Timeout, run.timeout)
		defer cancel()
	}
	if r.cfg.LogStreams == LogStreamsSplit {
		if err := r.checkSplit(ctx); err != nil {
			return nil, run.stopped(ctx, err)
		}
	}
	run.doing = "rendering the task"
	ws, err := run.prepare(ctx)
	if err != nil {
		return nil, run.stopped(ctx, err)
	}
	defer func() {
		if res == nil {
			ws.discard()
		}
	}()
	if err := run.stage(ctx, ws); err != nil {
		return nil, run.stopped(ctx, err)
	}
	if err := run.create(ctx, ws); err != nil {
		return nil, run.stopped(ctx, err)
	}
	if r.cfg.deletes() && r.cfg.waits() {
		defer func() { err = errors.Join(err, run.remove()) }()
	}
	res, err = run.execute(ctx, ws)
	if res != nil {
		res.WorkingDir = ws.hostDir
		res.Details = &Details{Namespace: r.namespace, Pod: run.name(), RunID: run.id, Node: run.node}
	}
	return res, run.stopped(ctx, err)
}

// checkSplit checks once that the API server knows the logs API's stream
// parameter (PodLogsQuerySplitStreams): it refuses stream=Stderr with
// tailLines, where a server without the feature drops the parameter and
// answers about the (missing) pod.
func (r *Runner) checkSplit(ctx context.Context) error {
	r.splitOnce.Do(func() {
		stream, tail := corev1.LogStreamStderr, int64(1)
		err := r.cs.CoreV1().Pods(r.namespace).GetLogs("lading-feature-check-"+newRunID(),
			&corev1.PodLogOptions{Stream: &stream, TailLines: &tail}).Do(ctx).Error()
		switch {
		case apierrors.IsBadRequest(err) || apierrors.IsInvalid(err):
			r.splitErr = nil
		case err == nil || apierrors.IsNotFound(err):
			r.splitErr = invalidConfig("logStreams", string(LogStreamsSplit), "the API server does not read the logs' stream parameter: enable the feature gate PodLogsQuerySplitStreams on the API server and the kubelets, or use COMBINED")
		default:
			r.splitErr = r.apiError("check the logs API", err)
			defer func() { r.splitOnce = sync.Once{} }() // ask again next time
		}
	})
	return r.splitErr
}

// apiError wraps an error of the API server, saying what was being done; an
// API server that cannot be reached gives [runner.ErrEngineUnreachable]
// with what to set.
func (r *Runner) apiError(doing string, err error) error {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		if apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) {
			return fmt.Errorf("kubernetes: %s: %w: %w", doing, runner.ErrUnauthorized, err)
		}
		return fmt.Errorf("kubernetes: %s: %w", doing, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("kubernetes: %s: %w", doing, err)
	}
	return fmt.Errorf("kubernetes: %s: %w: cannot reach the API server at %s (set kubeconfig or KUBECONFIG, or run in a pod): %w",
		doing, runner.ErrEngineUnreachable, r.host, err)
}

// run is the state of one Run call.
type run struct {
	r    *Runner
	mask *mask.Masker // nil when the task has no secrets
	task runner.Task
	id   string
	log  *slog.Logger
	node string

	timeout       *runner.TimeoutError // the cause set when Task.Timeout is reached
	scriptTimeout *runner.TimeoutError // the cause set when Task.ScriptTimeout is reached
	doing         string               // what the run is doing, for errors
	secret        bool                 // a secret holds the task's secrets
	uid           string               // the pod's uid, once created
	unresponsive  bool                 // a bounded wait gave up: make no more calls
}

func (run *run) name() string { return "lading-" + run.id }

// event reports a stage to the task's OnEvent and the debug log.
func (run *run) event(stage runner.Stage, detail string) {
	if stage != runner.StageStopping && stage != runner.StageCleaning {
		run.doing = string(stage)
	}
	detail = run.mask.String(detail)
	run.log.Debug(string(stage), "detail", detail)
	if run.task.OnEvent != nil {
		run.task.OnEvent(runner.Event{Stage: stage, Time: time.Now(), Detail: detail})
	}
}

// stopped turns the error of a run whose ctx is done into one that matches
// the cause, says what the run was doing, and keeps err.
func (run *run) stopped(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	cause := context.Cause(ctx)
	var te *runner.TimeoutError
	if errors.As(err, &te) && (te == run.timeout || te == run.scriptTimeout) {
		return err
	}
	if cause == run.timeout && run.timeout != nil {
		return fmt.Errorf("kubernetes: %w while %s: %w", run.timeout, run.doing, withoutCause(err, ctx))
	}
	if errors.Is(err, cause) {
		return err
	}
	return fmt.Errorf("kubernetes: stopped while %s: %w: %w", run.doing, cause, err)
}

// withoutCause hides the context's own error in err, which the timeout
// already stands for.
func withoutCause(err error, ctx context.Context) error {
	if errors.Is(err, ctx.Err()) {
		return errors.New(err.Error())
	}
	return err
}

// remove deletes the pod and the secret, on a fresh bounded context;
// NotFound is success.
func (run *run) remove() error {
	if run.unresponsive {
		return nil
	}
	run.event(runner.StageCleaning, run.name())
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	grace := run.r.cfg.gracePeriodSeconds()
	var errs []error
	err := run.r.cs.CoreV1().Pods(run.r.namespace).Delete(ctx, run.name(), metav1.DeleteOptions{GracePeriodSeconds: &grace})
	if err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, run.r.apiError("delete pod "+run.name(), err))
	}
	if run.secret {
		err := run.r.cs.CoreV1().Secrets(run.r.namespace).Delete(ctx, run.name(), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, run.r.apiError("delete secret "+run.name(), err))
		}
	}
	return errors.Join(errs...)
}

// newSink returns the sink of the run's output.
func (run *run) newSink() *logs.Sink {
	return logs.New(run.task.Stdout, run.task.Stderr, run.task.OnLine, run.mask)
}

func newRunID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
