package kubernetes

import (
	"context"
	"errors"
	"os"
	"strconv"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/lading-dev/lading/internal/core"
)

// PruneOptions says what [Runner.Prune] removes.
type PruneOptions struct {
	// OlderThan spares what was created less than this long ago. Zero
	// means everything that qualifies, whatever its age.
	OlderThan time.Duration
	// Labels, when set, narrows the sweep to pods and secrets carrying all
	// of these labels (see [Config.Labels]).
	Labels map[string]string
	// DryRun reports what would be removed without removing it.
	DryRun bool
}

// PruneResult lists what [Runner.Prune] removed (or, with DryRun, would
// remove), by name, in the runner's namespace.
type PruneResult struct {
	Pods    []string
	Secrets []string
}

// Prune removes what lading runs left in the runner's namespace, typically
// after the host program crashed: pods and secrets that carry
// [LabelManaged], were created more than OlderThan ago, and whose owner is
// gone. The owner is the process named by the [AnnotationOwnerHost] and
// [AnnotationOwnerPID] annotations: one on another host is assumed alive
// (lading cannot tell), so its pods are kept; one on this host is alive
// while that process exists; for this very process, while the run is in
// progress, or, for a pod handed over ([LabelDetached]), until the pod has
// ended. Pods and secrets without lading's label are never touched. A
// secret owned by a pod goes with it (Kubernetes' garbage collector); Prune
// removes those whose pod was never made.
func (r *Runner) Prune(ctx context.Context, opts PruneOptions) (PruneResult, error) {
	var res PruneResult
	var errs []error
	cutoff := time.Now().Add(-opts.OlderThan)
	set := labels.Set{LabelManaged: "true"}
	for k, v := range opts.Labels {
		set[k] = v
	}
	sel := labels.SelectorFromSet(set).String()

	pods, err := r.cs.CoreV1().Pods(r.namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return res, r.apiError("list pods", err)
	}
	for _, p := range pods.Items {
		if p.CreationTimestamp.After(cutoff) || p.DeletionTimestamp != nil {
			continue
		}
		ended := p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
		if ownerMayBeAlive(p.ObjectMeta) && !(ended && p.Labels[LabelDetached] == "true") {
			continue
		}
		if !opts.DryRun {
			grace := r.cfg.gracePeriodSeconds()
			err := r.cs.CoreV1().Pods(r.namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace})
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, r.apiError("delete pod "+p.Name, err))
				continue
			}
		}
		res.Pods = append(res.Pods, p.Name)
	}

	secrets, err := r.cs.CoreV1().Secrets(r.namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return res, errors.Join(append(errs, r.apiError("list secrets", err))...)
	}
	for _, s := range secrets.Items {
		if len(s.OwnerReferences) > 0 || s.CreationTimestamp.After(cutoff) || ownerMayBeAlive(s.ObjectMeta) {
			continue
		}
		if !opts.DryRun {
			err := r.cs.CoreV1().Secrets(r.namespace).Delete(ctx, s.Name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, r.apiError("delete secret "+s.Name, err))
				continue
			}
		}
		res.Secrets = append(res.Secrets, s.Name)
	}
	return res, errors.Join(errs...)
}

// ownerMayBeAlive reports whether the process that created an object may
// still be at work on it.
func ownerMayBeAlive(meta metav1.ObjectMeta) bool {
	host, _ := os.Hostname()
	if meta.Annotations[AnnotationOwnerHost] != host {
		return true
	}
	pid, err := strconv.Atoi(meta.Annotations[AnnotationOwnerPID])
	if err != nil || pid <= 0 {
		return true // no owner recorded: assume the worst
	}
	if pid == os.Getpid() {
		return meta.Labels[LabelDetached] == "true" || liveRuns.Has(meta.Labels[LabelRun])
	}
	// Signal 0 checks that the process exists (EPERM: it does, as another
	// user's). A pid reused by another process keeps the pod: the safe side.
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// liveRuns holds the ids of the runs in progress in this process, those of
// every Runner, so that Prune spares them.
var liveRuns core.RunSet
