package runner_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/lading-dev/lading/runner"
)

// TestTimeoutErrorMessage: Timeout is a time.Duration, printed in Go's
// form, and the error matches both sentinels.
func TestTimeoutErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  runner.TimeoutError
		want string
	}{
		{"timeout", runner.TimeoutError{Timeout: 90 * time.Second, Cause: context.DeadlineExceeded, Limit: "timeout"}, "task timed out after 1m30s (timeout)"},
		{"no limit named", runner.TimeoutError{Timeout: 1500 * time.Millisecond, Cause: context.DeadlineExceeded}, "task timed out after 1.5s (timeout)"},
		{"script timeout", runner.TimeoutError{Timeout: time.Second, Cause: context.DeadlineExceeded, Limit: "scriptTimeout"}, "script timed out after 1s (scriptTimeout, counted from the container's start)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.err.Error())
			assert.ErrorIs(t, &tt.err, runner.ErrTimeout)
			assert.ErrorIs(t, &tt.err, context.DeadlineExceeded)
			assert.False(t, errors.Is(&tt.err, context.Canceled))
		})
	}
}
