package kubernetes

import (
	"context"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/lading-dev/lading/internal/core"
)

// Find looks for the newest pod of an earlier run of the task whose
// creating process is gone, and takes over its run id.
func (run *run) Find(ctx context.Context) (bool, error) {
	sel := labels.SelectorFromSet(labels.Set{LabelManaged: "true", LabelTask: taskHash(run.task.ID)}).String()
	list, err := run.r.cs.CoreV1().Pods(run.r.namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return false, run.r.apiError("look for a pod to resume", err)
	}
	var found *corev1.Pod
	for i, p := range list.Items {
		if p.Annotations[AnnotationTask] != run.task.ID || p.DeletionTimestamp != nil || ownerMayBeAliveHere(p.ObjectMeta) {
			continue
		}
		if found == nil || found.CreationTimestamp.Before(&p.CreationTimestamp) {
			found = &list.Items[i]
		}
	}
	if found == nil {
		return false, nil
	}
	run.c.ID, run.c.ContainerID, run.uid = found.Labels[LabelRun], found.Name, string(found.UID)
	for _, c := range found.Spec.Containers {
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == found.Name {
				run.secret = true
			}
		}
	}
	return true, nil
}

// ownerMayBeAliveHere reports whether the creating process is on this host
// and may still be running: such a pod belongs to a live run. A pod of
// another host's process is taken over.
func ownerMayBeAliveHere(meta metav1.ObjectMeta) bool {
	host, _ := os.Hostname()
	return meta.Annotations[AnnotationOwnerHost] == host && ownerMayBeAlive(meta)
}

// Reattach follows the pod Find found: its log from the start, and its
// task container's end. A pod whose task container has not started gives
// no attachment (Run then waits for the start as for a new pod), once its
// init container, if it still waits for the input files, has them.
func (run *run) Reattach(ctx context.Context) (*core.Attachment, time.Time, error) {
	pod, err := run.r.cs.CoreV1().Pods(run.r.namespace).Get(ctx, run.c.Name(), metav1.GetOptions{})
	if err != nil {
		return nil, time.Time{}, run.r.apiError("read the pod to resume", err)
	}
	run.setNode(pod)
	cs := findStatus(pod.Status.ContainerStatuses, containerTask)
	switch {
	case cs != nil && cs.State.Running != nil:
		run.attached = true
		return run.follow(ctx), cs.State.Running.StartedAt.Time, nil
	case cs != nil && cs.State.Terminated != nil:
		run.attached = true
		return run.follow(ctx), cs.State.Terminated.StartedAt.Time, nil
	}
	if in := findStatus(pod.Status.InitContainerStatuses, containerIn); len(pod.Spec.InitContainers) > 0 && (in == nil || in.State.Terminated == nil) {
		// The earlier process died before the input files were in: they
		// are staged and copied again.
		run.c.Log.Debug("resuming a pod that waits for its input files", "pod", pod.Name)
		if err := run.files.Stage(ctx); err != nil {
			return nil, time.Time{}, err
		}
		if err := run.files.upload(ctx); err != nil {
			return nil, time.Time{}, err
		}
	}
	return nil, time.Time{}, nil
}
