package kubernetes_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/kubernetes"
	"github.com/lading-dev/lading/runner"
)

// resumeScript prints an output and a line, waits for the host program to
// crash, then writes an output file and ends with 5.
var resumeScript = []string{
	`echo '::{"outputs":{"phase":"before"}}::'`,
	"cat in.txt",
	"echo before",
	"sleep 4",
	"echo after > {{ outputDir }}/after.txt",
	"echo after",
	"exit 5",
}

var resumeInputs = map[string]runner.Source{"in.txt": files.String("input\n")}

// TestResumeHelperProcess is the host program that crashes: it runs when
// re-executed by TestResume, prints the script's lines to stdout, and is
// killed mid-run, leaving its pod.
func TestResumeHelperProcess(t *testing.T) {
	id := os.Getenv("LADING_RESUME_TASK")
	if id == "" {
		t.Skip("helper process for TestResume")
	}
	r := newRunner(t, kubernetes.Config{})
	_, _ = r.Run(t.Context(), runner.Task{ID: id, Image: testenv.Image, Commands: resumeScript, InputFiles: resumeInputs, Stdout: os.Stdout})
}

// TestResume: a host program starts a task and is killed; the restarted
// program runs the same task with Resume and follows the same pod, from the
// start of its log to its end, collecting its output files, then deletes
// it.
func TestResume(t *testing.T) {
	_, cs := testenv.Kubernetes(t)
	taskID := "resume-" + time.Now().Format("150405.000000000")

	testenv.CrashMidRun(t, "TestResumeHelperProcess", []string{"LADING_RESUME_TASK=" + taskID}, "before")

	r := newRunner(t, kubernetes.Config{Resume: true})
	var mu sync.Mutex
	var lines, stages []string
	res, err := r.Run(t.Context(), runner.Task{
		ID: taskID, Image: testenv.Image, Commands: resumeScript, InputFiles: resumeInputs,
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
	require.NotNil(t, res)
	t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
	assert.Equal(t, []string{`::{"outputs":{"phase":"before"}}::`, "input", "before", "after"}, lines, "every line once, from the start")
	assert.Equal(t, "before", res.Outputs["phase"], "outputs printed before the crash are kept")
	require.NotEmpty(t, stages)
	assert.True(t, strings.HasPrefix(stages[0], "running resumed "), "no new pod was created: %v", stages)
	require.Contains(t, res.OutputFiles, "after.txt", "the output directory is collected from the resumed pod")
	data, err := os.ReadFile(res.OutputFiles["after.txt"])
	require.NoError(t, err)
	assert.Equal(t, "after\n", string(data))
	assert.Equal(t, res.WorkingDir, filepath.Dir(filepath.Dir(res.OutputFiles["after.txt"])))

	d := res.Details.(*kubernetes.Details)
	p, err := cs.CoreV1().Pods(d.Namespace).Get(context.Background(), d.Pod, metav1.GetOptions{})
	if err == nil {
		assert.NotNil(t, p.DeletionTimestamp, "the resumed pod is deleted")
		assert.Equal(t, d.RunID, p.Labels[kubernetes.LabelRun], "the earlier run's id is taken over")
	} else {
		assert.True(t, apierrors.IsNotFound(err), "%v", err)
	}
}

// TestResumeSkipsLiveRuns: a run of a live process, this one, is not taken
// over.
func TestResumeSkipsLiveRuns(t *testing.T) {
	r := newRunner(t, kubernetes.Config{Resume: true})
	taskID := "live-" + time.Now().Format("150405.000000000")
	started := make(chan struct{})
	var first *runner.Result
	var firstErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		var once sync.Once
		first, firstErr = r.Run(t.Context(), runner.Task{ID: taskID, Image: testenv.Image, Commands: []string{"echo one", "sleep 2"},
			OnLine: func(runner.Line) { once.Do(func() { close(started) }) }})
	})
	<-started
	second, err := r.Run(t.Context(), runner.Task{ID: taskID, Image: testenv.Image, Commands: []string{"echo two"}})
	require.NoError(t, err)
	wg.Wait()
	require.NoError(t, firstErr)
	assert.NotEqual(t, first.Details.(*kubernetes.Details).Pod, second.Details.(*kubernetes.Details).Pod, "a live run of this process is not taken over")
}
