package docker_test

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

var strategies = []docker.FileHandlingStrategy{docker.FileHandlingVolume, docker.FileHandlingMount}

// requireTidy fails unless nothing under dir is a device, FIFO or socket,
// setuid, setgid or sticky, or writable by group or others, and everything
// but symbolic links is owned by owner (when owner >= 0).
func requireTidy(t *testing.T, dir string, owner int) {
	t.Helper()
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		require.NoError(t, err)
		if p == dir {
			return nil
		}
		fi, err := os.Lstat(p)
		require.NoError(t, err)
		m := fi.Mode()
		assert.Zero(t, m&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe|fs.ModeSocket), "%s is %v", p, m)
		assert.Zero(t, m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky), "%s is %v", p, m)
		if m&fs.ModeSymlink == 0 {
			assert.Zero(t, m.Perm()&0o022, "%s is %v: writable by group or others", p, m)
			if owner >= 0 {
				assert.Equal(t, owner, int(fi.Sys().(*syscall.Stat_t).Uid), "owner of %s", p)
			}
		}
		return nil
	}))
}

// TestWorkingDirHygiene: what a container leaves in the working directory
// is no device, FIFO, socket, setuid or setgid file, nor anything writable
// by other users, when Run returns (issue 10 item 1).
func TestWorkingDirHygiene(t *testing.T) {
	modes := []string{
		"cp /bin/busybox s && chmod 6755 s",
		"mkdir sub && chmod 1777 sub && echo w > sub/w && chmod 666 sub/w",
		"echo g > g && chmod 664 g",
		"cp /bin/busybox $OUTPUT_DIR/o && chmod 4755 $OUTPUT_DIR/o",
	}
	specials := []string{"mknod d b 7 0 && chmod 666 d", "mkfifo f", "ln -s /etc/shadow link"}
	for _, strategy := range strategies {
		for _, withSpecials := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/specials=%v", strategy, withSpecials), func(t *testing.T) {
				commands := modes
				if withSpecials {
					commands = append(append([]string(nil), modes...), specials...)
				}
				r, _ := newRunner(t, docker.Config{FileHandlingStrategy: strategy})
				res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, OutputFiles: []string{"*", "sub/**"}, Commands: commands})
				require.NotNil(t, res)
				t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
				t.Logf("error: %v, warnings: %q", err, res.Warnings)
				requireTidy(t, res.WorkingDir, -1)
				require.NoError(t, err)
				for _, key := range []string{"s", "o", "g", "sub/w"} {
					require.Contains(t, res.OutputFiles, key)
				}
				fi, err := os.Lstat(res.OutputFiles["s"])
				require.NoError(t, err)
				assert.Equal(t, fs.FileMode(0o755), fi.Mode(), "s keeps its permission bits, loses setuid and setgid")
				warnings := strings.Join(res.Warnings, "\n")
				if strategy == docker.FileHandlingVolume {
					assert.Contains(t, warnings, "output s: written without its setuid/setgid bits")
					if withSpecials {
						// Never created on the host, said in a warning; the
						// other outputs still come back.
						if !testenv.IsPodman(t) { // no CAP_MKNOD on Podman 4.3: no device is made
							assert.Contains(t, warnings, "output d: device or FIFO not extracted")
						}
						assert.Contains(t, warnings, "output f: device or FIFO not extracted")
					}
					return
				}
				assert.Contains(t, warnings, `cleared the setuid and setgid bits of "s"`)
				assert.Contains(t, warnings, "from 3 entries", "sub, sub/w and g")
				if withSpecials {
					if !testenv.IsPodman(t) { // Podman 4.3's default capabilities leave out CAP_MKNOD: no device is made
						assert.Contains(t, warnings, `removed "d"`)
					}
					assert.Contains(t, warnings, `removed "f"`)
					// The link is left, and never listed as an output.
					target, err := os.Readlink(filepath.Join(res.WorkingDir, "link"))
					require.NoError(t, err)
					assert.Equal(t, "/etc/shadow", target)
					assert.NotContains(t, res.OutputFiles, "link")
				}
			})
		}
	}
}

