package docker_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

// TestWorkingDirAtTheHostsPath: as in Kestra, the container sees the
// working directory at the host's absolute path, so a host path rendered
// into a script (a workflow engine's storage file, {{ workingDir }}) is the
// same file inside: under both strategies, as root and as a non-root user,
// in a directory lading makes and in the caller's.
func TestWorkingDirAtTheHostsPath(t *testing.T) {
	for _, strategy := range []docker.FileHandlingStrategy{docker.FileHandlingVolume, docker.FileHandlingMount} {
		for _, user := range []string{"", "1000:1000"} {
			for _, given := range []bool{false, true} {
				name := string(strategy) + "/user=" + user
				if given {
					name += "/caller's dir"
				}
				t.Run(name, func(t *testing.T) {
					r, _ := newRunner(t, docker.Config{FileHandlingStrategy: strategy, Container: docker.Container{User: user}})
					task := runner.Task{Image: testenv.Image, OutputFiles: []string{"copy.txt"},
						InputFiles: map[string]runner.Source{"in/data.txt": files.String("payload")}}
					if given {
						task.WorkingDir = filepath.Join(t.TempDir(), "checkout dir")
					}
					// The host path, as a workflow engine renders it into
					// the script, before the run: only known for the
					// caller's directory; {{ workingDir }} names either.
					task.Commands = []string{
						`[ "$(pwd)" = "{{ workingDir }}" ] && [ "$WORKING_DIR" = "{{ workingDir }}" ] && echo same-path`,
						`cat "{{ workingDir }}/in/data.txt" > "{{ workingDir }}/copy.txt"`,
						`echo "$OUTPUT_DIR"`,
						`echo out > "$OUTPUT_DIR/o.txt"`,
					}
					if given {
						task.Commands = append(task.Commands, `cat "`+task.WorkingDir+`/in/data.txt"; echo`)
					}
					var out strings.Builder
					task.Stdout = &out
					res, err := r.Run(t.Context(), task)
					require.NoError(t, err, out.String())
					t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
					if given {
						assert.Equal(t, task.WorkingDir, res.WorkingDir)
					}
					lines := strings.Split(strings.TrimSpace(out.String()), "\n")
					require.GreaterOrEqual(t, len(lines), 2, out.String())
					assert.Equal(t, "same-path", lines[0])
					outputDir := lines[1] // the host's path too
					assert.True(t, strings.HasPrefix(outputDir, res.WorkingDir+"/outputs-"), outputDir)
					if given {
						assert.Equal(t, "payload", lines[2])
					}
					data, err := os.ReadFile(res.OutputFiles["copy.txt"])
					require.NoError(t, err)
					assert.Equal(t, "payload", string(data))
					data, err = os.ReadFile(filepath.Join(outputDir, "o.txt"))
					require.NoError(t, err)
					assert.Equal(t, "out\n", string(data))
				})
			}
		}
	}
}

func TestWorkingDirThatIsASystemDirectory(t *testing.T) {
	r, _ := newRunner(t, docker.Config{})
	for _, dir := range []string{"/", "/etc", "/usr/bin", "/tmp", "/proc/x", "/sys", "/dev/shm/work"} {
		_, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, WorkingDir: dir, Commands: []string{"true"}})
		require.ErrorIs(t, err, runner.ErrInvalidTask, dir)
		var fe *runner.FieldError
		require.ErrorAs(t, err, &fe, dir)
		assert.Equal(t, "workingDir", fe.Field)
		assert.Equal(t, dir, fe.Value)
	}
}

// TestFixedContainerWorkingDir: containerWorkingDir puts the working
// directory at a fixed path in the container instead of the host's.
func TestFixedContainerWorkingDir(t *testing.T) {
	for _, strategy := range []docker.FileHandlingStrategy{docker.FileHandlingVolume, docker.FileHandlingMount} {
		t.Run(string(strategy), func(t *testing.T) {
			cfg, err := docker.ParseConfig([]byte(`{"containerWorkingDir": "/work", "fileHandlingStrategy": "` + string(strategy) + `", "user": "1000:1000"}`))
			require.NoError(t, err)
			r, _ := newRunner(t, cfg)
			var out strings.Builder
			res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Stdout: &out, OutputFiles: []string{"copy.txt"},
				InputFiles: map[string]runner.Source{"in.txt": files.String("payload")},
				Commands:   []string{`echo "$(pwd) {{ workingDir }} $WORKING_DIR $OUTPUT_DIR"`, "cp in.txt copy.txt"}})
			require.NoError(t, err)
			t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
			fields := strings.Fields(out.String())
			require.Len(t, fields, 4, out.String())
			assert.Equal(t, []string{"/work", "/work", "/work"}, fields[:3])
			assert.True(t, strings.HasPrefix(fields[3], "/work/outputs-"), fields[3])
			data, err := os.ReadFile(res.OutputFiles["copy.txt"])
			require.NoError(t, err)
			assert.Equal(t, "payload", string(data))
		})
	}
	for _, dir := range []string{"work", "/etc", "/proc/w"} {
		_, err := docker.ParseConfig([]byte(`{"containerWorkingDir": "` + dir + `"}`))
		var fe *runner.FieldError
		require.ErrorAs(t, err, &fe, dir)
		assert.Equal(t, "containerWorkingDir", fe.Field)
		assert.Equal(t, dir, fe.Value)
		require.ErrorIs(t, err, runner.ErrInvalidConfig)
	}
}
