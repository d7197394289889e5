package runner_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

func TestLimiterBoundsConcurrentHolders(t *testing.T) {
	l := runner.NewLimiter(3)
	var now, peak atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			release, err := l.Acquire(t.Context())
			if !assert.NoError(t, err) {
				return
			}
			defer release()
			n := now.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			for range 1000 {
				assert.LessOrEqual(t, now.Load(), int32(3))
			}
			now.Add(-1)
		})
	}
	wg.Wait()
	assert.LessOrEqual(t, peak.Load(), int32(3))
	assert.Equal(t, 0, l.InUse(), "every slot was given back")
	assert.Equal(t, 3, l.Limit())
}

func TestLimiterAcquireGivesUpWithItsContext(t *testing.T) {
	l := runner.NewLimiter(1)
	release, err := l.Acquire(t.Context())
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = l.Acquire(ctx)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 1, l.InUse(), "the waiter that gave up holds nothing")
	release()
	release() // a second call does nothing
	assert.Equal(t, 0, l.InUse())
	again, err := l.Acquire(t.Context())
	require.NoError(t, err)
	again()
}

func TestNilLimiterHasNoLimit(t *testing.T) {
	var l *runner.Limiter
	for range 10 {
		_, err := l.Acquire(t.Context())
		require.NoError(t, err)
	}
	assert.Equal(t, 0, l.Limit())
	assert.Panics(t, func() { runner.NewLimiter(0) })
}
