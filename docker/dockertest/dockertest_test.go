package dockertest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/docker/dockertest"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

func TestNewRunsAndLogs(t *testing.T) {
	testenv.Engine(t) // builds the offline image when the engine lacks it
	r := dockertest.New(t, docker.Config{Pull: docker.Pull{PullPolicy: docker.PullNever}})
	rec := &recorder{TB: t}
	res, err := r.Run(t.Context(), runner.Task{
		Image:    testenv.Image,
		Commands: []string{"echo out", "echo err >&2"},
		OnLine:   dockertest.Log(rec),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
	assert.ElementsMatch(t, []string{"stdout: out", "stderr: err"}, rec.logs)
}

func TestNewWithoutEngine(t *testing.T) {
	sock := "unix://" + filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		name, ci, want string
	}{
		{"skips without CI", "", "skip"},
		{"fails with CI", "true", "fatal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CI", tc.ci)
			rec := &recorder{TB: t}
			func() {
				defer func() {
					if p := recover(); p != nil && p != errStopped {
						panic(p)
					}
				}()
				dockertest.New(rec, docker.Config{Host: sock})
			}()
			assert.Equal(t, tc.want, rec.ended)
			assert.Contains(t, rec.msg, sock)
		})
	}
}

var errStopped = fmt.Errorf("stopped")

// recorder records what would end or be logged by a test.
type recorder struct {
	testing.TB
	logs       []string
	ended, msg string
}

func (r *recorder) Logf(format string, args ...any) {
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
}
func (r *recorder) Skipf(format string, args ...any) {
	r.ended, r.msg = "skip", fmt.Sprintf(format, args...)
	panic(errStopped)
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.ended, r.msg = "fatal", fmt.Sprintf(format, args...)
	panic(errStopped)
}
