// Package kubernetes runs lading tasks as pods on a Kubernetes cluster: the
// same [runner.Task] and [runner.Result] as the docker package, on
// k8s.io/client-go, with a configuration in the spirit of Kestra's
// Kubernetes task runner ([Config]).
//
//	r, err := kubernetes.New(kubernetes.Config{Kubeconfig: "/path/to/kubeconfig", Namespace: "tasks"})
//	if err != nil {
//		log.Fatal(err)
//	}
//	res, err := r.Run(ctx, runner.Task{Image: "busybox:1.36", Commands: []string{"echo hello"}})
//
// # One pod per task
//
// Each task runs as a bare pod (not a Job) named lading-<run id>, with
// restartPolicy Never: a Job would add a controller between the runner and
// the pod (its own retries, its own deletion policy, a second object to
// clean up) for nothing lading uses; the runner watches the pod itself and
// decides what a failure means. The pod carries the docker runner's labels
// ([LabelManaged], [LabelRun], [LabelTask]) and annotations naming the
// process that made it, which [Runner.Prune] reads to remove what a crashed
// host program left.
//
// The pod has up to three containers, sharing one emptyDir volume:
//
//   - "lading-in", an init container (only when there are files to copy
//     in): it waits until the runner has streamed the host working
//     directory into the volume through exec and tar, then ends, so the
//     files are in before the script starts (Kestra's way);
//   - "task", which runs the interpreter with the script in
//     [ContainerWorkingDir] (the volume's subdirectory "work"; the output
//     directory is a subdirectory of it that the kubelet makes);
//   - "lading-out", a sidecar (when output files or the output directory
//     are to come back): it waits until the runner has read the files back
//     through exec and tar once the task's container has ended.
//
// The file containers run [FileSidecar.Image] (busybox by default). The
// task's secrets go in a Secret owned by the pod, not in its spec; no
// service account token is mounted unless [Config.ServiceAccountName] is
// set.
//
// # Output
//
// The task container's log is followed through the logs API from its
// start, line by line into the same sink as the docker runner's (the same
// splitting, ::{...}:: outputs, metrics, masking), until the container has
// ended and the log is read to its end. By default the logs API gives
// stdout and stderr interleaved as one stream, delivered as stdout; with
// [LogStreamsSplit] (which needs the PodLogsQuerySplitStreams feature gate)
// the two come apart.
//
// A follow of the logs API ends when the kubelet finds the container no
// longer running at the end of its log file, which can come long before
// the runtime has written the last of the container's output there (a
// follow of a flood of 2 Mi lines ended here after 1.6 Mi of them). A
// follow also ends when a connection breaks, as when the API server
// restarts. So when a follow ends the log is read again from its start,
// until a read begun once the container has ended brings nothing new: the
// bytes already delivered are dropped, after a checksum says they are the
// same, and what follows them is delivered. A log that changed meanwhile
// (rotated by the kubelet) ends the output with a warning saying lines may
// be missing.
//
// What the runtime never writes to the log file no reader can deliver: on
// the CI node (containerd's CRI) a script that writes a flood as fast as it
// can and exits at once sometimes loses the tail of it there (seq 2097152
// left a file ending at 2,082,440, no line missing before; the same flood
// followed by a second's sleep kept every line in three runs out of
// three).
//
// # Exit code and OOM
//
// The exit code and OOMKilled come from the task container's terminated
// state as the kubelet reports it: reason OOMKilled only when the kernel's
// OOM killer ended it (a kill -9 is exit code 137 and not OOM).
//
// # Stopping
//
// A cancelled context, [runner.Task.Timeout] or [runner.Task.ScriptTimeout]
// deletes the pod with [Config.KillGracePeriod]: its containers get
// SIGTERM (the script's trap runs), then SIGKILL. The output up to then is
// delivered; output files are not collected (the pod is gone), which a
// warning says. Every wait after the stop is bounded ([APITimeout],
// [OutputWaitDelay]). A pod deleted or evicted by someone else ends the run
// with an error saying so, with the output up to then. The watch of a pod
// rides out an API server that restarts; one that cannot be reached for a
// minute fails the run with [runner.ErrEngineUnreachable].
//
// # Resume
//
// With [Config.Resume], a Run of a task with an ID looks for a pod of an
// earlier run of that task whose process is gone (see [Runner.Prune] for
// how the owner is told), takes over its run id, and follows it from the
// start of its log to its end as if it had created it: the outputs printed
// before the crash are kept, the output files collected, the pod deleted.
// A pod whose input files were never copied in gets them from this run.
//
// # Engine core
//
// The runner is an engine of internal/core, as the docker one is: validation,
// templates, masking, timeouts, the line sink, the bounded waits, the
// output limits and the removal are internal/core's; this package writes
// the pod (Create, Stop, Remove), its file strategy (init container and
// sidecar), the attachment (the followed log and the watched status) and
// resume (Find, Reattach).
//
// # What differs from the docker runner
//
//   - A "\r" just before a "\n" is lost: containerd's CRI log writer ends
//     every line with "\n".
//   - Without LogStreams SPLIT every line is stdout; with it, the order
//     between stdout and stderr lines is not kept (each stream keeps its
//     own).
//   - The kubelet rotates a container's log every containerLogMaxSize
//     (10 MiB by default): a script that writes faster than the runner
//     reads may lose the lines of a rotated file the runner had not read
//     yet. The CI cluster sets 1 GiB.
//   - ScriptTimeout counts from the moment the runner sees the container
//     running; a stopped run collects no output files.
//   - Resources: cpu.cpus is the container's CPU limit (Kubernetes makes the
//     request equal), memory.memory its memory limit and
//     memory.memoryReservation its request; the other memory fields have no
//     Kubernetes form and are refused.
//   - Kubernetes counts a grace period in whole seconds, at least 1.
//   - No resource statistics: [runner.Result.PeakMemory] and CPUTime stay
//     zero. They would come from the metrics API (metrics.k8s.io), which
//     needs metrics-server in the cluster; the CI cluster has none, and
//     the runner does not make figures up.
//
// A [Runner] is safe for concurrent use.
package kubernetes
