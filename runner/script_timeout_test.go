package runner_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

func TestScriptTimeoutMustNotBeNegative(t *testing.T) {
	err := runner.Task{Image: "busybox", Commands: []string{"true"}, ScriptTimeout: -time.Second}.Validate()
	require.ErrorIs(t, err, runner.ErrInvalidTask)
	var fe *runner.FieldError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "scriptTimeout", fe.Field)
	assert.Equal(t, "-1s", fe.Value)
}
