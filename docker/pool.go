package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lading-dev/lading/runner"
)

// LabelPool is set on the containers of a warm pool ([WithPool]): a digest
// of the runner configuration and image the pool serves. They carry
// [LabelManaged] and the owner labels too, but no [LabelRun]: [Runner.Prune]
// spares them while their process lives, and removes them once it has died.
const LabelPool = "dev.lading.pool"

// DefaultPoolIdleTimeout is how long a warm container of a pool waits for a
// task before it is removed, when [Pool.IdleTimeout] is zero.
const DefaultPoolIdleTimeout = 5 * time.Minute

// PoolWhenBusy says what a task does when every warm container of its pool
// is taken.
type PoolWhenBusy string

const (
	// PoolWait makes the task wait, under its context and Timeout, for a
	// container of the pool to be free (or warmed, while the pool has fewer
	// than [Pool.Size]). It is the default.
	PoolWait PoolWhenBusy = "WAIT"
	// PoolCold runs the task in a new container of its own, as without a
	// pool, and warms the pool up to its size in the background.
	PoolCold PoolWhenBusy = "COLD"
)

// Pool configures the warm pool of a Runner ([WithPool]): up to Size
// containers per runner configuration and image, each kept running with a
// keep-alive process under the engine's init (tini, HostConfig.Init), each
// running one task at a time by exec. See the package documentation, "Warm
// pool", for what a task may assume, the tasks that must not use it and how
// to size it.
type Pool struct {
	// Size is the most containers the pool keeps for one runner
	// configuration and image, busy and free together; it must be positive.
	// The limits of the configuration (cpu, memory, pidsLimit) hold for
	// each container: a pool of Size containers may take Size times them.
	Size int
	// IdleTimeout is how long a free container waits for a task before it
	// is removed (and warmed again on demand). Zero means
	// [DefaultPoolIdleTimeout]; negative means never.
	IdleTimeout time.Duration
	// WhenBusy says what a task does when no container of its pool is free:
	// [PoolWait] (the default) or [PoolCold].
	WhenBusy PoolWhenBusy
}

// Validate reports the first invalid field of p as a [*runner.FieldError]
// matching [runner.ErrInvalidConfig], named "pool.<field>".
func (p Pool) Validate() error {
	if p.Size <= 0 {
		return invalidConfig("pool.size", fmt.Sprint(p.Size), "must be positive")
	}
	switch p.WhenBusy {
	case "", PoolWait, PoolCold:
	default:
		return invalidConfig("pool.whenBusy", string(p.WhenBusy), "must be WAIT or COLD")
	}
	return nil
}

func (p Pool) idle() time.Duration {
	if p.IdleTimeout == 0 {
		return DefaultPoolIdleTimeout
	}
	return p.IdleTimeout
}

// WithPool runs the tasks of the Runner, and of the Runners made from it with
// [Runner.With], in warm containers: see [Pool] and the package
// documentation, "Warm pool". A configuration the pool cannot serve
// (fileHandlingStrategy MOUNT, portBindings, privileged, statsInterval,
// resume, wait or delete false) runs its tasks cold, as without the option,
// and so does a task with OnStats. [Runner.Close] and
// [Runner.Shutdown] remove the pool's containers; [New] refuses an invalid
// Pool.
func WithPool(p Pool) Option { return func(o *options) { o.pool = &p } }

// PoolStats are the counters of the pools of a Runner and of the Runners
// made from it, over all configurations and images ([Runner.PoolStats]).
type PoolStats struct {
	Free, Busy, Warming int // containers now
	Warmed              int // containers started, since New
	Discarded           int // containers removed because a task left them tainted, errored, stopped by the engine or OOM-touched
	IdleRemoved         int // containers removed for being idle
	Pooled, Cold        int // tasks run in a warm container, and cold (no container free with PoolCold, or a configuration the pool cannot serve)
	Checks              int // taint checks done
	CheckTime           time.Duration
	// Taints counts the reasons of the discards ("process survived",
	// "file system changed", "oom", "exec failed", "stopped", ...).
	Taints map[string]int
}

