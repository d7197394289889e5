package docker

import (
	"context"
	"errors"
	"sync"

	"github.com/lading-dev/lading/runner"
)

// inflight counts the runs under way on a Runner and the Runners made from
// it, so that Shutdown can refuse new ones, wait for these, and cancel them
// when it may wait no longer.
type inflight struct {
	mu      sync.Mutex
	closed  bool
	next    uint64
	cancels map[uint64]context.CancelCauseFunc // the runs under way
	idle    chan struct{}                      // closed once closed and no run is under way
	cli     sync.Once                          // closes the connection once
	cliErr  error
}

func newInflight() *inflight {
	return &inflight{cancels: map[uint64]context.CancelCauseFunc{}, idle: make(chan struct{})}
}

// begin registers a run: it returns the run's context, which Shutdown may
// cancel, and the function that ends the run. After Shutdown it returns
// [runner.ErrClosed].
func (f *inflight) begin(ctx context.Context) (context.Context, func(), error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ctx, nil, runner.ErrClosed
	}
	ctx, cancel := context.WithCancelCause(ctx)
	id := f.next
	f.next++
	f.cancels[id] = cancel
	return ctx, func() {
		cancel(nil)
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.cancels, id)
		if f.closed && len(f.cancels) == 0 {
			closeOnce(f.idle)
		}
	}, nil
}

// close refuses new runs and returns the channel closed once the last run
// under way has ended.
func (f *inflight) close() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	if len(f.cancels) == 0 {
		closeOnce(f.idle)
	}
	return f.idle
}

// cancelAll cancels the runs under way with cause.
func (f *inflight) cancelAll(cause error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, cancel := range f.cancels {
		cancel(cause)
	}
}

func closeOnce(c chan struct{}) {
	select {
	case <-c:
	default:
		close(c)
	}
}

// Shutdown shuts r down gracefully, as [net/http.Server.Shutdown] does: it
// refuses new runs at once (Run returns [runner.ErrClosed]), waits for the
// runs under way on r and on every Runner made from it by [Runner.With] to
// return (a run still waiting for a [WithMaxConcurrency] slot is under
// way: it gets its slot and runs), then closes the connection to the
// engine. When ctx is done first,
// it cancels those runs, with [runner.ErrClosed] as the cause: each stops
// its container as [Lifecycle.KillGracePeriod] says and removes it as it
// would after any cancel, within the bounds of [EngineTimeout] and
// [OutputWaitDelay]; Shutdown waits for that, closes the connection and
// returns ctx's error. So no run's container or volume is left behind by a
// shutdown, except by a run whose engine stopped answering (left for
// [Runner.Prune], as after any cancel) or one with [Lifecycle.Delete]
// false. Containers of runs with [Lifecycle.Wait] false that have already
// returned are not touched.
//
// Shutdown may be called more than once and concurrently; every call waits
// as said, the connection is closed once, and each returns the error of
// closing it, or ctx's. On a Runner from With it does nothing and returns
// nil: the root's Shutdown (or Close) shuts all of them down.
func (r *Runner) Shutdown(ctx context.Context) error {
	if r.derived {
		return nil
	}
	idle := r.runs.close()
	var waitErr error
	select {
	case <-idle:
	case <-ctx.Done():
		r.runs.cancelAll(runner.ErrClosed)
		<-idle
		waitErr = ctx.Err()
	}
	if r.opts.pools != nil {
		r.opts.pools.close() // the pool's containers, once no run uses them
	}
	r.runs.cli.Do(func() { r.runs.cliErr = r.cli.Close() })
	return errors.Join(waitErr, r.runs.cliErr)
}

// Close shuts r down without waiting for the runs under way: it is
// Shutdown with a context that is already done. The runs under way are
// cancelled (their error matches [runner.ErrClosed] and
// [context.Canceled]), each stops and removes its container as after any
// cancel, and Close returns once they have, having closed the connection;
// it returns the error of closing it. To let the runs under way finish,
// call Shutdown with a context bounding the wait instead.
//
// Close on a Runner from [Runner.With] does nothing and returns nil: the
// connection is the one of the Runner [New] returned, which alone closes
// it.
func (r *Runner) Close() error {
	if r.derived {
		return nil
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Shutdown(done); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return r.runs.cliErr
}
