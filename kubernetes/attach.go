package kubernetes

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/lading-dev/lading/internal/core"
)

// Attach waits until the task's container has started (or ended), then
// follows it ([run.follow]).
func (run *run) Attach(ctx context.Context) (*core.Attachment, error) {
	pod, err := run.waitStarted(ctx, containerTask, false)
	if err != nil {
		return nil, err
	}
	run.setNode(pod)
	run.attached = true
	return run.follow(ctx), nil
}

// follow returns the attachment of the task's started container: its log
// through the logs API from the start, one stream or stdout and stderr
// apart as [Config.LogStreams] says, and, as Wait, the end of the container
// that a watch of the pod's status reports (exit code, OOMKilled).
//
// The logs are framed into one stream, so that Run sees every byte that
// moves (also those read again and dropped, see [logFollower]) and tells
// the two streams apart.
func (run *run) follow(ctx context.Context) *core.Attachment {
	following, stop := context.WithCancel(context.WithoutCancel(ctx))
	run.exit = run.watchExit(following)
	followers := []*logFollower{{run: run, kind: frameStdout}}
	if run.r.cfg.LogStreams == LogStreamsSplit {
		followers = []*logFollower{
			{run: run, stream: corev1.LogStreamStdout, kind: frameStdout},
			{run: run, stream: corev1.LogStreamStderr, kind: frameStderr},
		}
	}
	pr, pw := io.Pipe()
	errs := make([]error, len(followers))
	var wg sync.WaitGroup
	for i, f := range followers {
		f.ended, f.sum = run.exit.done, crc32.NewIEEE()
		wg.Go(func() { errs[i] = f.follow(following, pw) })
	}
	go func() {
		wg.Wait()
		pw.CloseWithError(errors.Join(errs...)) // nil: the stream ends
	}()
	return &core.Attachment{
		Stream: pr,
		Demux:  demux,
		Close:  sync.OnceFunc(func() { stop(); _ = pr.Close() }),
		Wait:   run.exit.wait,
	}
}

// podExit is the end of the task's container, as a watch of the pod sees
// it.
type podExit struct {
	done chan struct{} // closed once exit and err are set
	exit core.Exit
	err  error
}

func (pe *podExit) wait(ctx context.Context) (core.Exit, error) {
	select {
	case <-pe.done:
		return pe.exit, pe.err
	case <-ctx.Done():
		return core.Exit{}, ctx.Err()
	}
}

// watchExit watches the pod, until ctx ends, for the end of the task's
// container.
func (run *run) watchExit(ctx context.Context) *podExit {
	pe := &podExit{done: make(chan struct{})}
	go func() {
		defer close(pe.done)
		pod, err := run.watchPod(ctx, func(pod *corev1.Pod) (bool, error) { return taskEnded(pod) != nil, nil })
		pe.exit, pe.err = run.exitOf(pod, err)
	}()
	return pe
}

// taskEnded returns the terminated state of the task's container, nil
// while it has not ended.
func taskEnded(pod *corev1.Pod) *corev1.ContainerStateTerminated {
	if cs := findStatus(pod.Status.ContainerStatuses, containerTask); cs != nil {
		return cs.State.Terminated
	}
	return nil
}

// exitOf is the exit of the task's container as pod, its last state seen
// by watchPod (which returned err), gives it. Exit code and OOM come from
// the container's terminated state (reason OOMKilled is the kernel's OOM
// killer, never a kill -9); -1 when the pod went without one. A pod
// deleted or failed by someone else (an eviction, a deletion from outside)
// gives a Message saying so.
func (run *run) exitOf(pod *corev1.Pod, err error) (core.Exit, error) {
	if err != nil && !errors.Is(err, errPodGone) {
		return core.Exit{}, err
	}
	exit := core.Exit{Code: -1}
	if pod != nil {
		if t := taskEnded(pod); t != nil {
			exit.Code, exit.OOMKilled = int(t.ExitCode), t.Reason == "OOMKilled"
		}
	}
	if run.stopping.Load() {
		return exit, nil // Run deleted the pod
	}
	name := run.c.Name()
	defer func() { run.gone.Store(exit.Message != "") }()
	switch {
	case err != nil || pod.DeletionTimestamp != nil:
		exit.Message = fmt.Sprintf("pod %s was deleted while the task ran", name)
		if exit.Code >= 0 {
			exit.Message += fmt.Sprintf(" (the script's exit code: %d)", exit.Code)
		}
	case pod.Status.Phase == corev1.PodFailed && pod.Status.Reason != "":
		exit.Message = fmt.Sprintf("pod %s failed: %s: %s", name, pod.Status.Reason, pod.Status.Message)
	}
	return exit, nil
}

// Frames of the stream an attachment reads: a kind, a big-endian uint32
// length, and that many bytes of the log.
const (
	frameProgress byte = iota // bytes of the log read again and dropped: no payload
	frameStdout
	frameStderr
	frameHeader = 5
)

