package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/internal/core"
)

// box is one warm container of a pool.
type box struct {
	id         string
	imageUser  string   // the image's user, the task's when the configuration sets none
	entrypoint []string // what runs before the task's interpreter: the configured entrypoint, the image's, or none
	volumes    []string // the image's volume directories, whose listings are in the baseline

	// The baseline taken when the container was warmed, which every check
	// compares against.
	changes map[string]bool // "<kind> <path>" from the engine's list of changes
	scrub   scrubReport

	// Guarded by the pool's lock:
	freed time.Time
	uses  int

	// Touched by the task that holds the box only:
	above map[string]bool // the directories above its tasks' working directories, which may be left changed
}

// scrubReport is what the check script prints: the memory cgroup's
// oom_kill count and a listing of what the engine's list of changes does
// not cover (the tmpfs mounts, /etc/hosts and its siblings, the image's
// volumes).
type scrubReport struct {
	oom     string
	listing string
}

// keepAlive is the pool container's command, under the engine's init
// (tini), which reaps the task's orphans.
var keepAlive = []string{"/bin/sh", "-c", "sleep inf 2>/dev/null || while :; do sleep 86400; done"}

// procsScript defines, for the scripts below, selfsid (S: the script's own
// session), tasks (T: the processes of the task: every process but those of
// session 1, the init and the keep-alive, those of session S, and the
// process X; with P set, but those whose parent is outside the container
// too: the task script), sweep (stop and kill them until none is left, at
// most 100 rounds) and oomcount (oom: the memory cgroup's oom_kill count).
// Every exec starts a session of its own, so a task's processes are found
// even when they made sessions of their own (a daemon) or were left to the
// init; an exec's first process alone has no parent in the container.
const procsScript = `
selfsid() {
	read -r l < /proc/self/stat
	set -- ${l##*) }
	S=$4
}
tasks() {
	T=
	for d in /proc/[0-9]*; do
		read -r l 2>/dev/null < "$d/stat" || continue
		set -- ${l##*) }
		[ "$1" = Z ] || [ "$4" = 1 ] || [ "$4" = "$S" ] || [ "${d#/proc/}" = "$X" ] || { [ -n "$P" ] && [ "$2" = 0 ]; } || T="$T ${d#/proc/}"
	done
}
sweep() {
	i=0
	while [ $i -lt 100 ]; do
		tasks
		[ -z "$T" ] && return 0
		kill -STOP $T 2>/dev/null
		kill -KILL $T 2>/dev/null
		i=$((i+1))
		[ $i -gt 3 ] && sleep 0.05 2>/dev/null
	done
	tasks
	[ -z "$T" ]
}
oomcount() {
	oom=unknown
	for f in /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events; do
		[ -r $f ] || continue
		while read -r k v; do [ "$k" = oom_kill ] && oom=$v; done < $f
		break
	done
}
S= X= P=
`

// reportScript prints what the engine's list of changes does not show:
// the oom count, and a listing of the tmpfs mounts, /etc/hosts and its
// siblings and the image's volumes ($V).
const reportScript = `oomcount
echo "oom $oom"
ls -1AR /dev 2>&1
ls -lnAR --full-time /dev/shm /dev/mqueue $V 2>&1
for f in /etc/hosts /etc/hostname /etc/resolv.conf; do echo "$f"; cat "$f" 2>&1; done
`

// taskScript runs the task, then cleans up after it. $1 is the working
// directory, $2 the output directory ("" for none), $3 the image's volumes,
// the rest the command; the first line of stdin is a token K, random for
// each task, which starts every line the script adds to the output (after
// a NUL byte). The task runs in the foreground, in a session of its own
// (setsid, where the image has it), with stdin from /dev/null and the
// highest oom_score_adj (the kernel's OOM killer picks the task's
// processes before the init, the keep-alive and this script). Once it has
// exited the script kills what it left running (all it may kill: the
// processes of its user, or all of them for root), prints "K <status>
// <oom count> <1 when the output directory holds anything>" (and "K e" on
// stderr), and waits for
// "go" on stdin (the pool has collected the output files); then it sweeps
// again, removes the working directory and prints "K report", the report
// (reportScript) and "K end". The stop script signals the task's processes
// but not this one.
const taskScript = `W=$1 O=$2 V=$3
shift 3
read -r K || exit 125
mkdir -p "$W" ${O:+"$O"} && cd "$W" || exit 125
a='echo 1000 >/proc/self/oom_score_adj 2>/dev/null; exec "$@"'
if command -v setsid >/dev/null 2>&1; then setsid /bin/sh -c "$a" lading-task "$@" </dev/null; else /bin/sh -c "$a" lading-task "$@" </dev/null; fi
c=$?
` + procsScript + `S=1 X=$$
sweep
w=0
if [ -n "$O" ]; then for f in "$O"/* "$O"/.[!.]* "$O"/..?*; do if [ -e "$f" ] || [ -L "$f" ]; then w=1; fi; done; fi
oomcount
printf '\000%s e\n' "$K" >&2
printf '\000%s %s %s %s\n' "$K" "$c" "$oom" "$w"
read -r g
[ "$g" = go ] || exit 0
sweep || { printf '\000%s procs%s\n' "$K" "$T"; exit 3; }
cd /
rm -rf "$W" || { printf '\000%s rm\n' "$K"; exit 5; }
printf '\000%s report\n' "$K"
` + reportScript + `printf '\000%s end\n' "$K"
`

