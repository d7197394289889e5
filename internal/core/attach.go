package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/lading-dev/lading/internal/logs"
	"github.com/lading-dev/lading/runner"
)

// Attachment is a running task's output and exit, whatever follows them: a
// container attach, an exec, a pod's log, a resumed container's log. [Run]
// reads Stream to its end (through Demux) while it waits for the exit, and
// bounds both waits: the exit by [EngineTimeout] once the task has been
// stopped, the stream by [OutputWaitDelay] once the task has exited.
type Attachment struct {
	// Stream is the task's output.
	Stream io.Reader
	// Demux copies src, Stream as Run reads it, into the task's stdout and
	// stderr until src ends. Nil: Stream is all stdout.
	Demux func(stdout, stderr io.Writer, src io.Reader) error
	// Close closes the stream, ending a Demux under way, and releases
	// what Wait holds. Run calls it at least once; it must be idempotent.
	Close func()
	// Wait blocks until the task has exited and returns how. Its ctx
	// outlives the run's (after a stop the exit is still wanted), and
	// ends when Run no longer waits; an engine with nothing to wait on
	// returns ctx's error then.
	Wait func(ctx context.Context) (Exit, error)
	// OOM, when set, asks after the exit whether the task was killed for
	// want of memory; it is called for a positive exit code only, once
	// the output has been read. Engines that know it at the exit set
	// Exit.OOMKilled instead.
	OOM func(ctx context.Context) (bool, error)
	// Stats, when set, follows the task's resource use into res
	// (PeakMemory, CPUTime) until ctx ends; Run ends it at the exit.
	Stats func(ctx context.Context, res *runner.Result) error
	// Warnings, when set, is called once Stream has been read (or given
	// up on) and returns warnings for the result: what the engine learnt
	// of the output only at its end.
	Warnings func() []string
}

// Exit is how a task ended.
type Exit struct {
	Code      int
	OOMKilled bool
	// Message is an error the engine reported with the exit, "" for none.
	Message string
}

func (a *Attachment) demux(stdout, stderr io.Writer, src io.Reader) error {
	if a.Demux == nil {
		_, err := io.Copy(stdout, src)
		return err
	}
	return a.Demux(stdout, stderr, src)
}

// follow reads the task's output from att into the task's sinks, calls
// start (if any), waits for the exit (stopping the container when ctx ends
// first, or [runner.Task.ScriptTimeout] after res.Started), drains the
// stream and fills res.
func (run *State) follow(ctx context.Context, res *runner.Result, att *Attachment, start func() error) (*runner.Result, error) {
	// The wait and the reads outlive a cancelled ctx: after a stop we still
	// read the output up to the end and learn the exit status.
	following, stopFollowing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFollowing()
	limit := run.Task.ScriptTimeout
	if limit <= 0 {
		return run.followScript(ctx, following, res, att, start)
	}
	run.scriptTimeout = &runner.TimeoutError{Timeout: limit, Cause: context.DeadlineExceeded, Limit: "scriptTimeout"}
	script, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(script, func() { now := time.Now(); run.doneAt.CompareAndSwap(nil, &now) })()
	var timer *time.Timer
	arm := func() {
		// From the container's start: a resumed run gets what is left.
		timer = time.AfterFunc(limit-time.Since(res.Started), func() { cancel(run.scriptTimeout) })
	}
	if start == nil {
		arm()
	} else {
		inner := start
		start = func() error {
			err := inner()
			if err == nil {
				arm()
			}
			return err
		}
	}
	res, err := run.followScript(script, following, res, att, start)
	if timer != nil {
		timer.Stop()
	}
	if ctx.Err() == nil && context.Cause(script) == error(run.scriptTimeout) {
		err = run.stopped(script, err)
	}
	return res, err
}

type waited struct {
	exit Exit
	err  error
}

