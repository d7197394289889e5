package docker_test

import (
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

var resumeScript = []string{
	`echo '::{"outputs":{"phase":"before"}}::'`,
	"echo before",
	"sleep 3",
	"echo after",
	"exit 5",
}

// TestResumeHelperProcess is the host program that crashes: it runs when
// re-executed by TestResume, prints the container's lines to stdout, and is
// killed mid-run.
func TestResumeHelperProcess(t *testing.T) {
	id := os.Getenv("LADING_RESUME_TASK")
	if id == "" {
		t.Skip("helper process for TestResume")
	}
	r, err := docker.New(docker.Config{})
	require.NoError(t, err)
	_, _ = r.Run(t.Context(), runner.Task{ID: id, Image: testenv.Image, Commands: resumeScript, Stdout: os.Stdout})
}

func TestResume(t *testing.T) {
	_, cli := newRunner(t, docker.Config{})
	taskID := "resume-" + time.Now().Format("150405.000000000")

	// A host program starts the task and dies.
	testenv.CrashMidRun(t, "TestResumeHelperProcess", []string{"LADING_RESUME_TASK=" + taskID}, "before")

	// The restarted program runs the same task: it re-attaches.
	r, _ := newRunner(t, docker.Config{Lifecycle: docker.Lifecycle{Resume: true}})
	var mu sync.Mutex
	var lines []string
	var stages []string
	res, err := r.Run(t.Context(), runner.Task{
		ID: taskID, Image: testenv.Image, Commands: resumeScript,
		OnLine: func(l runner.Line) {
			mu.Lock()
			defer mu.Unlock()
			lines = append(lines, l.Text)
		},
		OnEvent: func(e runner.Event) { stages = append(stages, string(e.Stage)+" "+e.Detail) },
	})
	var exit *runner.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 5, exit.ExitCode)
	assert.Equal(t, []string{`::{"outputs":{"phase":"before"}}::`, "before", "after"}, lines, "every line once, from the start")
	assert.Equal(t, "before", res.Outputs["phase"], "outputs printed before the crash are kept")
	assert.True(t, strings.HasPrefix(stages[0], "running resumed "), "no new container was created: %v", stages)
	requireRemoved(t, cli, details(t, res).ContainerID)
}

func TestResumeSkipsLiveRuns(t *testing.T) {
	r, cli := newRunner(t, docker.Config{Lifecycle: docker.Lifecycle{Resume: true}})
	taskID := "live-" + time.Now().Format("150405.000000000")
	started := make(chan struct{})
	var first *runner.Result
	var wg sync.WaitGroup
	wg.Go(func() {
		var once sync.Once
		first, _ = r.Run(t.Context(), runner.Task{ID: taskID, Image: testenv.Image, Commands: []string{"echo one", "sleep 2"},
			OnLine: func(runner.Line) { once.Do(func() { close(started) }) }})
	})
	<-started
	second, err := r.Run(t.Context(), runner.Task{ID: taskID, Image: testenv.Image, Commands: []string{"echo two"}})
	require.NoError(t, err)
	wg.Wait()
	assert.NotEqual(t, details(t, first).ContainerID, details(t, second).ContainerID, "a live run of this process is not taken over")
	requireRemoved(t, cli, details(t, first).ContainerID)
}
