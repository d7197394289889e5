// Package core is the engine-neutral part of running a [runner.Task]: what
// every engine would otherwise write again, and let drift. An engine writes
// the few calls that talk to it ([Engine], and [Files] for how files reach
// the task); [Run] does the rest, the way go-containerregistry's partial
// package fills in an image from a small core.
//
// # What Run does
//
// Validation of the task and its image reference; masking of the task's
// secrets in every error and warning; the concurrency slot; the task's
// Timeout and ScriptTimeout, with the cause that tells them from a caller's;
// the rendering of the templates, the script and the environment; the host
// working directory; the line sink, the outputs, metrics and log entries of
// Kestra's ::{...}:: lines; the bounded waits (each engine call once the
// run is stopped bounded by [EngineTimeout], the output by
// [OutputWaitDelay], the collection by [CollectGracePeriod], each giving up
// with an error matching a [*runner.WaitError] that names what was awaited);
// the stop with the kill grace period; [*runner.ExitError] and the error
// that says what a stopped run was doing; the output limits and the
// warnings of the collection; the removal on a fresh, bounded context.
//
// # What an engine writes
//
// A value of [Engine] serves one run: Run calls the function it is given
// with the run's [*State] (the rendered task, the run id, the working
// directory, the masker, the logger), and the engine keeps it. Nine
// methods, in the order Run calls them:
//
//	type Engine interface {
//		Image(ctx context.Context) error                      // make the image present
//		Files() Files                                         // the file strategy, chosen once
//		Create(ctx context.Context) error                     // the container, not started
//		Attach(ctx context.Context) (*Attachment, error)      // output and exit, before the start
//		Start(ctx context.Context) error
//		Stop(ctx context.Context, grace time.Duration) error  // only when the run is stopped
//		Remove(ctx context.Context) error                     // idempotent
//		Details() any                                         // runner.Result.Details
//		Error(doing string, err error) error                  // wraps an API error
//	}
//
// and the five of [Files] (Stage, CopyIn, Collect, Tidy, Discard). An engine
// that can take over the container of an earlier run also implements
// [Resumer] (Find, Reattach). An [Attachment] is the one shape of a task's
// output and exit, whatever gives them: a stream, how to split it into
// stdout and stderr, Close, and a Wait that returns the [Exit]; optional
// OOM and Stats fill in what an engine learns only on asking.
//
// # A sketch: an exec-based warm pool
//
// A pool runs each task by exec in a container that is already running:
// there is no image to pull and no container to create, the files go to a
// directory of their own inside it, and an exec has no wait endpoint.
//
//	type poolRun struct {
//		c    *core.State
//		box  *warmContainer // taken from the pool
//		exec string
//	}
//
//	func (p *poolRun) Image(context.Context) error { return nil } // the pool's image
//	func (p *poolRun) Files() core.Files            { return &taskDir{p} } // copies into /lading/tasks/<id>
//	func (p *poolRun) Create(ctx context.Context) error {
//		id, err := p.box.execCreate(ctx, p.c.WS.Commands, p.c.WS.Env)
//		p.exec, p.c.ContainerID = id, p.box.id
//		return err
//	}
//	func (p *poolRun) Attach(ctx context.Context) (*core.Attachment, error) {
//		stream, err := p.box.execAttach(ctx, p.exec)
//		if err != nil {
//			return nil, err
//		}
//		return &core.Attachment{Stream: stream, Close: stream.Close, Demux: demux,
//			// No wait endpoint: the exec has exited when its stream ends and
//			// inspect says so.
//			Wait: func(ctx context.Context) (core.Exit, error) { return p.box.pollExit(ctx, p.exec) },
//		}, nil
//	}
//	func (p *poolRun) Start(ctx context.Context) error { return p.box.execStart(ctx, p.exec) }
//	func (p *poolRun) Stop(ctx context.Context, grace time.Duration) error {
//		return p.box.signalExec(ctx, p.exec, grace)
//	}
//	func (p *poolRun) Remove(ctx context.Context) error { return p.box.release(ctx) } // back to the pool
//	func (p *poolRun) Details() any                   { return &PoolDetails{Container: p.box.id, Exec: p.exec} }
//	func (p *poolRun) Error(doing string, err error) error {
//		return &core.EngineError{Engine: "pool", Doing: doing, Err: err, Seen: time.Now()}
//	}
//
//	func (r *Pool) Run(ctx context.Context, task runner.Task) (*runner.Result, error) {
//		return core.Run(ctx, task, r.opts, func(c *core.State) core.Engine { return &poolRun{c: c, box: r.take()} })
//	}
//
// A Kubernetes runner fits the same way: Create makes the pod, with the
// input files in an init container that Files.CopyIn feeds; Attach follows
// the pod's log, and Wait watches the pod's status for the container's
// termination (exit code and OOMKilled in Exit); Stop deletes the pod with
// its grace period.
package core
