package docker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

// TestScriptTimeout stops a sleeping script at its ScriptTimeout, and with
// Timeout also set the smaller limit stops the run, its error naming it.
func TestScriptTimeout(t *testing.T) {
	r, _ := newRunner(t, docker.Config{})
	for _, tc := range []struct {
		name                   string
		timeout, scriptTimeout time.Duration
		limit, says            string
	}{
		{"script alone", 0, time.Second, "scriptTimeout", "script timed out after 1s (scriptTimeout"},
		{"script below task", time.Minute, time.Second, "scriptTimeout", "script timed out after 1s (scriptTimeout"},
		{"task below script", 2 * time.Second, time.Minute, "timeout", "task timed out after 2s (timeout)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			res, err := r.Run(t.Context(), runner.Task{
				Image: testenv.Image, Commands: []string{"echo in", "echo x > a.txt", "sleep 60"},
				OutputFiles: []string{"a.txt"}, Stdout: &out,
				Timeout: tc.timeout, ScriptTimeout: tc.scriptTimeout,
			})
			require.Error(t, err)
			assert.ErrorIs(t, err, runner.ErrTimeout)
			assert.ErrorIs(t, err, context.DeadlineExceeded)
			var te *runner.TimeoutError
			require.ErrorAs(t, err, &te)
			assert.Equal(t, tc.limit, te.Limit)
			assert.Contains(t, err.Error(), tc.says)
			require.NotNil(t, res)
			assert.Equal(t, "in\n", out.String())
			if tc.limit == "scriptTimeout" {
				// The run itself had time left: the output files come back.
				assert.Contains(t, err.Error(), "stopped while running")
				assert.Contains(t, res.OutputFiles, "a.txt")
			}
		})
	}

	t.Run("a script that ends in time", func(t *testing.T) {
		_, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Commands: []string{"true"}, ScriptTimeout: time.Minute})
		require.NoError(t, err)
	})

	t.Run("the caller's cancel is not a script timeout", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		_, err := r.Run(ctx, runner.Task{Image: testenv.Image, Commands: []string{"echo in", "sleep 60"}, ScriptTimeout: time.Minute,
			OnLine: func(runner.Line) { cancel() }})
		require.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, runner.ErrTimeout)
	})
}
