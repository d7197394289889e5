//go:build linux

package testenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// SecondEngine is a Docker Engine a test starts for itself, apart from the
// shared one: its own dockerd, data root, exec root, containerd and network
// namespace. A test may freeze it, kill it or break it as it likes; the
// shared engine never notices.
//
// Its dockerd runs in a network namespace of its own (unshare --net), with
// no bridge and no iptables rules: a second dockerd in the host's namespace
// would delete the shared engine's docker0 bridge. Containers on it have no
// network but the loopback.
type SecondEngine struct {
	// Host is the engine's socket, "unix://<dir>/docker.sock", for
	// Config.Host.
	Host string
	// Client talks to it.
	Client *client.Client
	// PID is the dockerd process (not containerd), the one [SecondEngine.Freeze] stops.
	PID int

	dir  string
	cmd  *exec.Cmd
	done chan struct{} // closed when dockerd has exited
}

// StartSecondEngine starts a second engine with [Image] loaded, stopped and
// removed (its containers, its containerd and its directories) at the end of
// the test. Starting it takes about a second. It needs root, unshare and
// dockerd: without them the test is skipped, or fails when CI is set.
func StartSecondEngine(t testing.TB) *SecondEngine {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "a second engine needs root")
	}
	for _, bin := range []string{"unshare", "dockerd", "containerd"} {
		if _, err := exec.LookPath(bin); err != nil {
			unavailable(t, "a second engine needs "+bin+": "+err.Error())
		}
	}
	// Unix socket paths are limited to 108 bytes: keep the directory short.
	base := os.TempDir()
	if len(base) > 40 {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "lading-e2-")
	if err != nil {
		t.Fatalf("second engine: %v", err)
	}
	e := &SecondEngine{Host: "unix://" + filepath.Join(dir, "docker.sock"), dir: dir, done: make(chan struct{})}
	logFile, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatalf("second engine: %v", err)
	}
	e.cmd = exec.Command("unshare", "--net", "dockerd",
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"-H", e.Host,
		"--iptables=false", "--ip6tables=false", "--bridge", "none",
		"--config-file", writeEmptyConfig(t, dir))
	e.cmd.Stdout, e.cmd.Stderr = logFile, logFile
	// Its own process group: a signal to the test's group does not reach it.
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := e.cmd.Start(); err != nil {
		logFile.Close()
		_ = os.RemoveAll(dir)
		unavailable(t, "start a second dockerd: "+err.Error())
	}
	// unshare without --fork execs dockerd in place: same pid.
	e.PID = e.cmd.Process.Pid
	go func() {
		_ = e.cmd.Wait()
		logFile.Close()
		close(e.done)
	}()
	t.Cleanup(func() { e.stop(t) })

	e.Client, err = client.New(client.WithHost(e.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("second engine client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		if _, err = e.Client.Ping(ctx, client.PingOptions{}); err == nil {
			break
		}
		select {
		case <-e.done:
			t.Fatalf("second dockerd exited: %s", e.logTail())
		case <-ctx.Done():
			t.Fatalf("second dockerd did not answer within 60s: %v\n%s", err, e.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := BuildImage(ctx, e.Client); err != nil {
		t.Fatalf("second engine: %v", err)
	}
	return e
}

// writeEmptyConfig writes an empty daemon.json, so that the host's
// /etc/docker/daemon.json (which may name the shared engine's bridge, hosts
// or data root) is not read.
func writeEmptyConfig(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "daemon.json")
	if err := os.WriteFile(path, []byte("{}\n"), 0o600); err != nil {
		t.Fatalf("second engine: %v", err)
	}
	return path
}

// Freeze stops the engine's dockerd (SIGSTOP): it accepts no request and
// answers none until [SecondEngine.Thaw]; its containers go on running.
func (e *SecondEngine) Freeze(t testing.TB) {
	t.Helper()
	if err := syscall.Kill(e.PID, syscall.SIGSTOP); err != nil {
		t.Fatalf("freeze the second engine: %v", err)
	}
}

// Thaw resumes a frozen engine (SIGCONT). Thawing a running engine does
// nothing.
func (e *SecondEngine) Thaw(t testing.TB) {
	t.Helper()
	if err := syscall.Kill(e.PID, syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("thaw the second engine: %v", err)
	}
}

// Kill kills dockerd at once (SIGKILL), as a crash would; its containerd and
// containers stay until the end of the test.
func (e *SecondEngine) Kill(t testing.TB) {
	t.Helper()
	_ = syscall.Kill(e.PID, syscall.SIGCONT)
	if err := syscall.Kill(e.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("kill the second engine: %v", err)
	}
	<-e.done
}

// stop removes what the engine holds and stops it, then whatever it left:
// its containerd, the shims of its containers, mounts under its directory.
func (e *SecondEngine) stop(t testing.TB) {
	_ = syscall.Kill(e.PID, syscall.SIGCONT)
	select {
	case <-e.done:
	default:
		if e.Client != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if list, err := e.Client.ContainerList(ctx, client.ContainerListOptions{All: true}); err == nil {
				for _, c := range list.Items {
					_, _ = e.Client.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
				}
			}
			cancel()
		}
		_ = syscall.Kill(e.PID, syscall.SIGTERM)
		select {
		case <-e.done:
		case <-time.After(30 * time.Second):
			t.Logf("second dockerd did not stop within 30s of SIGTERM: killing it")
			_ = syscall.Kill(e.PID, syscall.SIGKILL)
			<-e.done
		}
	}
	if e.Client != nil {
		_ = e.Client.Close()
	}
	// What a killed dockerd leaves: its containerd, and the shims and
	// processes of its containers. All of them name the exec root.
	execRoot := filepath.Join(e.dir, "exec")
	for _, pid := range processesNaming(execRoot) {
		for _, child := range childrenOf(pid) {
			_ = syscall.Kill(child, syscall.SIGKILL)
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(processesNaming(execRoot)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	unmountUnder(e.dir)
	if err := os.RemoveAll(e.dir); err != nil {
		t.Errorf("remove the second engine's directory: %v", err)
	}
}

// logTail returns the end of dockerd's log.
func (e *SecondEngine) logTail() string {
	data, _ := os.ReadFile(filepath.Join(e.dir, "dockerd.log"))
	if len(data) > 4096 {
		data = data[len(data)-4096:]
	}
	return string(data)
}

// processesNaming returns the pids of processes whose command line holds s.
func processesNaming(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + entry.Name() + "/cmdline")
		if err == nil && bytes.Contains(cmdline, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// childrenOf returns the pids of a process's children.
func childrenOf(pid int) []int {
	var children []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		for _, f := range strings.Fields(string(data)) {
			if child, err := strconv.Atoi(f); err == nil {
				children = append(children, child)
			}
		}
	}
	return children
}

// unmountUnder detaches every mount at or below dir, deepest first.
func unmountUnder(dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var points []string
	scan := bufio.NewScanner(f)
	for scan.Scan() {
		fields := strings.Fields(scan.Text())
		if len(fields) < 5 {
			continue
		}
		point := unescapeMount(fields[4])
		if point == dir || strings.HasPrefix(point, dir+"/") {
			points = append(points, point)
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
