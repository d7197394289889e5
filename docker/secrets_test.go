package docker_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/runner"
)

// TestValidationErrorsAreMasked: the masker exists before the task is
// validated, so no error Run returns quotes a secret, not even the ones
// about the fields that carry it by accident. These fail before any engine
// call, so they need none.
func TestValidationErrorsAreMasked(t *testing.T) {
	const secret = "hunter2secretvalue"
	r, err := docker.New(docker.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	tests := []struct {
		name  string
		task  runner.Task
		field string
	}{
		{"invalid image reference", runner.Task{Image: "localhost/HUNTER2SECRETVALUE" + strings.ToUpper(secret), Commands: []string{"true"}}, "image"},
		{"image reference with the secret", runner.Task{Image: "localhost/x:" + secret + "!", Commands: []string{"true"}}, "image"},
		{"env name holding the secret", runner.Task{Image: "busybox", Env: map[string]string{"A=" + secret: "x"}, Commands: []string{"true"}}, "env"},
		{"secret name also in env", runner.Task{Image: "busybox", Env: map[string]string{"PW": secret}, Commands: []string{"true"}}, "secrets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := tt.task
			if task.Secrets == nil {
				task.Secrets = map[string]string{"PW": secret}
			}
			if strings.HasPrefix(task.Image, "localhost/HUNTER2") {
				task.Secrets = map[string]string{"PW": strings.ToUpper(secret)}
			}
			_, err := r.Run(t.Context(), task)
			require.ErrorIs(t, err, runner.ErrInvalidTask)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tt.field, fe.Field)
			for _, s := range task.Secrets {
				assert.NotContains(t, err.Error(), s)
				assert.NotContains(t, fe.Value, s, "the FieldError itself is masked too")
				assert.NotContains(t, fe.Problem, s)
			}
			if tt.field != "secrets" { // there the error quotes only the name
				assert.Contains(t, err.Error(), "****")
			}
		})
	}
}

// TestSecretValuesRefused: a secret with a NUL byte (which no environment
// variable can hold, and which the engine's error would quote escaped) or
// shorter than the minimum is refused with an error naming it, never quoting
// it.
func TestSecretValuesRefused(t *testing.T) {
	r, err := docker.New(docker.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	tests := []struct {
		name, value, says string
	}{
		{"NUL byte", "hunter2\x00secretvalue", "NUL"},
		{"one character", "q", "at least 8"},
		{"seven characters", "Qz7!Wp3", "in env, unmasked"},
		{"seven characters, more bytes", "ééééééé", "at least 8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Run(t.Context(), runner.Task{Image: "busybox", Commands: []string{"true"}, Secrets: map[string]string{"API_TOKEN": tt.value}})
			require.ErrorIs(t, err, runner.ErrInvalidTask)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "secrets.API_TOKEN", fe.Field)
			assert.Empty(t, fe.Value, "the value is never quoted")
			assert.Contains(t, err.Error(), tt.says)
			if len(tt.value) > 1 {
				assert.NotContains(t, err.Error(), tt.value)
				assert.NotContains(t, err.Error(), strings.Split(tt.value, "\x00")[0])
			}
		})
	}
}