func (run *State) followScript(ctx, following context.Context, res *runner.Result, att *Attachment, start func() error) (*runner.Result, error) {
	id := run.ContainerID
	name := run.opts.Name
	var out flow
	defer out.gone.Store(true) // nothing reaches the task after Run returns
	sink := logs.New(out.taskWriter(run.Task.Stdout, "Stdout"), out.taskWriter(run.Task.Stderr, "Stderr"), out.onLine(run.Task.OnLine), run.Mask)
	drained := make(chan error, 1)
	go func() {
		drained <- att.demux(sinkWriter{&out, sink.Writer(runner.Stdout)}, sinkWriter{&out, sink.Writer(runner.Stderr)}, flowReader{&out, att.Stream})
	}()
	if start != nil {
		if err := start(); err != nil {
			att.Close()
			return nil, err
		}
	}

	statsDone := make(chan struct{})
	statsCtx, stopStats := context.WithCancel(following)
	go func() {
		defer close(statsDone)
		if att.Stats != nil {
			if err := att.Stats(statsCtx, res); err != nil {
				run.Log.Warn("following stats", "error", err)
			}
		}
	}()
	defer func() { stopStats(); <-statsDone }()

	exited := make(chan waited, 1)
	go func() {
		exit, err := att.Wait(following)
		exited <- waited{exit, err}
	}()

	var status Exit
	var stopped bool // the caller cancelled, or the timeout came, and we stopped the container
	var stopErr error
	select {
	case w := <-exited:
		if w.err != nil {
			att.Close()
			return nil, run.eng.Error("wait for container", w.err)
		}
		status = w.exit
	case <-ctx.Done():
		stopped = true
		run.Event(runner.StageStopping, context.Cause(ctx).Error())
		stopErr = run.stop(ctx)
		if !run.unresponsive {
			timer := time.NewTimer(EngineTimeout)
			select {
			case w := <-exited:
				timer.Stop()
				if w.err != nil {
					att.Close()
					return nil, errors.Join(stopErr, run.eng.Error("wait for stopped container", w.err))
				}
				status = w.exit
			case <-timer.C:
				run.unresponsive = true
				stopErr = errors.Join(stopErr, &unresponsiveError{engine: name, doing: "wait for container " + id + " to exit", bound: EngineTimeout})
			}
		}
	}
	res.Finished = time.Now()
	res.ExitCode = status.Code
	res.OOMKilled = status.OOMKilled
	if run.unresponsive {
		res.ExitCode = -1 // unknown: the engine did not say
	}
	stopStats()
	<-statsDone // res is complete: no more writes from the stats goroutine

	if run.unresponsive {
		// The engine may never end the stream: what was read is kept.
		att.Close()
	}
	drainErr, warning, blocked := out.drain(drained, att.Close)
	if blocked {
		// A task writer holds the sink: its lines and outputs cannot be
		// read without waiting for it.
		var exitErr error
		if !stopped && res.ExitCode != 0 {
			exitErr = &runner.ExitError{ExitCode: res.ExitCode}
		}
		return res, errors.Join(&outputBlockedError{engine: name, awaited: out.awaited()}, stopErr, run.stoppedErr(stopped, res), exitErr)
	}
	if drainErr != nil && ctx.Err() == nil {
		res.Warnings = append(res.Warnings, "reading the container's output: "+drainErr.Error())
	}
	if warning != "" {
		res.Warnings = append(res.Warnings, warning)
	}
	if att.Warnings != nil {
		res.Warnings = append(res.Warnings, att.Warnings()...)
	}
	writeErr := sink.Close()
	sink.Fill(res)

	if res.ExitCode > 0 && !run.unresponsive && att.OOM != nil {
		call, cancel := EngineCall(ctx, EngineTimeout)
		call, cancelTimeout := context.WithTimeout(call, CleanupTimeout)
		oom, err := att.OOM(call)
		if err == nil {
			res.OOMKilled = res.OOMKilled || oom
		} else if uerr, ok := run.CallError(call, "inspect container "+id, EngineTimeout, err).(*unresponsiveError); ok {
			stopErr = errors.Join(stopErr, uerr)
		}
		cancelTimeout()
		cancel()
	}
	switch {
	case status.Message != "":
		return res, errors.Join(fmt.Errorf("%s: wait for container %s: %s", name, id, status.Message), stopErr, writeErr)
	case stopped:
		return res, errors.Join(run.stoppedErr(stopped, res), stopErr, writeErr)
	case res.ExitCode != 0:
		return res, errors.Join(&runner.ExitError{ExitCode: res.ExitCode, OOMKilled: res.OOMKilled}, stopErr, writeErr)
	}
	return res, errors.Join(stopErr, writeErr)
}