// stopScript stops the task from inside: $1 is the signal, $2 the grace in
// tenths of a second. It sends the signal to the task's processes (not to
// the task script), waits for them to go, then kills what is left.
const stopScript = `G=$1 N=$2
` + procsScript + `selfsid
P=1
tasks
[ -n "$T" ] && kill -$G $T 2>/dev/null
i=0
while [ $i -lt "$N" ]; do
	tasks
	[ -z "$T" ] && exit 0
	sleep 0.1
	i=$((i+1))
done
sweep
`

// checkScript cleans the container after a task whose task script could
// not (it was killed, or never ran), and when warming: $1 is the task's
// working directory ("" when warming), $2 the image's volumes. It checks
// that the image has what the pool needs (exit 4), kills what is left of
// the task (exit 3 with "procs" and the survivors when some could not be
// killed), removes the working directory and prints the report
// (reportScript).
const checkScript = `W=$1 V=$2
` + procsScript + `selfsid
for c in rm ls mkdir; do
	command -v $c >/dev/null 2>&1 || { echo "tools the image lacks $c"; exit 4; }
done
sweep || { echo "procs$T"; exit 3; }
[ -n "$W" ] && { rm -rf "$W" || exit 5; }
` + reportScript

// oomScript prints the memory cgroup's oom_kill count.
const oomScript = procsScript + `oomcount
echo "$oom"
`

// maxExecOutput bounds what lading reads of its own scripts' output.
const maxExecOutput = 1 << 20