// swapAs tries, as uid 1000, to replace path with a symbolic link to a
// root-only file, and reports whether it succeeded.
func swapAs(t *testing.T, path string) bool {
	t.Helper()
	setpriv, err := exec.LookPath("setpriv")
	if err != nil || os.Geteuid() != 0 {
		t.Skip("needs root and setpriv(1) to act as another user")
	}
	secretDir := t.TempDir() // 0700, root's
	secret := filepath.Join(secretDir, "secret")
	require.NoError(t, os.WriteFile(secret, []byte("root only"), 0o600))
	out, err := exec.Command(setpriv, "--reuid=1000", "--regid=1000", "--clear-groups", "/bin/busybox", "sh", "-c",
		`ln -sf "$0" "$1.swap" && mv -f "$1.swap" "$1"`, secret, path).CombinedOutput()
	t.Logf("swap as uid 1000: %v %s", err, out)
	return err == nil
}

// openDir returns a fresh directory under a parent every user can enter,
// owned by root with mode 0755, like a caller's checkout.
func openDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lading-caller-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	return dir
}

// TestMountNonRootLeavesNoOpenDirectory: with a non-root user and no
// WorkingDir, the directories lading made are not open to everyone after
// Run, and another local user cannot swap an output (issue 10 item 2).
func TestMountNonRootLeavesNoOpenDirectory(t *testing.T) {
	for _, user := range []string{"1000", "1000:1000", "lading", "nobody"} {
		t.Run(user, func(t *testing.T) {
			r, _ := newRunner(t, docker.Config{FileHandlingStrategy: docker.FileHandlingMount, Container: docker.Container{User: user}})
			res, err := r.Run(t.Context(), runner.Task{
				Image:       testenv.Image,
				OutputFiles: []string{"*.txt"},
				Commands:    []string{"test $(id -u) != 0", "echo made > out.txt", "echo o > $OUTPUT_DIR/o.txt", "mkdir d && chmod 777 d"},
			})
			require.NoError(t, err)
			t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
			require.Contains(t, res.OutputFiles, "out.txt")
			require.Contains(t, res.OutputFiles, "o.txt")
			fi, err := os.Stat(res.WorkingDir)
			require.NoError(t, err)
			assert.Zero(t, fi.Mode().Perm()&0o077, "the working directory is %v", fi.Mode())
			assert.Equal(t, os.Geteuid(), int(fi.Sys().(*syscall.Stat_t).Uid))
			requireTidy(t, res.WorkingDir, os.Geteuid())

			for _, key := range []string{"out.txt", "o.txt"} {
				assert.False(t, swapAs(t, res.OutputFiles[key]), "uid 1000 replaced %s", key)
				data, err := os.ReadFile(res.OutputFiles[key])
				require.NoError(t, err)
				assert.NotEqual(t, "root only", string(data))
			}
		})
	}
}

// TestMountNonRootCallerWorkingDir: a caller's working directory (root's,
// 0755) is usable by a non-root container user, and gets its own owner and
// mode back (issue 11 item 4); what the script made cannot be swapped by
// another local user afterwards (issue 10 item 2).
func TestMountNonRootCallerWorkingDir(t *testing.T) {
	for _, user := range []string{"1000:1000", "lading"} {
		t.Run(user, func(t *testing.T) {
			dir := openDir(t)
			require.NoError(t, os.WriteFile(filepath.Join(dir, "mine.txt"), []byte("caller's"), 0o644))
			before, err := os.Stat(dir)
			require.NoError(t, err)
			r, _ := newRunner(t, docker.Config{FileHandlingStrategy: docker.FileHandlingMount, Container: docker.Container{User: user}})
			res, err := r.Run(t.Context(), runner.Task{
				Image: testenv.Image, WorkingDir: dir,
				InputFiles:  map[string]runner.Source{"in/data.txt": files.String("input")},
				OutputFiles: []string{"out.txt", "in/*"},
				Commands:    []string{"echo hi > out.txt", "echo changed >> in/data.txt", "echo o > $OUTPUT_DIR/o.txt"},
			})
			require.NoError(t, err)
			got := map[string]string{}
			for rel, p := range res.OutputFiles {
				data, err := os.ReadFile(p)
				require.NoError(t, err)
				got[rel] = string(data)
			}
			assert.Equal(t, map[string]string{"out.txt": "hi\n", "in/data.txt": "inputchanged\n", "o.txt": "o\n"}, got)
			after, err := os.Stat(dir)
			require.NoError(t, err)
			assert.Equal(t, before.Mode(), after.Mode(), "the caller's directory keeps its mode")
			assert.Equal(t, before.Sys().(*syscall.Stat_t).Uid, after.Sys().(*syscall.Stat_t).Uid, "and its owner")
			assert.Equal(t, before.Sys().(*syscall.Stat_t).Gid, after.Sys().(*syscall.Stat_t).Gid, "and its group")
			requireTidy(t, dir, int(before.Sys().(*syscall.Stat_t).Uid))
			for _, key := range []string{"out.txt", "in/data.txt", "o.txt"} {
				assert.False(t, swapAs(t, res.OutputFiles[key]), "uid 1000 replaced %s", key)
			}
		})
	}
}

