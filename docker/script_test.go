package docker_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/template"
)

// TestInputFileTemplates: files.Template contents are rendered with the
// task's vars, the directories and secret(), up to template.MaxFileSize;
// other sources reach the container byte for byte; the caller's map is
// left alone. Under both strategies, as root and as uid 1000.
func TestInputFileTemplates(t *testing.T) {
	testenv.Engine(t)
	big := strings.Repeat("0123456789abcdef", 3<<20/16) // 3 MiB: over template.MaxSize once rendered
	binary := string([]byte{0, 0xff, '{', '{', ' ', 'x', ' ', '}', '}', 0xfe, '{', '%', '\n'})
	plainLarge := strings.Repeat("{{ not a template }}\n", 2<<20/21) // a String source: never parsed
	for _, strategy := range []docker.FileHandlingStrategy{docker.FileHandlingVolume, docker.FileHandlingMount} {
		for _, user := range []string{"", "1000:1000"} {
			t.Run(fmt.Sprintf("%s/user=%q", strategy, user), func(t *testing.T) {
				r, _ := newRunner(t, docker.Config{FileHandlingStrategy: strategy, Container: docker.Container{User: user}})
				inputs := map[string]runner.Source{
					"conf/app.yml": files.Template("dir: {{ workingDir }}\nout: {{ outputDir }}\nname: {{ inputs.name }}\ntoken: {{ secret('TOKEN') }}\n"),
					"big.txt":      files.Template("<{{ inputs.big }}>"),
					"bin.dat":      files.Bytes([]byte(binary)),
					"plain.txt":    files.String(plainLarge),
				}
				res, err := r.Run(t.Context(), runner.Task{
					Image:      testenv.Image,
					Vars:       map[string]any{"inputs": map[string]any{"name": "lading", "big": big}},
					Secrets:    map[string]string{"TOKEN": "tok-3141592653"},
					InputFiles: inputs,
					Commands: []string{
						`[ "$(cat conf/app.yml)" = "$(printf 'dir: %s\nout: %s\nname: lading\ntoken: %s' "$WORKING_DIR" "$OUTPUT_DIR" "$TOKEN")" ] && echo conf-ok`,
						"wc -c < big.txt",
						// Untouched inputs are not outputs: bring back copies.
						`cp conf/app.yml bin.dat plain.txt big.txt "$OUTPUT_DIR"/`,
					},
				})
				require.NoError(t, err)
				t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
				assert.Equal(t, 2, res.StdoutLines)
				got := map[string]string{}
				for rel, p := range res.OutputFiles {
					data, err := os.ReadFile(p)
					require.NoError(t, err)
					got[rel] = string(data)
				}
				assert.Equal(t, "<"+big+">", got["big.txt"])
				assert.Equal(t, binary, got["bin.dat"])
				assert.Equal(t, plainLarge, got["plain.txt"])
				assert.Contains(t, got["app.yml"], "name: lading\ntoken: tok-3141592653\n", "the secret is in the file, as the template asked")
				_, isTemplate := inputs["conf/app.yml"].(runner.TemplateSource)
				assert.True(t, isTemplate, "the caller's map still holds the template source")
			})
		}
	}
}

// TestInputFileTemplateErrors: a bad template fails the run before any
// engine call, naming the file, with secrets masked; a rendered file over
// template.MaxFileSize is refused.
func TestInputFileTemplateErrors(t *testing.T) {
	r, err := docker.New(docker.Config{Host: "unix:///nonexistent/lading.sock"}) // no engine is needed
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	const secret = "hunter2-in-a-template"
	tests := []struct {
		name, template, problem string
		vars                    map[string]any
	}{
		{"undefined variable", "pw=" + secret + "\n{{ inputs.nmae }}", "inputs.nmae", map[string]any{"inputs": map[string]any{"name": "x"}}},
		{"syntax error", "{% if %}", "line 1", nil},
		{"over MaxFileSize", "{{ s }}{{ s }}{{ s }}", "more than 8388608 bytes", map[string]any{"s": strings.Repeat("x", 3<<20)}},
		{"markup over MaxSize", strings.Repeat("x", template.MaxSize) + "{{ 1 }}", "over the cap of 1048576", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := r.Run(t.Context(), runner.Task{
				Image:      testenv.Image,
				Vars:       tt.vars,
				Secrets:    map[string]string{"PW": secret},
				InputFiles: map[string]runner.Source{"conf/app.yml": files.Template(tt.template)},
				Commands:   []string{"true"},
			})
			require.Nil(t, res)
			require.ErrorIs(t, err, runner.ErrInvalidTask)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "inputFiles.conf/app.yml", fe.Field)
			assert.Contains(t, fe.Problem, tt.problem)
			assert.NotContains(t, err.Error(), secret)
		})
	}
}

