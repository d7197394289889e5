package runnertest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/runner"
)

// secretCases: what a runner does with secrets it cannot mask well, and
// secrets in the errors of an invalid task.
func secretCases() []Case {
	return []Case{
		{"ShortSecretRefused", func(t *testing.T, s *Suite) {
			// A secret under runner.MinSecretLength would mask ordinary
			// text ("x" in "exit code"); it is refused, never quoted.
			out := s.Exec(t, t.Context(), runner.Task{Secrets: map[string]string{"PIN": "Q7z"}, Commands: []string{"exit 3"}})
			requireInvalid(t, out, "secrets.PIN")
			assert.NotContains(t, out.Err.Error(), "Q7z")
		}},
		{"SecretWithNULRefused", func(t *testing.T, s *Suite) {
			out := s.Exec(t, t.Context(), runner.Task{Secrets: map[string]string{"PW": "hunter2\x00lading-secret"}, Commands: []string{"true"}})
			requireInvalid(t, out, "secrets.PW")
			assert.NotContains(t, out.Err.Error(), "hunter2")
			assert.NotContains(t, out.Err.Error(), "lading-secret")
		}},
		{"SecretMaskedInValidationError", func(t *testing.T, s *Suite) {
			const secret = "hunter2-lading-Secret"
			out := s.Exec(t, t.Context(), runner.Task{
				Secrets:  map[string]string{"TOKEN": secret},
				Env:      map[string]string{"X=" + secret: "v"},
				Commands: []string{"true"},
			})
			requireInvalid(t, out, "env")
			assert.NotContains(t, out.Err.Error(), secret)
			var fe *runner.FieldError
			require.ErrorAs(t, out.Err, &fe)
			assert.NotContains(t, fe.Value, secret)
		}},
	}
}