// TestStagedFilesKeepTheirMode: a 0755 host script stays executable, a
// source can set its mode, under both strategies, as root and not (issue
// 11 item 5).
func TestStagedFilesKeepTheirMode(t *testing.T) {
	script := filepath.Join(t.TempDir(), "w.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/sh\necho w ran\n"), 0o755))
	for _, strategy := range strategies {
		for _, user := range []string{"", "1000:1000"} {
			t.Run(fmt.Sprintf("%s/user=%q", strategy, user), func(t *testing.T) {
				r, _ := newRunner(t, docker.Config{FileHandlingStrategy: strategy, Container: docker.Container{User: user}})
				var out strings.Builder
				res, err := r.Run(t.Context(), runner.Task{
					Image: testenv.Image, Stdout: &out,
					InputFiles: map[string]runner.Source{
						"w.sh":     files.HostFile(script),
						"bin/x.sh": files.WithMode(files.String("#!/bin/sh\necho x ran\n"), 0o700),
						"d.txt":    files.String("data"),
					},
					Commands: []string{"./w.sh", "./bin/x.sh", "test -r d.txt && test ! -x d.txt && echo d ok"},
				})
				require.NoError(t, err, out.String())
				t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
				assert.Equal(t, "w ran\nx ran\nd ok\n", out.String())
			})
		}
	}
}