// warm starts a container for the pool and takes its baseline.
func (p *pool) warm(ctx context.Context) (*box, error) {
	r := p.r
	cfg := &r.cfg
	comp := &r.compiled.container
	labels := maps.Clone(cfg.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, map[string]string{
		LabelManaged: "true",
		LabelPool:    p.key,
		LabelCreated: time.Now().UTC().Format(time.RFC3339),
	})
	maps.Copy(labels, r.owner)
	var mounts []mount.Mount
	for _, v := range cfg.Volumes {
		m, err := parseVolume(v)
		if err != nil {
			return nil, err
		}
		mounts = append(mounts, m)
	}
	if err := r.checkCPUs(ctx); err != nil {
		return nil, err
	}
	if err := r.checkRuntime(ctx); err != nil {
		return nil, err
	}
	init := true
	hostCfg := &container.HostConfig{
		Init:        &init,
		Runtime:     cfg.Runtime,
		Mounts:      mounts,
		NetworkMode: container.NetworkMode(cfg.NetworkMode),
		ExtraHosts:  cfg.ExtraHosts,
		Privileged:  cfg.Privileged,
		ShmSize:     comp.shm,
		Resources:   comp.resources,
	}
	name := "lading-pool-" + core.NewRunID()
	call, cancel := core.EngineCall(ctx, EngineTimeout)
	defer cancel()
	call, cancelTimeout := context.WithTimeout(call, cleanupTimeout)
	defer cancelTimeout()
	created, err := r.cli.ContainerCreate(call, client.ContainerCreateOptions{
		Name: name,
		Config: &container.Config{
			Image:        p.image,
			Entrypoint:   keepAlive,
			Cmd:          []string{},
			WorkingDir:   "/",
			Labels:       labels,
			ExposedPorts: comp.exposed,
		},
		HostConfig: hostCfg,
		Platform:   r.platform,
	})
	if err != nil {
		return nil, errors.Join(engineError(r, "create pool container "+name, err), r.removeBox(name))
	}
	b := &box{id: created.ID, above: map[string]bool{}}
	p.set.mu.Lock()
	p.all[b] = true
	p.set.mu.Unlock()
	fail := func(err error) (*box, error) {
		p.set.mu.Lock()
		delete(p.all, b)
		p.set.mu.Unlock()
		return nil, errors.Join(err, r.removeBox(b.id))
	}
	if _, err := r.cli.ContainerStart(call, b.id, client.ContainerStartOptions{}); err != nil {
		return fail(engineError(r, "start pool container "+name, err))
	}
	inspected, err := r.cli.ImageInspect(call, p.image)
	if err != nil {
		return fail(engineError(r, "inspect image "+p.image, err))
	}
	if ic := inspected.Config; ic != nil {
		b.imageUser = ic.User
		for v := range ic.Volumes {
			b.volumes = append(b.volumes, v)
		}
		slices.Sort(b.volumes)
		if comp.entryPoint == nil {
			b.entrypoint = ic.Entrypoint
		}
	}
	if len(comp.entryPoint) > 0 && comp.entryPoint[0] != "" {
		b.entrypoint = comp.entryPoint
	}
	// The baseline is taken as the task's user, who writes the reports of
	// the tasks.
	out, code, err := r.execOutput(call, b.id, cfg.User, []string{"/bin/sh", "-c", checkScript, "lading-pool", "", strings.Join(b.volumes, " ")})
	switch {
	case err != nil && (cerrdefs.IsNotFound(err) || strings.Contains(err.Error(), "no such file")):
		return fail(&unsuitableError{image: p.image, reason: "no /bin/sh"})
	case err != nil:
		return fail(engineError(r, "check pool container "+name, err))
	case code == 4:
		return fail(&unsuitableError{image: p.image, reason: strings.TrimSpace(out)})
	case code != 0:
		return fail(&unsuitableError{image: p.image, reason: fmt.Sprintf("its check exited %d: %.200s", code, out)})
	}
	if b.scrub, err = parseScrub(out); err != nil {
		return fail(&unsuitableError{image: p.image, reason: err.Error()})
	}
	if b.changes, err = r.boxChanges(call, b.id); err != nil {
		return fail(engineError(r, "list the changes of pool container "+name, err))
	}
	p.set.mu.Lock()
	p.set.stats.Warmed++
	p.set.mu.Unlock()
	return b, nil
}

// parseScrub reads the check script's report.
func parseScrub(out string) (scrubReport, error) {
	first, rest, _ := strings.Cut(out, "\n")
	oom, ok := strings.CutPrefix(first, "oom ")
	if !ok {
		return scrubReport{}, fmt.Errorf("unexpected check output %.200q", first)
	}
	return scrubReport{oom: oom, listing: rest}, nil
}

// boxChanges returns the engine's list of a container's changes, as
// "<kind> <path>".
func (r *Runner) boxChanges(ctx context.Context, id string) (map[string]bool, error) {
	diff, err := r.cli.ContainerDiff(ctx, id, client.ContainerDiffOptions{})
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(diff.Changes))
	for _, c := range diff.Changes {
		out[changeKey(c)] = true
	}
	return out, nil
}

// workIn notes that a task works in dir: the directories above it may be
// left changed.
func (b *box) workIn(dir string) {
	for d := path.Dir(dir); d != "/" && d != "."; d = path.Dir(d) {
		b.above[d] = true
	}
}

func changeKey(c container.FilesystemChange) string {
	return fmt.Sprintf("%s %s", c.Kind, c.Path)
}

// taint compares what a check found with the box's baseline: "" when the
// container is as it was warmed, else the reason to discard it. A change
// to a directory that holds a task's working directory (the engine made or
// touched it when the working directory was made) is expected.
func (b *box) taint(rep scrubReport, changes map[string]bool) string {
	if rep.oom != b.scrub.oom {
		return "oom"
	}
	if rep.listing != b.scrub.listing {
		return "tmpfs, volume or /etc/hosts changed"
	}
	for c := range changes {
		if b.changes[c] {
			continue
		}
		kind, p, _ := strings.Cut(c, " ")
		if b.above[p] && kind != container.ChangeDelete.String() {
			continue
		}
		return "file system changed"
	}
	return ""
}

