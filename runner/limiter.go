package runner

import (
	"context"
	"fmt"
)

// Limiter bounds how many runs proceed at once across every Runner given
// it, whatever their engine: a workflow engine with a flow-wide limit, or a
// CI tool with one limit per machine over runners of several
// configurations, hands the same Limiter to each. A Runner takes a slot
// after it has checked the task and before it contacts the engine, and
// gives it back when Run returns; the wait for a slot counts against the
// run's ctx, not against [Task.Timeout].
//
// A nil *Limiter has no limit. A Limiter is safe for concurrent use.
type Limiter struct {
	slots chan struct{}
}

// NewLimiter returns a Limiter of n slots. n must be at least 1.
func NewLimiter(n int) *Limiter {
	if n < 1 {
		panic(fmt.Sprintf("runner: NewLimiter(%d): a limiter needs at least 1 slot", n))
	}
	return &Limiter{slots: make(chan struct{}, n)}
}

// Acquire waits for a free slot and returns the function that gives it
// back (call it once; later calls do nothing). It returns ctx's error if
// ctx is done first, and then holds no slot.
func (l *Limiter) Acquire(ctx context.Context) (release func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	select {
	case l.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	released := false
	return func() {
		if !released {
			released = true
			<-l.slots
		}
	}, nil
}

// Limit returns the number of slots, or 0 for a nil Limiter (no limit).
func (l *Limiter) Limit() int {
	if l == nil {
		return 0
	}
	return cap(l.slots)
}

// InUse returns how many slots are taken now.
func (l *Limiter) InUse() int {
	if l == nil {
		return 0
	}
	return len(l.slots)
}
