package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/internal/testenv"
)

// The flows run against the real engine, in the offline test image, which
// testenv builds when the engine lacks it.

func TestETL(t *testing.T) {
	testenv.Engine(t)
	f, err := ReadFlow("flows/etl.yaml")
	require.NoError(t, err)
	e := &Engine{Dir: t.TempDir(), MaxParallel: 2, Log: logWriter{t}}
	sum, err := e.Run(t.Context(), f)
	require.NoError(t, err)
	sum.Print(logWriter{t})

	require.Equal(t, Success, sum.State)
	for _, tr := range sum.Tasks {
		assert.Equal(t, Success, tr.State, "%s: %v", tr.ID, tr.Err)
	}
	assert.LessOrEqual(t, sum.MaxRunning, 2, "the flow's limit holds across the parallel branches")
	assert.Equal(t, map[string]any{"rows": int64(4), "dropped": int64(2)}, sum.Task("extract").Outputs)
	assert.Equal(t, map[string]any{"total": int64(300), "mean": int64(75)}, sum.Task("stats").Outputs)
	report, err := os.ReadFile(sum.Task("load").OutputFiles["report.txt"])
	require.NoError(t, err)
	assert.Equal(t, `Sales report: 4 rows, 2 dropped
total 300, mean 75
by region:
east,60
north,160
south,80
by month:
2024-01,200
2024-02,100
`, string(report))
}

func TestFailures(t *testing.T) {
	testenv.Engine(t)
	f, err := ReadFlow("flows/failures.yaml")
	require.NoError(t, err)
	e := &Engine{Dir: t.TempDir(), MaxParallel: 3, Log: logWriter{t}}
	sum, err := e.Run(t.Context(), f)
	require.NoError(t, err)
	sum.Print(logWriter{t})

	assert.Equal(t, Failed, sum.State)
	hungry, slow, flaky, publish := sum.Task("hungry"), sum.Task("slow"), sum.Task("flaky"), sum.Task("publish")
	assert.Equal(t, Failed, hungry.State)
	// Docker 20.10 loses the OOM event now and then when containers run side
	// by side (seen about 1 run in 10 here, also with the docker CLI alone:
	// State.OOMKilled stays false), so the kill's exit code is the evidence
	// that always holds.
	assert.Equal(t, 137, hungry.ExitCode, "hungry: killed (error %v)", hungry.Err)
	if !hungry.OOMKilled {
		t.Logf("the engine did not report hungry's OOM kill (exit code 137)")
	}
	assert.Equal(t, Failed, slow.State)
	assert.True(t, slow.TimedOut, "slow: timed out")
	assert.Equal(t, Warning, flaky.State, "a failure allowed by allowFailure")
	assert.Equal(t, 3, flaky.ExitCode)
	assert.Equal(t, map[string]any{"attempted": true}, flaky.Outputs, "outputs printed before the failure are kept")
	assert.Equal(t, Skipped, publish.State)
	assert.ErrorContains(t, publish.Err, "not run: task ")
}

func TestReadFlowRefuses(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown property", "id: f\ntasks:\n  - id: a\n    containerImage: x\n    comands: [echo]\n", "field comands not found"},
		{"id used twice", "id: f\ntasks:\n  - id: a\n    containerImage: x\n  - id: a\n    containerImage: x\n", `tasks[1].id "a": used twice`},
		{"no image", "id: f\ntasks:\n  - id: a\n", "tasks[0] (a).containerImage is empty"},
		{"unknown type", "id: f\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.flow.Switch\n", `type "io.kestra.plugin.core.flow.Switch"`},
		{"empty parallel", "id: f\ntasks:\n  - id: p\n    type: io.kestra.plugin.core.flow.Parallel\n", "tasks[0].tasks: no tasks"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "flow.yaml")
			require.NoError(t, os.WriteFile(path, []byte(tc.yaml), 0o644))
			_, err := ReadFlow(path)
			assert.ErrorContains(t, err, tc.want)
		})
	}
}

func TestBadTaskRunnerFailsTheTask(t *testing.T) {
	testenv.Engine(t)
	path := filepath.Join(t.TempDir(), "flow.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`id: f
tasks:
  - id: a
    containerImage: lading-test/busybox:latest
    taskRunner: {pullPolicy: NEVER, memory: {memory: 1k}}
    commands: [echo hi]
  - id: b
    containerImage: lading-test/busybox:latest
    commands: [echo hi]
`), 0o644))
	f, err := ReadFlow(path)
	require.NoError(t, err)
	sum, err := (&Engine{Dir: t.TempDir()}).Run(t.Context(), f)
	require.NoError(t, err)
	assert.Equal(t, Failed, sum.State)
	assert.ErrorContains(t, sum.Task("a").Err, `memory.memory "1k"`)
	assert.Equal(t, Skipped, sum.Task("b").State)
}

// logWriter sends what the engine prints to the test's log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

func TestMisspeltOutputFileFailsTheTask(t *testing.T) {
	testenv.Engine(t)
	path := filepath.Join(t.TempDir(), "flow.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`id: f
tasks:
  - id: a
    containerImage: lading-test/busybox:latest
    taskRunner: {pullPolicy: NEVER}
    outputFiles: [a.csv]
    commands: [echo 1 > a.csv]
  - id: b
    containerImage: lading-test/busybox:latest
    taskRunner: {pullPolicy: NEVER}
    inputFiles:
      in.csv: "{{ outputs.a.outputFiles['typo.csv'] }}"
    commands: [cat in.csv]
`), 0o644))
	f, err := ReadFlow(path)
	require.NoError(t, err)
	sum, err := (&Engine{Dir: t.TempDir()}).Run(t.Context(), f)
	require.NoError(t, err)
	assert.Equal(t, Success, sum.Task("a").State)
	assert.Equal(t, Failed, sum.Task("b").State)
	// lading's template itself refuses a literal subscript naming no key.
	assert.ErrorContains(t, sum.Task("b").Err, "outputs.a.outputFiles['typo.csv']")
}
