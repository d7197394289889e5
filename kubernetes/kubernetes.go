package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/lading-dev/lading/internal/core"
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

// ContainerWorkingDir is where the working directory is inside the task's
// container; {{ workingDir }} and WORKING_DIR name it.
const ContainerWorkingDir = "/lading/work"

// APITimeout bounds each wait for the API server once a run is being
// stopped (its context cancelled or its timeout reached): the deletion of
// the pod and the wait for its task container to end get the grace period
// plus APITimeout, every later call APITimeout. When a call goes
// unanswered, Run makes no further call and returns an error matching
// [runner.ErrEngineUnresponsive]; the pod is left for [Runner.Prune].
const APITimeout = core.EngineTimeout

// OutputWaitDelay bounds how long Run waits, once the task's container has
// ended, for its log to be read to the end and its lines delivered, counted
// from the last byte that moved (like os/exec's Cmd.WaitDelay). A stream
// still open then is closed, with a warning; a writer that blocks makes Run
// fail with [runner.ErrOutputBlocked].
const OutputWaitDelay = core.OutputWaitDelay

// reachHint says how to make an unreachable API server reachable.
const reachHint = "set kubeconfig or KUBECONFIG, or run in a pod"

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
	opts      core.Options      // what core.Run applies

	splitMu    sync.Mutex
	splitKnown bool  // the API server said whether LogStreams SPLIT works
	splitErr   error // why it does not, once known
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
	r := &Runner{
		cfg: cfg, rest: restCfg, cs: cs, namespace: ns, host: restCfg.Host, log: log,
		owner: map[string]string{AnnotationOwnerHost: host, AnnotationOwnerPID: fmt.Sprint(os.Getpid())},
	}
	r.opts = core.Options{
		Name: "kubernetes", Log: log, Resume: cfg.Resume, Wait: cfg.waits(), Delete: cfg.deletes(),
		KillGrace: time.Duration(cfg.gracePeriodSeconds()) * time.Second, ContainerDir: ContainerWorkingDir,
		MaxOutputBytes: cfg.MaxOutputBytes, MaxOutputFiles: cfg.MaxOutputFiles, Track: liveRuns.Add,
	}
	return r, nil
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
// Result, and no output file is collected; the error matches ctx.Err() and
// context.Cause(ctx) ([runner.ErrTimeout] with [context.DeadlineExceeded]
// for the task's own limits) and says what the run was doing.
// ScriptTimeout counts from the moment the task's container is seen
// running. With [Config.Resume], a task with an ID whose pod an earlier,
// crashed process left is followed in that pod instead of started again.
func (r *Runner) Run(ctx context.Context, task runner.Task) (*runner.Result, error) {
	return core.Run(ctx, task, r.opts, func(c *core.State) core.Engine {
		return &run{r: r, c: c, task: c.Task}
	})
}

// checkSplit checks, until the API server has answered, that it knows the
// logs API's stream parameter (PodLogsQuerySplitStreams): it refuses
// stream=Stderr with tailLines, where a server without the feature drops
// the parameter and answers about the (missing) pod.
func (r *Runner) checkSplit(ctx context.Context) error {
	r.splitMu.Lock()
	defer r.splitMu.Unlock()
	if r.splitKnown {
		return r.splitErr
	}
	stream, tail := corev1.LogStreamStderr, int64(1)
	err := r.cs.CoreV1().Pods(r.namespace).GetLogs("lading-feature-check-"+core.NewRunID(),
		&corev1.PodLogOptions{Stream: &stream, TailLines: &tail}).Do(ctx).Error()
	switch {
	case apierrors.IsBadRequest(err) || apierrors.IsInvalid(err):
		r.splitKnown, r.splitErr = true, nil
	case err == nil || apierrors.IsNotFound(err):
		r.splitKnown = true
		r.splitErr = invalidConfig("logStreams", string(LogStreamsSplit), "the API server does not read the logs' stream parameter: enable the feature gate PodLogsQuerySplitStreams on the API server and the kubelets, or use COMBINED")
	default:
		return r.apiError("check the logs API", err) // asked again next time
	}
	return r.splitErr
}

// apiError wraps an error of the API server with what was being done: one
// that refuses lading's credentials matches [runner.ErrUnauthorized]; an
// API server that cannot be reached gives [runner.ErrEngineUnreachable]
// with what to set.
func (r *Runner) apiError(doing string, err error) error {
	e := &core.EngineError{Engine: "kubernetes", Doing: doing, Reach: reachHint, Err: err, Seen: time.Now()}
	var status apierrors.APIStatus
	switch {
	case errors.As(err, &status):
		if apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err) {
			e.Err = fmt.Errorf("%w: %w", runner.ErrUnauthorized, err)
		}
	case unreachable(err):
		e.Host = r.host
	}
	return e
}

// unreachable reports whether err says that the API server could not be
// reached at all: a connection refused, reset or timed out, a name that
// does not resolve. Other errors (an exec refused, a stream that ended)
// say something about the call, not the server.
func unreachable(err error) bool {
	var opErr *net.OpError
	var dnsErr *net.DNSError
	return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) &&
		(errors.As(err, &opErr) || errors.As(err, &dnsErr) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET))
}