// PoolStats returns the counters of the Runner's pools (shared with the
// Runners from [Runner.With]); the zero value without [WithPool].
func (r *Runner) PoolStats() PoolStats {
	s := r.opts.pools
	if s == nil {
		return PoolStats{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.stats
	out.Taints = make(map[string]int, len(s.stats.Taints))
	for k, v := range s.stats.Taints {
		out.Taints[k] = v
	}
	for _, p := range s.pools {
		out.Free += len(p.free)
		out.Busy += p.busy
		out.Warming += p.warming
	}
	return out
}

// Warm fills the pool of r's configuration and image up to [Pool.Size]
// warm containers and returns once they are all free (or ctx is done), so
// that the first tasks do not pay for their start. The image must be on the
// engine (Warm does not pull). Without [WithPool], or for a configuration
// the pool cannot serve, it does nothing.
func (r *Runner) Warm(ctx context.Context, image string) error {
	p, err := r.pool(image)
	if p == nil || err != nil {
		return err
	}
	for {
		p.set.mu.Lock()
		if p.set.closed {
			p.set.mu.Unlock()
			return runner.ErrClosed
		}
		p.refillLocked()
		full := len(p.free)+p.busy >= p.set.cfg.Size
		failed := p.lastErr != nil && p.warming == 0
		err := p.lastErr
		changed := p.changed
		p.set.mu.Unlock()
		if full {
			return nil
		}
		if failed {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// poolSet is the pools of a Runner and of the Runners from With, one per
// configuration and image.
type poolSet struct {
	cfg   Pool
	log   *slog.Logger
	mu    sync.Mutex
	pools map[string]*pool
	stats PoolStats

	closed bool
	work   sync.WaitGroup // warms, checks, removals and the reaper
	stop   chan struct{}  // closed by close: the reaper ends

	ctx    context.Context // of the background warms, cancelled by close
	cancel context.CancelFunc
}

func newPoolSet(cfg Pool, log *slog.Logger) *poolSet {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &poolSet{cfg: cfg, log: log, pools: map[string]*pool{}, stop: make(chan struct{}), stats: PoolStats{Taints: map[string]int{}}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.idle() > 0 {
		s.work.Add(1)
		go s.reap()
	}
	return s
}

// poolable says why the Runner's tasks cannot run in a pool, "" when they
// can.
func (r *Runner) poolable() string {
	switch {
	case r.strategy() == FileHandlingMount:
		return "fileHandlingStrategy MOUNT: a container's mounts are fixed when it is created, a task's working directory only when it runs"
	case len(r.cfg.PortBindings) > 0:
		return "portBindings: a host port is bound by one container only"
	case r.cfg.Resume:
		return "resume follows a container of its own"
	case !r.cfg.waits():
		return "wait false hands the container over to the caller"
	case !r.cfg.deletes():
		return "delete false keeps the container for the caller"
	case r.cfg.Privileged:
		return "privileged: a privileged task can change what no check sees (mounts, the network, kernel settings)"
	case r.cfg.StatsInterval > 0:
		return "statsInterval: the stats of a pool's container are those of every task it ran"
	}
	return ""
}

// pool returns the pool of r's configuration and image, nil when r has no
// pool or cannot use it.
func (r *Runner) pool(image string) (*pool, error) {
	s := r.opts.pools
	if s == nil || r.poolable() != "" {
		return nil, nil
	}
	cfgJSON, err := json.Marshal(r.cfg)
	if err != nil {
		return nil, fmt.Errorf("docker: pool key: %w", err)
	}
	sum := sha256.Sum256(append(append(cfgJSON, 0), image...))
	key := hex.EncodeToString(sum[:12])
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, runner.ErrClosed
	}
	p := s.pools[key]
	if p == nil {
		p = &pool{set: s, key: key, image: image, r: r, all: map[*box]bool{}, changed: make(chan struct{})}
		s.pools[key] = p
	}
	return p, nil
}

// pool is the warm containers of one configuration and image.
type pool struct {
	set   *poolSet
	key   string
	image string
	r     *Runner // the first Runner with this configuration: it makes the containers

	// Guarded by set.mu:
	free       []*box        // most recently freed last
	all        map[*box]bool // every container of the pool, for close
	busy       int
	warming    int
	lastErr    error // the last warm's error, nil after a success
	lastErrAt  time.Time
	unsuitable string        // why the image cannot be pooled: its tasks run cold
	changed    chan struct{} // closed and replaced when a container is freed or a warm ends
}

// notifyLocked wakes the waiters.
func (p *pool) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// take returns a free container (ensureImage makes the image present first
// when it warms one), or warms one while the pool is below its
// size, or waits for one ([PoolWait]). It returns a reason instead (and no
// container) when the task is to run cold: no container free with
// [PoolCold] ("" then), or an image the pool cannot use. The first
// container is warmed by the task that needs it, the others in the
// background.
func (p *pool) take(ctx context.Context, ensureImage func(context.Context) error) (b *box, cold string, err error) {
	s := p.set
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, "", runner.ErrClosed
		}
		if p.unsuitable != "" {
			s.stats.Cold++
			s.mu.Unlock()
			return nil, p.unsuitable, nil
		}
		if n := len(p.free); n > 0 {
			b := p.free[n-1]
			p.free = p.free[:n-1]
			p.busy++
			s.stats.Pooled++
			p.refillLocked()
			s.mu.Unlock()
			return b, "", nil
		}
		whenBusyCold := s.cfg.WhenBusy == PoolCold
		if whenBusyCold || p.busy+p.warming >= s.cfg.Size {
			if whenBusyCold {
				s.stats.Cold++
				p.refillLocked()
				s.mu.Unlock()
				return nil, "", nil
			}
			changed := p.changed
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return nil, "", context.Cause(ctx)
			case <-changed:
				continue
			}
		}
		// Warm one for this task, and the rest in the background.
		p.warming++
		s.mu.Unlock()
		err := ensureImage(ctx)
		if err == nil {
			b, err = p.warm(ctx)
		}
		s.mu.Lock()
		p.warming--
		var unfit *unsuitableError
		switch {
		case errors.As(err, &unfit):
			p.unsuitable = unfit.Error()
			s.stats.Cold++
			p.notifyLocked()
			s.mu.Unlock()
			s.log.Warn("pool: image cannot be pooled; its tasks run cold", "image", p.image, "reason", unfit.reason)
			return nil, p.unsuitable, nil
		case err != nil:
			p.notifyLocked()
			s.mu.Unlock()
			return nil, "", err
		}
		p.lastErr = nil
		p.busy++
		s.stats.Pooled++
		p.refillLocked()
		s.mu.Unlock()
		return b, "", nil
	}
}

// unsuitableError says why the pool cannot use an image: its tasks run
// cold.
type unsuitableError struct{ image, reason string }

func (e *unsuitableError) Error() string {
	return fmt.Sprintf("the warm pool cannot use image %s (%s): the task ran cold", e.image, e.reason)
}

// maxBackgroundWarms bounds the containers a pool starts at once in the
// background: starting many at once slows each, and the tasks beside them.
const maxBackgroundWarms = 2

// warmRetry is how long after a failed warm the pool tries again in the
// background (a task that warms its own container tries at once).
const warmRetry = 5 * time.Second

// refillLocked starts background warms until the pool holds its size,
// unless a warm failed less than warmRetry ago.
func (p *pool) refillLocked() {
	s := p.set
	if s.closed {
		return
	}
	if p.lastErr != nil && time.Since(p.lastErrAt) < warmRetry {
		return
	}
	for p.warming < maxBackgroundWarms && len(p.free)+p.busy+p.warming < s.cfg.Size {
		p.warming++
		s.work.Add(1)
		go func() {
			defer s.work.Done()
			ctx, cancel := context.WithTimeout(s.ctx, cleanupTimeout+EngineTimeout)
			defer cancel()
			b, err := p.warm(ctx)
			s.mu.Lock()
			defer s.mu.Unlock()
			p.warming--
			p.lastErr, p.lastErrAt = err, time.Now()
			var unfit *unsuitableError
			if errors.As(err, &unfit) {
				p.unsuitable = unfit.Error()
			}
			if err != nil {
				s.log.Warn("pool: warming a container", "image", p.image, "error", err)
			} else {
				p.freeLocked(b)
			}
			p.notifyLocked()
			p.refillLocked()
		}()
	}
}

// freeLocked puts b back among the free containers, or removes it when the
// pool is closed.
func (p *pool) freeLocked(b *box) {
	if p.set.closed {
		p.removeLocked(b, "")
		return
	}
	b.freed = time.Now()
	p.free = append(p.free, b)
}

// removeLocked forgets b and removes its container in the background;
// reason, when set, is counted as a discard.
func (p *pool) removeLocked(b *box, reason string) {
	s := p.set
	delete(p.all, b)
	if reason != "" {
		s.stats.Discarded++
		s.stats.Taints[reason]++
		s.log.Debug("pool: discarding a container", "container", b.id, "reason", reason)
	}
	s.work.Add(1)
	go func() {
		defer s.work.Done()
		if err := p.r.removeBox(b.id); err != nil {
			s.log.Warn("pool: removing a container", "container", b.id, "error", err)
		}
	}()
}

// release gives back b after a task: it is checked ([Runner.finish]) in the
// background, then freed, or discarded when tainted (reason set already:
// the task errored, was stopped by the engine, OOM-touched the container).
func (p *pool) release(b *box, w *taskWork, reason string) {
	s := p.set
	s.work.Add(1)
	go func() {
		defer s.work.Done()
		if reason == "" {
			start := time.Now()
			reason = p.r.finish(b, w)
			s.mu.Lock()
			s.stats.Checks++
			s.stats.CheckTime += time.Since(start)
			s.mu.Unlock()
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		p.busy--
		if reason != "" {
			p.removeLocked(b, reason)
			p.refillLocked()
		} else {
			b.uses++
			p.freeLocked(b)
		}
		p.notifyLocked()
	}()
}

// reap removes the containers idle for longer than the idle timeout.
func (s *poolSet) reap() {
	defer s.work.Done()
	idle := s.cfg.idle()
	tick := time.NewTicker(min(max(idle/4, 50*time.Millisecond), 30*time.Second))
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		for _, p := range s.pools {
			kept := p.free[:0]
			for _, b := range p.free {
				if time.Since(b.freed) > idle {
					s.stats.IdleRemoved++
					p.removeLocked(b, "")
				} else {
					kept = append(kept, b)
				}
			}
			clear(p.free[len(kept):])
			p.free = kept
		}
		s.mu.Unlock()
	}
}

// close refuses new tasks, waits for the background work and removes every
// container of the pools, busy ones included (Shutdown calls it once no run
// is under way). A warm that ends during the wait removes its own container.
func (s *poolSet) close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
		s.cancel()
	}
	s.removeAllLocked()
	s.mu.Unlock()
	s.work.Wait()
	s.mu.Lock()
	s.removeAllLocked()
	s.mu.Unlock()
	s.work.Wait()
}

func (s *poolSet) removeAllLocked() {
	for _, p := range s.pools {
		for b := range p.all {
			p.removeLocked(b, "")
		}
		p.free = nil
		p.notifyLocked()
	}
}
