// Package gotest tests a shell script, testdata/report.sh, in a container,
// the way Go projects test with testcontainers-go: a table of cases run in
// parallel on one shared runner per configuration, asserting exit codes,
// output, outputs and output files, as root and as uid 1000, under MOUNT.
//
//	go test -v ./examples/gotest
package gotest_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/docker/dockertest"
	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/runner"
)

func TestReport(t *testing.T) {
	image := testImage(t)
	cases := []struct {
		name     string
		csv      string // the input file; "" stages none
		exitCode int
		stdout   []string
		stderr   []string
		total    any    // outputs["total"]; nil: none
		report   string // report.txt; "-": not collected
	}{
		{
			name:   "two regions",
			csv:    "region,amount\nnorth,120\nsouth,80\nnorth,40\n",
			stdout: []string{"total 240"},
			total:  int64(240),
			report: "north 160\nsouth 80\n",
		},
		{
			name:   "header only",
			csv:    "region,amount\n",
			stdout: []string{"total 0"},
			total:  int64(0),
			report: "",
		},
		{
			name:     "no input file",
			exitCode: 2,
			stderr:   []string{"report: no such file: sales.csv"},
			report:   "-",
		},
		{
			name:     "amount not a number",
			csv:      "region,amount\nnorth,12x\n",
			exitCode: 3,
			stderr:   []string{"report: not a number: 12x"},
			report:   "",
		},
	}
	users := []struct{ name, user, uid string }{
		{"root", "", "0"},
		{"uid 1000", "1000", "1000"},
	}
	for _, u := range users {
		// One runner per configuration, shared by the parallel subtests
		// below and closed when they have all finished.
		r := dockertest.New(t, docker.Config{
			FileHandlingStrategy: docker.FileHandlingMount,
			Pull:                 docker.Pull{PullPolicy: docker.PullNever},
			Container:            docker.Container{User: u.user},
		})
		t.Run(u.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					inputs := map[string]runner.Source{
						"report.sh": files.WithMode(files.HostFile("testdata/report.sh"), 0o755),
					}
					if tc.csv != "" {
						inputs["sales.csv"] = files.String(tc.csv)
					}
					var stdout, stderr []string
					log := dockertest.Log(t)
					res, err := r.Run(t.Context(), runner.Task{
						ID:          "report-" + tc.name,
						Image:       image,
						InputFiles:  inputs,
						OutputFiles: []string{"report.txt"},
						Commands:    []string{"./report.sh sales.csv"},
						OnLine: func(l runner.Line) {
							log(l)
							if l.Stream == runner.Stderr {
								stderr = append(stderr, l.Text)
							} else if !strings.HasPrefix(l.Text, "::") { // not an outputs line
								stdout = append(stdout, l.Text)
							}
						},
					})
					if res != nil {
						t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
					}
					var exit *runner.ExitError
					if tc.exitCode == 0 {
						require.NoError(t, err)
					} else {
						require.True(t, errors.As(err, &exit), "want an exit error, got %v", err)
						assert.Equal(t, tc.exitCode, exit.ExitCode)
					}
					require.NotNil(t, res)
					assert.Equal(t, tc.exitCode, res.ExitCode)
					assert.Equal(t, tc.stdout, stdout)
					assert.Equal(t, tc.stderr, stderr)
					if tc.total != nil {
						assert.Equal(t, tc.total, res.Outputs["total"])
						assert.Equal(t, u.uid, res.Outputs["user"], "the script ran as the configured user")
					} else {
						assert.NotContains(t, res.Outputs, "total")
					}
					path, ok := res.OutputFiles["report.txt"]
					if tc.report == "-" {
						assert.False(t, ok, "report.txt should not be collected")
						return
					}
					require.True(t, ok, "report.txt collected; got %v", res.OutputFiles)
					got, err := os.ReadFile(path)
					require.NoError(t, err)
					assert.Equal(t, tc.report, string(got))
				})
			}
		})
	}
}