// check makes the container of a finished task ready for the next, or
// says why it cannot be: it kills what is left of the task, removes its
// working directory, and compares the container with its baseline.
func (r *Runner) check(b *box, w *taskWork) string {
	ctx, cancel := context.WithTimeout(context.Background(), EngineTimeout)
	defer cancel()
	out, code, err := r.execOutput(ctx, b.id, "0", []string{"/bin/sh", "-c", checkScript, "lading-pool", w.dir, strings.Join(b.volumes, " ")})
	switch {
	case err != nil:
		return "check failed"
	case code == 3:
		return "process survived"
	case code != 0:
		return "check failed"
	}
	return r.compare(ctx, b, out)
}

// finish makes the container of a finished task ready for the next, or
// says why it cannot be: the task script, told to go on, kills what is left
// of the task, removes its working directory and reports; then the
// container is compared with its baseline. When the task script cannot
// (it was killed, the exec failed), a check of its own does it
// ([Runner.check]).
func (r *Runner) finish(b *box, w *taskWork) string {
	if w.conn == nil {
		return r.check(b, w)
	}
	conn := w.conn
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), EngineTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, conn.Close)
	defer stop()
	if _, err := conn.Conn.Write([]byte("go\n")); err != nil {
		return r.check(b, w)
	}
	var buf bytes.Buffer
	lb := &limitedBuffer{buf: &buf, left: maxExecOutput}
	if _, err := stdcopy.StdCopy(lb, lb, conn.Reader); err != nil {
		return "check failed"
	}
	out := buf.String()
	k := "\x00" + w.token + " "
	switch {
	case strings.Contains(out, k+"procs"):
		return "process survived"
	case strings.Contains(out, k+"rm\n"):
		// A user who is not root may not remove a working directory the
		// engine made (in a sticky /tmp): root does it.
		return r.check(b, w)
	}
	_, report, ok := strings.Cut(out, k+"report\n")
	if !ok {
		return "check failed"
	}
	report, _, ok = strings.Cut(report, k+"end\n")
	if !ok {
		return "check failed"
	}
	return r.compare(ctx, b, report)
}

// compare parses the task script's report and compares it, and the
// engine's changes list, with the container's baseline: "" when the
// container is as it was warmed, else why not.
func (r *Runner) compare(ctx context.Context, b *box, report string) string {
	rep, err := parseScrub(report)
	if err != nil {
		return "check failed"
	}
	changes, err := r.boxChanges(ctx, b.id)
	if err != nil {
		return "check failed"
	}
	return b.taint(rep, changes)
}

// removeBox removes a pool container, on a fresh bounded context; one that
// is gone already is removed.
func (r *Runner) removeBox(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	_, err := r.cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err == nil || cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err) {
		return nil
	}
	return engineError(r, "remove pool container "+id, err)
}

// execOutput runs cmd in container id as user and returns its stdout and
// stderr together (at most maxExecOutput bytes) and its exit code.
func (r *Runner) execOutput(ctx context.Context, id, user string, cmd []string) (string, int, error) {
	created, err := r.cli.ExecCreate(ctx, id, client.ExecCreateOptions{User: user, AttachStdout: true, AttachStderr: true, Cmd: cmd})
	if err != nil {
		return "", 0, err
	}
	att, err := r.cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return "", 0, err
	}
	defer att.Close()
	stop := context.AfterFunc(ctx, att.Close)
	defer stop()
	var buf bytes.Buffer
	w := &limitedBuffer{buf: &buf, left: maxExecOutput}
	if _, err := stdcopy.StdCopy(w, w, att.Reader); err != nil && ctx.Err() == nil {
		return buf.String(), 0, err
	}
	if ctx.Err() != nil {
		return buf.String(), 0, ctx.Err()
	}
	code, err := r.execExit(ctx, created.ID)
	return buf.String(), code, err
}

// execExit returns the exit code of an exec whose output has ended: the
// engine may take a moment more to mark it as exited.
func (r *Runner) execExit(ctx context.Context, execID string) (int, error) {
	delay := time.Millisecond
	for {
		inspected, err := r.cli.ExecInspect(ctx, execID, client.ExecInspectOptions{})
		if err != nil {
			return 0, err
		}
		if !inspected.Running {
			return inspected.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// limitedBuffer keeps the first bytes written to it and drops the rest.
type limitedBuffer struct {
	buf  *bytes.Buffer
	left int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	n := min(len(p), l.left)
	l.buf.Write(p[:n])
	l.left -= n
	return len(p), nil
}

var _ io.Writer = (*limitedBuffer)(nil)