// TestMountNonRootHost runs the test binary as uid 1000 in the docker
// group: lading then cannot change owners, and falls back to opening what
// it made for the run only, refuses a caller's directory the container's
// user cannot write, and removes what it cannot make safe.
func TestMountNonRootHost(t *testing.T) {
	if os.Getenv("LADING_AS_USER") != "" {
		require.NotZero(t, os.Geteuid())
		r, _ := newRunner(t, docker.Config{FileHandlingStrategy: docker.FileHandlingMount, Container: docker.Container{User: "nobody"}})
		t.Run("lading's directory", func(t *testing.T) {
			res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, OutputFiles: []string{"*.txt"},
				Commands: []string{"echo made > out.txt", "echo o > $OUTPUT_DIR/o.txt"}})
			require.NoError(t, err)
			t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
			assert.Contains(t, strings.Join(res.Warnings, "\n"), "open to every local user (mode 0777) while the task ran")
			assert.Len(t, res.OutputFiles, 2)
			fi, err := os.Stat(res.WorkingDir)
			require.NoError(t, err)
			assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm(), "closed again")
			requireTidy(t, res.WorkingDir, -1)
		})
		t.Run("a caller's directory it cannot write", func(t *testing.T) {
			dir := openDir(t)
			_, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, WorkingDir: dir, Commands: []string{"true"}})
			require.ErrorIs(t, err, runner.ErrInvalidTask)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, "workingDir", fe.Field)
			assert.Contains(t, fe.Problem, "VOLUME")
			fi, err := os.Stat(dir)
			require.NoError(t, err)
			assert.Equal(t, fs.FileMode(0o755), fi.Mode().Perm(), "not opened behind the caller's back")
		})
		t.Run("what root made and it cannot change", func(t *testing.T) {
			r, _ := newRunner(t, docker.Config{FileHandlingStrategy: docker.FileHandlingMount})
			res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, OutputFiles: []string{"*"},
				Commands: []string{"cp /bin/busybox s && chmod 4755 s", "echo w > w && chmod 666 w", "echo ok > ok"}})
			require.NoError(t, err)
			t.Cleanup(func() {
				// root's files in a directory uid 1000 owns: removable.
				_ = os.RemoveAll(res.WorkingDir)
			})
			assert.Contains(t, strings.Join(res.Warnings, "\n"), `removed "s"`)
			assert.Equal(t, []string{"ok"}, keys(res.OutputFiles))
			requireTidy(t, res.WorkingDir, -1)
		})
		return
	}
	testenv.Engine(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as another user")
	}
	sock, err := os.Stat("/var/run/docker.sock")
	if err != nil || os.Getenv("DOCKER_HOST") != "" {
		t.Skip("needs the engine at /var/run/docker.sock")
	}
	// A copy of the test binary that uid 1000 can run.
	bin, err := os.MkdirTemp("", "lading-bin-")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(bin) })
	require.NoError(t, os.Chmod(bin, 0o755))
	data, err := os.ReadFile(os.Args[0])
	require.NoError(t, err)
	exe := filepath.Join(bin, "docker.test")
	require.NoError(t, os.WriteFile(exe, data, 0o755))
	cmd := exec.Command(exe, "-test.run", "^TestMountNonRootHost$", "-test.count=1", "-test.v")
	cmd.Dir = bin
	cmd.Env = append(os.Environ(), "LADING_AS_USER=1", "HOME="+bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 1000, Gid: 1000,
		Groups: []uint32{sock.Sys().(*syscall.Stat_t).Gid}}}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "--- PASS: TestMountNonRootHost")
	t.Logf("as uid 1000:\n%s", out)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestMountSharedWorkingDir: two MOUNT runs as a non-root user share a
// caller's working directory; the first to finish neither takes the
// directory away from the other nor walks over what it is writing, and the
// last one gives the directory back and makes it safe.
func TestMountSharedWorkingDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the record of the runs sharing a directory needs root")
	}
	dir := openDir(t)
	before, err := os.Stat(dir)
	require.NoError(t, err)
	r, _ := newRunner(t, docker.Config{FileHandlingStrategy: docker.FileHandlingMount, Container: docker.Container{User: "1000:1000"}})
	type result struct {
		res *runner.Result
		err error
	}
	long := make(chan result, 1)
	go func() {
		res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, WorkingDir: dir, Timeout: time.Minute,
			OutputFiles: []string{"b/**"},
			Commands: []string{"mkdir b && chmod 777 b && touch b.started",
				"while [ ! -e go ]; do sleep 0.05; done", "echo b > b/x && echo o > $OUTPUT_DIR/o.txt"}})
		long <- result{res, err}
	}()
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(dir, "b.started"))
		return err == nil
	}, time.Minute, 20*time.Millisecond, "the long run started")

	res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, WorkingDir: dir, OutputFiles: []string{"a.txt"},
		Commands: []string{"echo a > a.txt && mkfifo a.fifo"}})
	require.NoError(t, err)
	assert.Contains(t, res.OutputFiles, "a.txt")
	assert.Contains(t, strings.Join(res.Warnings, "\n"), "other runs still use it")
	fi, err := os.Lstat(filepath.Join(dir, "b"))
	require.NoError(t, err)
	assert.Equal(t, 1000, int(fi.Sys().(*syscall.Stat_t).Uid), "the long run's directory is still its user's")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "go"), nil, 0o644))
	got := <-long
	require.NoError(t, got.err)
	assert.Contains(t, got.res.OutputFiles, "b/x")
	assert.Contains(t, got.res.OutputFiles, "o.txt")
	assert.Contains(t, strings.Join(got.res.Warnings, "\n"), `removed "a.fifo"`, "the last run walked the whole tree")

	after, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, before.Mode(), after.Mode())
	assert.Equal(t, before.Sys().(*syscall.Stat_t).Uid, after.Sys().(*syscall.Stat_t).Uid)
	requireTidy(t, dir, int(before.Sys().(*syscall.Stat_t).Uid))
	_, err = syscall.Getxattr(dir, "trusted.lading.runs", make([]byte, 1024))
	assert.ErrorIs(t, err, syscall.ENODATA, "no record left")
}