// TestCIStringsNeedTemplatesOff: the CI strings of the issue are refused
// as templates, and reach the script byte for byte with DisableTemplates.
func TestCIStringsNeedTemplatesOff(t *testing.T) {
	testenv.Engine(t)
	const inspect = `docker inspect --format "{{ .State.Status }}"`
	for _, strategy := range []docker.FileHandlingStrategy{docker.FileHandlingVolume, docker.FileHandlingMount} {
		t.Run(string(strategy), func(t *testing.T) {
			r, _ := newRunner(t, docker.Config{FileHandlingStrategy: strategy})
			task := runner.Task{
				Image:          testenv.Image,
				Env:            map[string]string{"ID_FORMAT": "{{.ID}}"},
				BeforeCommands: []string{`docker() { printf '%s|' "$@" > "$OUTPUT_DIR/argv"; }`},
				Commands:       []string{inspect, `printf '%s' "$ID_FORMAT" > "$OUTPUT_DIR/env"`},
			}
			_, err := r.Run(t.Context(), task)
			require.ErrorIs(t, err, runner.ErrInvalidTask, "rendered, {{ .State.Status }} is not a template")

			task.DisableTemplates = true
			res, err := r.Run(t.Context(), task)
			require.NoError(t, err)
			t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
			argv, err := os.ReadFile(res.OutputFiles["argv"])
			require.NoError(t, err)
			assert.Equal(t, "inspect|--format|{{ .State.Status }}|", string(argv))
			env, err := os.ReadFile(res.OutputFiles["env"])
			require.NoError(t, err)
			assert.Equal(t, "{{.ID}}", string(env))
		})
	}
}

// TestFailFastExitCodes: Kestra's ["unknown", "echo 1"] fails with 127, a
// failing before command stops the commands, and the switch turns it off.
func TestFailFastExitCodes(t *testing.T) {
	r, _ := newRunner(t, docker.Config{})
	tests := []struct {
		name string
		task runner.Task
		code int
		out  int // stdout lines
	}{
		{"unknown command", runner.Task{Commands: []string{"unknown-lading", "echo 1"}}, 127, 0},
		{"false in the middle", runner.Task{Commands: []string{"echo a", "false", "echo b"}}, 1, 1},
		{"failing before command", runner.Task{BeforeCommands: []string{"exit 4"}, Commands: []string{"echo a"}}, 4, 0},
		{"a condition does not stop it", runner.Task{Commands: []string{"if false; then :; fi", "false || true", "echo a"}}, 0, 1},
		{"only the last of a pipe counts, as without pipefail", runner.Task{Commands: []string{"false | true", "echo a"}}, 0, 1},
		{"off", runner.Task{DisableFailFast: true, Commands: []string{"unknown-lading", "echo 1"}}, 0, 1},
		{"explicit sh -c", runner.Task{Interpreter: []string{"/bin/sh", "-c"}, Commands: []string{"false", "echo 1"}}, 1, 0},
		{"ash -c", runner.Task{Interpreter: []string{"ash", "-c"}, Commands: []string{"false", "echo 1"}}, 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := tt.task
			task.Image = testenv.Image
			res, err := r.Run(t.Context(), task)
			require.NotNil(t, res, "%v", err)
			assert.Equal(t, tt.code, res.ExitCode)
			if tt.code == 0 {
				assert.NoError(t, err)
			} else {
				var exit *runner.ExitError
				assert.ErrorAs(t, err, &exit)
			}
			assert.Equal(t, tt.out, res.StdoutLines)
		})
	}
}
