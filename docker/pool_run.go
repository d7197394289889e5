package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/internal/core"
	"github.com/lading-dev/lading/runner"
)

// poolRun is the engine of a run in a warm container of a pool
// ([core.Engine]): the task runs by exec in a working directory of its own,
// and the container goes back to the pool once it has been checked. When
// the pool says to run cold, every call goes to base, the cold engine of
// the same run.
type poolRun struct {
	base  *run
	pool  *pool
	files *poolFiles

	cold     bool
	warning  string // why the task ran cold, for the result
	box      *box
	work     *taskWork
	exec     string
	mu       sync.Mutex
	taint    string // why the container is not to be reused, "" until known; under mu (Wait runs apart)
	released bool   // the container went back to the pool (Remove and Discard run one after the other)
}

var _ core.Engine = (*poolRun)(nil)

func newPoolRun(base *run) *poolRun {
	p := &poolRun{base: base}
	p.files = &poolFiles{p: p}
	return p
}

// Image takes a container from the pool, making the image present (as the
// pull policy says) when one is warmed for the task; or runs cold.
func (p *poolRun) Image(ctx context.Context) error {
	r := p.base.r
	pl, err := r.pool(p.base.task.Image)
	if err != nil {
		return err
	}
	if pl == nil {
		return p.goCold(ctx)
	}
	p.pool = pl
	b, cold, err := pl.take(ctx, p.base.Image)
	if err != nil {
		return err
	}
	if b == nil {
		p.warning = cold
		return p.goCold(ctx)
	}
	p.use(b)
	return nil
}

// goCold makes the run a cold one, from its image on.
func (p *poolRun) goCold(ctx context.Context) error {
	p.cold = true
	p.files.cold = p.base.Files()
	return p.base.Image(ctx)
}

// use makes b the run's container.
func (p *poolRun) use(b *box) {
	p.box = b
	p.work = &taskWork{dir: p.base.c.WS.ContainerDir}
	b.workIn(p.work.dir)
	p.base.c.ContainerID = b.id
	p.base.imageUser, p.base.imageUserKnown = b.imageUser, true
}

// Files returns the run's file strategy: copies into the working directory
// in the pool's container, or the cold run's strategy.
func (p *poolRun) Files() core.Files { return p.files }

// Create makes the exec that runs the task. A container that is gone (the
// engine removed or stopped it while it was free) is discarded and another
// taken.
func (p *poolRun) Create(ctx context.Context) error {
	if p.cold {
		return p.base.Create(ctx)
	}
	r, ws := p.base.r, p.base.c.WS
	for _, v := range r.cfg.Volumes {
		m, err := parseVolume(v)
		if err != nil {
			return err
		}
		if t := path.Clean(m.Target); t == ws.ContainerDir || strings.HasPrefix(t, ws.ContainerDir+"/") {
			return invalidConfig("volumes", v, "must not mount over the working directory "+ws.ContainerDir)
		}
	}
	cmd := []string{"/bin/sh", "-c", taskScript, "lading-pool", ws.ContainerDir, ws.OutputDir(), strings.Join(p.box.volumes, " ")}
	cmd = append(cmd, p.box.entrypoint...)
	cmd = append(cmd, interpreter(p.base.task)...)
	cmd = append(cmd, strings.Join(ws.Commands, "\n"))
	for attempt := 0; ; attempt++ {
		created, err := r.cli.ExecCreate(ctx, p.box.id, client.ExecCreateOptions{
			User: r.cfg.User, Env: ws.Env, WorkingDir: "/", AttachStdin: true, AttachStdout: true, AttachStderr: true, Cmd: cmd,
		})
		if err == nil {
			p.exec = created.ID
			return nil
		}
		if !(cerrdefs.IsNotFound(err) || cerrdefs.IsConflict(err)) || attempt == 2 {
			if ctx.Err() == nil { // a create cut short by the caller ran nothing
				p.setTaint("exec failed")
			}
			return engineError(r, "create exec in pool container "+p.box.id, err)
		}
		// The container is gone or not running: another one.
		p.giveBack("container gone")
		p.released = false
		b, cold, err := p.pool.take(ctx, p.base.Image)
		if err != nil {
			return err
		}
		if b == nil {
			p.box, p.work = nil, nil
			p.warning = cold
			if err := p.goCold(ctx); err != nil {
				return err
			}
			return p.base.Create(ctx)
		}
		p.use(b)
	}
}