// TestMountHygieneAfterTimeout: a run stopped by its timeout still gives
// the working directory back and makes it safe before Run returns.
func TestMountHygieneAfterTimeout(t *testing.T) {
	r, _ := newRunner(t, docker.Config{FileHandlingStrategy: docker.FileHandlingMount, Container: docker.Container{User: "1000"}})
	res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Timeout: 3 * time.Second, OutputFiles: []string{"*"},
		Commands: []string{"mkfifo f && cp /bin/busybox s && chmod 4755 s && mkdir d && chmod 777 d && touch ready", "sleep 60"}})
	require.ErrorIs(t, err, runner.ErrTimeout)
	require.NotNil(t, res)
	t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
	require.FileExists(t, filepath.Join(res.WorkingDir, "ready"), "the script got as far as the sleep")
	fi, err := os.Stat(res.WorkingDir)
	require.NoError(t, err)
	assert.Equal(t, fs.FileMode(0o700), fi.Mode().Perm())
	requireTidy(t, res.WorkingDir, os.Geteuid())
	assert.Contains(t, strings.Join(res.Warnings, "\n"), `removed "f"`)
}

// TestMountGivenBackWhenTheStartFails: a caller's directory given to the
// container's user gets its owner and mode back when the container never
// starts (Run returns no result).
func TestMountGivenBackWhenTheStartFails(t *testing.T) {
	dir := openDir(t)
	before, err := os.Stat(dir)
	require.NoError(t, err)
	r, _ := newRunner(t, docker.Config{FileHandlingStrategy: docker.FileHandlingMount, Container: docker.Container{User: "1000:1000"}})
	res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, WorkingDir: dir, Interpreter: []string{"/no/such/shell"},
		InputFiles: map[string]runner.Source{"in/a.txt": files.String("a")}, Commands: []string{"true"}})
	require.Error(t, err)
	require.Nil(t, res)
	after, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, before.Mode(), after.Mode())
	assert.Equal(t, before.Sys().(*syscall.Stat_t).Uid, after.Sys().(*syscall.Stat_t).Uid)
	assert.Equal(t, before.Sys().(*syscall.Stat_t).Gid, after.Sys().(*syscall.Stat_t).Gid)
	requireTidy(t, dir, int(before.Sys().(*syscall.Stat_t).Uid))
	if os.Geteuid() == 0 {
		_, err = syscall.Getxattr(dir, "trusted.lading.runs", make([]byte, 1024))
		assert.ErrorIs(t, err, syscall.ENODATA, "no record left")
	}
}

// A run that writes nothing into its output directory leaves no empty
// outputs-<id> directory in a caller's working directory (a shared checkout
// gathered one per step before), under either strategy; one that wrote
// there keeps it.
func TestNoEmptyOutputDirLeft(t *testing.T) {
	for _, strategy := range strategies {
		t.Run(string(strategy), func(t *testing.T) {
			r, _ := newRunner(t, docker.Config{FileHandlingStrategy: strategy})
			dir := t.TempDir()
			_, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, WorkingDir: dir, Commands: []string{"true"}})
			require.NoError(t, err)
			entries, err := os.ReadDir(dir)
			require.NoError(t, err)
			assert.Empty(t, entries, "nothing is left in the working directory")

			res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, WorkingDir: dir, Commands: []string{"echo x > $OUTPUT_DIR/x"}})
			require.NoError(t, err)
			assert.Len(t, res.OutputFiles, 1)
			for _, p := range res.OutputFiles {
				assert.FileExists(t, p)
			}
		})
	}
}
