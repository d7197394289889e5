package runnertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

// scriptTimeoutCases: Task.ScriptTimeout stops the script, and says so.
func scriptTimeoutCases() []Case {
	return []Case{
		{"ScriptTimeout", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{Commands: []string{"echo started", "sleep 30"},
				Timeout: time.Minute, ScriptTimeout: time.Second})
			require.ErrorIs(t, out.Err, runner.ErrTimeout)
			require.ErrorIs(t, out.Err, context.DeadlineExceeded)
			assert.NotErrorIs(t, out.Err, context.Canceled, "a timeout is not a cancellation")
			var te *runner.TimeoutError
			require.ErrorAs(t, out.Err, &te)
			assert.Equal(t, "scriptTimeout", te.Limit, "the smaller limit stopped the run")
			var exit *runner.ExitError
			assert.False(t, errors.As(out.Err, &exit), "a stopped script is not reported as a failed one")
			assert.Equal(t, []string{"started"}, out.Texts(runner.Stdout), "output before the stop is delivered")
		}},
		{"NegativeScriptTimeoutRefused", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{Commands: []string{"true"}, ScriptTimeout: -time.Second})
			requireInvalid(t, out, "scriptTimeout")
		}},
	}
}