// Attach starts the exec, attached (the Engine API has no attach apart
// from the start of an exec), and gives the task script its token.
func (p *poolRun) Attach(ctx context.Context) (*core.Attachment, error) {
	if p.cold {
		return p.base.Attach(ctx)
	}
	r, b, w := p.base.r, p.box, p.work
	att, err := r.cli.ExecAttach(ctx, p.exec, client.ExecAttachOptions{})
	if err != nil {
		p.setTaint("exec failed")
		return nil, engineError(r, "start exec in pool container "+b.id, err)
	}
	w.token = core.NewRunID() + core.NewRunID()
	if _, err := att.Conn.Write([]byte(w.token + "\n")); err != nil {
		att.Close()
		p.setTaint("exec failed")
		return nil, engineError(r, "start exec in pool container "+b.id, err)
	}
	t := newTrailer(w.token)
	w.trailer = t
	stream := &endReader{r: att.Reader, ended: make(chan struct{})}
	var closeOnce sync.Once
	return &core.Attachment{
		Stream: stream,
		// Once the trailer has been read the exec is the pool's: the
		// task script waits on it to clean up.
		Close: func() {
			closeOnce.Do(func() {
				if t.seen() {
					w.conn = &att.HijackedResponse
				} else {
					att.Close()
				}
			})
		},
		Demux: func(stdout, stderr io.Writer, src io.Reader) error {
			tw := &trailerWriter{w: stdout, t: t}
			ew := &trailerWriter{w: stderr, t: t, stderr: true}
			_, err := stdcopy.StdCopy(tw, ew, src)
			if errors.Is(err, errTrailer) {
				return nil
			}
			return errors.Join(err, tw.flush(), ew.flush())
		},
		// An exec has no wait endpoint: the task has exited once the task
		// script says so, or once its output has ended and inspect says
		// so (the script was killed).
		Wait: func(ctx context.Context) (core.Exit, error) {
			select {
			case <-t.done:
				return core.Exit{Code: t.code}, nil
			case <-stream.ended:
			case <-ctx.Done():
				return core.Exit{}, ctx.Err()
			}
			if t.seen() {
				return core.Exit{Code: t.code}, nil
			}
			code, err := r.execExit(ctx, p.exec)
			if err != nil {
				p.setTaint("exec failed")
			}
			return core.Exit{Code: code}, err
		},
		// The container's memory cgroup counts the kills of its OOM killer:
		// one more than at the warm is this task's.
		OOM: func(ctx context.Context) (bool, error) {
			oom := t.oom
			if !t.seen() {
				out, code, err := r.execOutput(ctx, b.id, "0", []string{"/bin/sh", "-c", oomScript})
				if err != nil || code != 0 {
					p.setTaint("oom check failed")
					return false, err
				}
				oom = strings.TrimSpace(out)
			}
			if oom != b.scrub.oom {
				p.setTaint("oom")
				return true, nil
			}
			return false, nil
		},
	}, nil
}

// endReader closes ended once its reader has returned an error (io.EOF
// included).
type endReader struct {
	r     io.Reader
	ended chan struct{}
	once  sync.Once
}

func (e *endReader) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if err != nil {
		e.once.Do(func() { close(e.ended) })
	}
	return n, err
}

// Start has nothing to do: Attach started the exec.
func (p *poolRun) Start(ctx context.Context) error {
	if p.cold {
		return p.base.Start(ctx)
	}
	return nil
}

// Stop stops the task from inside the container (an exec has no stop
// call): the stop signal to its processes, then, once grace has passed,
// SIGKILL to what is left. When that cannot be done (a fork bomb holds
// every pid of pidsLimit, the container is gone), the container is killed
// and discarded.
func (p *poolRun) Stop(ctx context.Context, grace time.Duration) error {
	if p.cold {
		return p.base.Stop(ctx, grace)
	}
	r, b := p.base.r, p.box
	tenths := int(math.Ceil(float64(grace) / float64(100*time.Millisecond)))
	_, code, err := r.execOutput(ctx, b.id, "0", []string{"/bin/sh", "-c", stopScript, "lading-pool", signalName(r.cfg.StopSignal), fmt.Sprint(tenths)})
	if err == nil && (code == 0 || code == 137) {
		return nil // 137: the task script's own sweep killed the stop, once the task had gone
	}
	p.setTaint("stop failed")
	_, kerr := r.cli.ContainerKill(ctx, b.id, client.ContainerKillOptions{Signal: "SIGKILL"})
	if kerr != nil && !cerrdefs.IsNotFound(kerr) && !cerrdefs.IsConflict(kerr) {
		return errors.Join(err, kerr)
	}
	return nil
}

// numericUser returns the uid and gid of a user given as "uid" or
// "uid:gid", else root's.
func numericUser(user string) (uid, gid int) {
	u, g, hasGroup := strings.Cut(user, ":")
	uid, err := strconv.Atoi(u)
	if err != nil || uid < 0 {
		return 0, 0
	}
	gid = uid
	if hasGroup {
		if gid, err = strconv.Atoi(g); err != nil || gid < 0 {
			return 0, 0
		}
	}
	return uid, gid
}

// signalName is the stop signal as kill takes it: "TERM", "9".
func signalName(s string) string {
	s = strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "SIG")
	if s == "" {
		return "TERM"
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return "TERM"
		}
	}
	return s
}

// Remove gives the container back to the pool, which checks it in the
// background before another task gets it.
func (p *poolRun) Remove(ctx context.Context) error {
	if p.cold {
		return p.base.Remove(ctx)
	}
	p.giveBack("")
	return nil
}

