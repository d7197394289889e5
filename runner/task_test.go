package runner_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

func TestTaskValidateSecretValues(t *testing.T) {
	tests := []struct {
		name, value string
		ok          bool
	}{
		{"empty masks nothing", "", true},
		{"eight characters", "12345678", true},
		{"eight characters of two bytes", "éééééééé", true},
		{"seven characters", "1234567", false},
		{"one character", "q", false},
		{"NUL byte", "hunter2\x00hunter2", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runner.Task{Image: "busybox", Commands: []string{"true"}, Secrets: map[string]string{"TOKEN": tt.value}}.Validate()
			if tt.ok {
				require.NoError(t, err)
				return
			}
			var fe *runner.FieldError
			require.True(t, errors.As(err, &fe), "%v", err)
			assert.ErrorIs(t, err, runner.ErrInvalidTask)
			assert.Equal(t, "secrets.TOKEN", fe.Field)
			assert.Empty(t, fe.Value)
			assert.NotContains(t, err.Error(), tt.value)
		})
	}
}

func TestFieldErrorReadsOnce(t *testing.T) {
	err := &runner.FieldError{Field: "memory.memory", Value: "1k", Problem: "must be at least 6MiB", Err: runner.ErrInvalidConfig}
	assert.Equal(t, `invalid config: memory.memory "1k": must be at least 6MiB`, err.Error())
	err = &runner.FieldError{Field: "secrets.TOKEN", Problem: "must not contain a NUL byte", Err: runner.ErrInvalidTask}
	assert.Equal(t, `invalid task: secrets.TOKEN: must not contain a NUL byte`, err.Error())
}

func TestTaskValidateMasksSecrets(t *testing.T) {
	const secret = "hunter2-validate"
	err := runner.Task{Image: "busybox", Commands: []string{"true"}, Env: map[string]string{"A=" + secret: "x"}, Secrets: map[string]string{"PW": secret}}.Validate()
	var fe *runner.FieldError
	require.True(t, errors.As(err, &fe), "%v", err)
	assert.Equal(t, "env", fe.Field)
	assert.Equal(t, "A=****", fe.Value)
	assert.NotContains(t, err.Error(), secret)
}
