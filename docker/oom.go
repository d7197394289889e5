package docker

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/moby/moby/client"
)

// OOMEventDelay bounds how long a run whose task exited with 137 (killed)
// under a memory limit waits for the engine's late "oom" event, when the
// container's State.OOMKilled says no. Docker 20.10 sets OOMKilled only
// when containerd's OOM event reaches it before the exit event; under load
// the two arrive in either order (about one OOM kill in ten in CI), and the
// "oom" event then comes just after "die". Other exits never wait.
const OOMEventDelay = time.Second

// oomWatch follows the engine's "oom" events of one container, from before
// its start (or, for a resumed container, from its start in the engine's
// event history) until closed.
type oomWatch struct {
	seen   atomic.Bool
	signal chan struct{} // closed at the first oom event
	exit   atomic.Int64  // the exit code, once Wait has it; -1 before
	stop   context.CancelFunc
}

// watchOOM subscribes to the container's oom events from since on when
// the task runs under a memory limit (only then does the cgroup report OOM
// kills), and returns nil otherwise. The subscription is made in the
// background, so a hung engine never holds the caller; the engine replays
// what it kept of the events after since.
func (run *run) watchOOM(ctx context.Context, id string, since time.Time) *oomWatch {
	if run.r.compiled.container.resources.Memory <= 0 {
		return nil
	}
	ctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	w := &oomWatch{signal: make(chan struct{}), stop: stop}
	w.exit.Store(-1)
	go func() {
		ev := run.r.cli.Events(ctx, client.EventsListOptions{Since: eventsSince(since),
			Filters: make(client.Filters).Add("type", "container").Add("container", id).Add("event", "oom")})
		for {
			select {
			case <-ev.Messages:
				if w.seen.CompareAndSwap(false, true) {
					close(w.signal)
				}
			case <-ev.Err: // the stream ended (closed, or the engine went away)
				return
			}
		}
	}()
	return w
}

// exited records the task's exit code for [oomWatch.killed].
func (w *oomWatch) exited(code int) {
	if w != nil {
		w.exit.Store(int64(code))
	}
}

// killed reports whether an oom event came for the container, waiting up
// to [OOMEventDelay] for a late one after a 137 exit.
func (w *oomWatch) killed(ctx context.Context) bool {
	if w == nil {
		return false
	}
	if w.seen.Load() || w.exit.Load() != 137 {
		return w.seen.Load()
	}
	timer := time.NewTimer(OOMEventDelay)
	defer timer.Stop()
	select {
	case <-w.signal:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	return w.seen.Load()
}

// close ends the subscription; nil-safe and idempotent.
func (w *oomWatch) close() {
	if w != nil {
		w.stop()
	}
}

// eventsSince renders t for the events API's since parameter, to the
// nanosecond.
func eventsSince(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}