// setTaint notes why the container is not to be reused; the first reason
// stays.
func (p *poolRun) setTaint(reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.taint == "" {
		p.taint = reason
	}
}

// giveBack returns the container to the pool once, discarded for reason
// (or the run's taint) when set.
func (p *poolRun) giveBack(reason string) {
	if p.box == nil {
		return
	}
	if p.released {
		return
	}
	p.released = true
	if reason == "" {
		p.mu.Lock()
		reason = p.taint
		p.mu.Unlock()
	}
	p.pool.release(p.box, p.work, reason)
}

// Details is the docker part of the result.
func (p *poolRun) Details() any {
	if p.cold {
		return p.base.Details()
	}
	return &Details{ContainerID: p.box.id, RunID: p.base.c.ID, ExecID: p.exec}
}

// Error wraps an error of the engine's API.
func (p *poolRun) Error(doing string, err error) error {
	if !p.cold {
		p.setTaint("engine error")
	}
	return engineError(p.base.r, doing, err)
}

// poolFiles is the file strategy of a pool run: the working directory is
// made in the container's own file system, copied in when it holds
// anything (or the task's user is not root), and the output files come
// back as under VOLUME, the engine's list of changes saying what the task
// made. A cold run uses its own strategy (cold).
type poolFiles struct {
	p    *poolRun
	cold core.Files
	vol  *volumeFiles
}

func (f *poolFiles) Stage(ctx context.Context) error {
	if f.cold != nil {
		return f.cold.Stage(ctx)
	}
	return f.p.base.c.WS.Stage(ctx, f.p.base.c.Task.InputFiles)
}

// CopyIn copies the working directory into the container, at its path
// (the engine makes the directories above it), as VOLUME does.
func (f *poolFiles) CopyIn(ctx context.Context) error {
	if f.cold != nil {
		return f.cold.CopyIn(ctx)
	}
	run, ws := f.p.base, f.p.base.c.WS
	f.vol = &volumeFiles{run: run, ws: ws}
	st := &f.vol.staging
	st.Known = true
	st.Files = map[string]files.StagedFile{}
	root := run.runsAsRoot()
	if ws.Empty && root {
		return nil // the task script makes the directories
	}
	run.event(runner.StageStaging, ws.HostDir)
	// A numeric user owns what is copied in, so the task script can
	// remove it afterwards (a name would need the image's passwd file:
	// root removes it then).
	uid, gid := numericUser(run.r.cfg.User)
	pr, pw := io.Pipe()
	written := make(chan struct{})
	go func() {
		defer close(written)
		var extra []string
		if ws.OutputRel != "" {
			extra = []string{ws.OutputRel}
		}
		pw.CloseWithError(files.WriteTar(ctx, pw, ws.HostDir, files.TarOptions{
			Prefix: strings.TrimPrefix(ws.ContainerDir, "/") + "/", ExtraDirs: extra, Shared: !root,
			UID: uid, GID: gid,
			OnFile: func(rel string, sf files.StagedFile) { st.Files[rel] = sf },
		}))
	}()
	_, err := run.r.cli.CopyToContainer(ctx, run.c.ContainerID, client.CopyToContainerOptions{DestinationPath: "/", Content: pr})
	pr.CloseWithError(err)
	<-written
	if err != nil {
		f.p.setTaint("copy failed")
		return engineError(run.r, "copy input files into the container", err)
	}
	return nil
}

// Collect brings back the output files as VOLUME does; a task that wrote
// nothing to its output directory and has no output globs costs one list
// of changes.
func (f *poolFiles) Collect(ctx context.Context, res *runner.Result) ([]string, error) {
	if f.cold != nil {
		if f.p.warning != "" {
			res.Warnings = append(res.Warnings, f.p.warning)
		}
		return f.cold.Collect(ctx, res)
	}
	ws := f.p.base.c.WS
	var written bool
	if t := f.p.work.trailer; t != nil && t.seen() {
		written = t.written
	} else if out := ws.OutputDir(); out != "" {
		changes, err := f.p.base.changes(ctx)
		if err != nil {
			f.p.setTaint("changes failed")
			return nil, engineError(f.p.base.r, "list the container's changes", err)
		}
		for _, c := range changes {
			if strings.HasPrefix(c.Path, out+"/") {
				written = true
				break
			}
		}
	}
	if ws.Matcher.Empty() && !written {
		res.OutputFiles = map[string]string{}
		return nil, nil
	}
	if f.vol == nil {
		f.vol = &volumeFiles{run: f.p.base, ws: ws}
	}
	f.vol.outputWritten = &written
	return f.vol.Collect(ctx, res)
}

func (f *poolFiles) Tidy(ctx context.Context, res *runner.Result) error {
	if f.cold != nil {
		return f.cold.Tidy(ctx, res)
	}
	return nil
}

func (f *poolFiles) Discard() {
	if f.cold != nil {
		f.cold.Discard()
		return
	}
	f.p.giveBack("")
}