// demux copies the frames of src to stdout and stderr.
func demux(stdout, stderr io.Writer, src io.Reader) error {
	var hdr [frameHeader]byte
	buf := make([]byte, 32<<10)
	for {
		if _, err := io.ReadFull(src, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		dst := io.Discard
		switch hdr[0] {
		case frameStdout:
			dst = stdout
		case frameStderr:
			dst = stderr
		}
		size := int64(binary.BigEndian.Uint32(hdr[1:]))
		if n, err := io.CopyBuffer(dst, io.LimitReader(src, size), buf); err != nil {
			return err
		} else if n < size {
			return io.ErrUnexpectedEOF
		}
	}
}

// finalAttempts bounds the tries to read the log once the container has
// ended; maxExtraReads the reads after the end that may each bring more.
const (
	finalAttempts = 3
	maxExtraReads = 5
)

// errLogChanged: a log read again does not start with what was read.
var errLogChanged = errors.New("the container's log was rotated or changed while it was read: lines from then on may be missing")

// logFollower follows one log stream of the task's container into the
// attachment's stream. The logs API ends a follow when the kubelet finds
// the container not running at the end of its log file, which can come
// long before the runtime has written the last of the container's output
// there (here a follow of a flood of 2 Mi lines ended after 1,601,198 of
// them; the file held 2,089,472 a moment later); a follow also ends when a
// connection breaks (an API server restarted). So a follow that ends is
// not the end: the log is read again, from its start, its bytes already
// passed on are dropped (checked against a checksum of them), and what
// comes after is passed on, until a read begun after the container's end
// brings nothing new.
type logFollower struct {
	run    *run
	stream string // corev1.LogStreamStdout or LogStreamStderr; "" for both
	kind   byte   // the frame kind of its bytes
	ended  <-chan struct{}
	read   int64       // bytes of the log passed on
	sum    hash.Hash32 // of those bytes
}

// follow passes the log on to w, framed, until the log is read to its end
// after the container's, ctx ends, or the pod is gone.
func (f *logFollower) follow(ctx context.Context, w io.Writer) error {
	buf := make([]byte, frameHeader+32<<10)
	extra := 0 // reads after the end that brought more
	for failures := 0; ; {
		final := closed(f.ended)
		body, err := f.open(ctx, final)
		if err != nil {
			if ctx.Err() != nil || apierrors.IsNotFound(err) {
				return nil // the attachment was closed, or the pod is gone
			}
			failures++
			if final && failures >= finalAttempts {
				return f.run.r.apiError("read the log of pod "+f.run.c.Name(), err)
			}
			f.run.log().Debug("reading the log again", "stream", f.stream, "error", err)
			if !f.pause(ctx, min(time.Duration(failures)*200*time.Millisecond, 2*time.Second)) {
				return nil
			}
			continue
		}
		if !final {
			failures = 0
		}
		before := f.read
		err = f.copy(body, w, buf)
		_ = body.Close()
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, errLogChanged) || errors.Is(err, io.ErrClosedPipe):
			return err
		case final && errors.Is(err, io.EOF) && (f.read == before || extra >= maxExtraReads):
			return nil
		case final && errors.Is(err, io.EOF):
			// The runtime was still writing the log after the container's
			// end: read again, a little later, until a read brings nothing
			// new.
			extra++
			if !sleep(ctx, 100*time.Millisecond) {
				return nil
			}
			continue
		case final:
			if failures++; failures >= finalAttempts {
				return f.run.r.apiError("read the log of pod "+f.run.c.Name(), err)
			}
		case !errors.Is(err, io.EOF):
			f.run.log().Debug("the log stream broke", "stream", f.stream, "error", err)
		}
		// The follow ended: at the container's end (then read once more)
		// or before it (then follow again).
		if !f.pause(ctx, time.Second) {
			return nil
		}
	}
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// sleep waits for d; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// pause waits for d, or less if the container ends; false when ctx ended.
func (f *logFollower) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-f.ended:
	case <-t.C:
	case <-ctx.Done():
		return false
	}
	return true
}

func (f *logFollower) open(ctx context.Context, final bool) (io.ReadCloser, error) {
	opts := &corev1.PodLogOptions{Container: containerTask, Follow: !final}
	if f.stream != "" {
		s := f.stream
		opts.Stream = &s
	}
	return f.run.r.cs.CoreV1().Pods(f.run.r.namespace).GetLogs(f.run.c.Name(), opts).Stream(ctx)
}

// copy passes body on to w in frames, dropping its first f.read bytes
// (those passed on before), and returns the error that ended body: io.EOF
// at its end.
func (f *logFollower) copy(body io.Reader, w io.Writer, buf []byte) error {
	skip := f.read
	skipped := crc32.NewIEEE()
	for {
		n, rerr := body.Read(buf[frameHeader:])
		start := frameHeader // where the bytes to pass on begin in buf
		if k := int(min(int64(n), skip)); k > 0 {
			skipped.Write(buf[start : start+k])
			skip -= int64(k)
			start += k
			if err := frame(w, buf[start-frameHeader:start], frameProgress); err != nil {
				return err
			}
			if skip == 0 && skipped.Sum32() != f.sum.Sum32() {
				return errLogChanged
			}
		}
		if end := frameHeader + n; start < end {
			f.sum.Write(buf[start:end])
			f.read += int64(end - start)
			if err := frame(w, buf[start-frameHeader:end], f.kind); err != nil {
				return err
			}
		}
		if rerr != nil {
			if skip > 0 && errors.Is(rerr, io.EOF) {
				return errLogChanged // shorter than what was read
			}
			return rerr
		}
	}
}

// frame writes b, whose first frameHeader bytes are free for the header,
// as one frame of kind (a progress frame carries no payload) in one Write:
// frames of two followers do not mix.
func frame(w io.Writer, b []byte, kind byte) error {
	b[0] = kind
	if kind == frameProgress {
		b = b[:frameHeader]
	}
	binary.BigEndian.PutUint32(b[1:frameHeader], uint32(len(b)-frameHeader))
	_, err := w.Write(b)
	return err
}