// stoppedErr says that the container was stopped, and with what exit code;
// nil when it was not. Run's error adds why (the context's end).
func (run *State) stoppedErr(stopped bool, res *runner.Result) error {
	switch {
	case !stopped:
		return nil
	case run.unresponsive:
		return errors.New("asked the container to stop; the engine did not say whether it did")
	}
	return fmt.Errorf("container stopped, exit code %d", res.ExitCode)
}

// outputBlockedError reports a task writer that had not returned
// [OutputWaitDelay] after the container exited.
type outputBlockedError struct {
	engine  string
	awaited string // which writer: "the task's Stdout writer"
}

func (e *outputBlockedError) Error() string {
	return fmt.Sprintf("%s: the container exited, but its output was still being written to the task's Stdout, Stderr or OnLine %s later; Run returned without waiting for it: the output from then on, and the outputs and lines counts, are missing", e.engine, OutputWaitDelay)
}

func (e *outputBlockedError) Unwrap() error {
	return &runner.WaitError{Awaited: e.awaited, Delay: OutputWaitDelay, Err: runner.ErrOutputBlocked}
}

// flow watches the output on its way from the engine's stream to the task:
// bytes read, writes under way, and whether Run has let go of it.
type flow struct {
	read    atomic.Int64
	writing atomic.Int32
	gone    atomic.Bool            // Run has returned or given up: nothing more reaches the task
	inside  atomic.Pointer[string] // the task's writer or callback last entered and not yet returned
}

// awaited names the task's writer a blocked drain waits for.
func (f *flow) awaited() string {
	if p := f.inside.Load(); p != nil {
		return "the task's " + *p
	}
	return "the task's output writers"
}

// enter notes that the task's writer name is being called; the returned
// function notes that it returned.
func (f *flow) enter(name *string) func() {
	f.inside.Store(name)
	return func() { f.inside.CompareAndSwap(name, nil) }
}

type flowReader struct {
	f *flow
	r io.Reader
}

func (r flowReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.f.read.Add(int64(n))
	return n, err
}

// sinkWriter wraps the writer the stream is copied into.
type sinkWriter struct {
	f *flow
	w io.Writer
}

func (w sinkWriter) Write(p []byte) (int, error) {
	if w.f.gone.Load() {
		return 0, errOutputGone
	}
	w.f.writing.Add(1)
	defer w.f.writing.Add(-1)
	return w.w.Write(p)
}

var errOutputGone = errors.New("Run has returned")

// taskWriter wraps a task's writer so that nothing reaches it once Run has
// let go.
type taskWriter struct {
	f    *flow
	w    io.Writer
	name *string
}

func (w taskWriter) Write(p []byte) (int, error) {
	if w.f.gone.Load() {
		return len(p), nil
	}
	defer w.f.enter(w.name)()
	return w.w.Write(p)
}

func (f *flow) taskWriter(w io.Writer, stream string) io.Writer {
	if w == nil {
		return nil
	}
	name := stream + " writer"
	return taskWriter{f, w, &name}
}

func (f *flow) onLine(fn func(runner.Line)) func(runner.Line) {
	if fn == nil {
		return nil
	}
	name := "OnLine callback"
	return func(l runner.Line) {
		if !f.gone.Load() {
			defer f.enter(&name)()
			fn(l)
		}
	}
}

// drain waits, once the container has exited, for the copy of its output
// to end (drained), as long as bytes keep moving. When none moved for
// [OutputWaitDelay] it closes the stream: if a write to the task was under
// way, it gives up (blocked); otherwise the engine had not ended the
// stream, and the copy ends with the close (warning).
func (f *flow) drain(drained <-chan error, closeStream func()) (err error, warning string, blocked bool) {
	timer := time.NewTimer(OutputWaitDelay)
	defer timer.Stop()
	last := f.read.Load()
	closed := false
	for {
		select {
		case err := <-drained:
			return err, warning, false
		case <-timer.C:
		}
		if n := f.read.Load(); n != last && !closed {
			last = n
			timer.Reset(OutputWaitDelay)
			continue
		}
		if closed || f.writing.Load() > 0 {
			f.gone.Store(true)
			closeStream()
			return nil, "", true
		}
		closeStream()
		closed = true
		warning = fmt.Sprintf("the container's output stream did not end within %s of its exit; later output may be missing", OutputWaitDelay)
		timer.Reset(OutputWaitDelay)
	}
}
