package kubernetes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/internal/core"
	"github.com/lading-dev/lading/runner"
)

// Files returns the run's file strategy: copies through the pod's file
// containers ([podFiles]).
func (run *run) Files() core.Files {
	run.files = &podFiles{run: run, ws: run.c.WS}
	return run.files
}

// podFiles moves a run's files through the pod's file containers, by exec
// and tar, as Kestra does: the working directory is the subdirectory
// "work" of an emptyDir volume; an init container waits until the host
// working directory has been streamed into it, and a sidecar, once the
// task's container has ended, until the output files have been streamed
// out. What comes back is read as a hostile archive within the output
// limits, and only what the script created or changed
// ([core.Staging.Decide]).
type podFiles struct {
	run     *run
	ws      *core.Workspace
	staging core.Staging
}

// collects reports whether anything comes back: output globs or the
// output directory (the pod then has the sidecar).
func (p *podFiles) collects() bool { return p.ws.OutputRel != "" || !p.ws.Matcher.Empty() }

// Stage writes the task's input files into the host working directory.
func (p *podFiles) Stage(ctx context.Context) error {
	return p.ws.Stage(ctx, p.run.c.Task.InputFiles)
}

// CopyIn waits until the init container has started and streams the host
// working directory into the volume through it, then tells it to let the
// pod go on. Without anything to copy the pod has no init container.
func (p *podFiles) CopyIn(ctx context.Context) error {
	if p.ws.Empty {
		return nil
	}
	return p.upload(ctx)
}

func (p *podFiles) upload(ctx context.Context) error {
	run, ws := p.run, p.ws
	if _, err := run.waitStarted(ctx, containerIn, true); err != nil {
		return err
	}
	run.c.Event(runner.StageStaging, ws.HostDir)
	p.staging.Known = true
	p.staging.Files = map[string]files.StagedFile{}
	pr, pw := io.Pipe()
	written := make(chan error, 1)
	go func() {
		err := files.WriteTar(ctx, pw, ws.HostDir, files.TarOptions{Prefix: "work/",
			OnFile: func(rel string, f files.StagedFile) { p.staging.Files[rel] = f }})
		pw.CloseWithError(err)
		written <- err
	}()
	err := run.exec(ctx, containerIn, []string{"sh", "-c", "tar -x -f - -C " + volumeMount + " && touch " + markerIn}, pr, nil)
	pr.CloseWithError(errors.New("the copy ended"))
	if werr := <-written; werr != nil && err == nil && !errors.Is(werr, io.ErrClosedPipe) {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("kubernetes: copy input files into the pod: %w", err)
	}
	return nil
}

// Collect copies back into the host working directory, through the
// sidecar, the files the globs match and those of the output directory
// that the run created or changed, and lists them in res. A stopped run's
// pod is gone: nothing comes back.
func (p *podFiles) Collect(ctx context.Context, res *runner.Result) ([]string, error) {
	run, ws := p.run, p.ws
	if !p.collects() {
		return p.staging.Fill(res), nil
	}
	switch {
	case run.stopping.Load():
		res.Warnings = append(res.Warnings, "output files are not collected: the pod was deleted when the run was stopped")
		return p.staging.Fill(res), nil
	case run.gone.Load():
		res.Warnings = append(res.Warnings, "output files are not collected: the pod was deleted, or failed, before they could be")
		return p.staging.Fill(res), nil
	}
	run.c.Event(runner.StageCollecting, ws.HostDir)
	hostRoot, err := os.OpenRoot(ws.HostDir)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: collect output files: %w", err)
	}
	defer hostRoot.Close()
	var execErr error
	left := run.c.OutputLimits()
	x, written, err := run.c.Extract(ctx, volumeMount+"/work", func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			execErr = run.exec(ctx, containerOut, []string{"tar", "-c", "-f", "-", "-C", volumeMount, "work"}, nil, pw)
			pw.CloseWithError(execErr)
		}()
		return readCloser{pr, func() error { pr.CloseWithError(errors.New("the extraction ended")); <-done; return nil }}, nil
	}, ws.HostDir, files.ExtractOptions{
		StripPrefix: "work/", Decide: p.staging.Decide(hostRoot, ws.OutputRel),
		Filter: func(rel string) bool {
			return (ws.OutputRel != "" && strings.HasPrefix(rel, ws.OutputRel+"/")) || ws.Matcher.Match(rel)
		},
	}, &left, res)
	if err == nil && execErr != nil {
		err = run.c.CollectError(ctx, execErr)
	}
	if err == nil && x != nil {
		err = x.Commit()
	} else if x != nil {
		err = errors.Join(err, x.Rollback())
	}
	if err != nil {
		return nil, err
	}
	p.staging.Record(ws, written)
	return p.staging.Fill(res), nil
}

// readCloser is a reader with the Close given.
type readCloser struct {
	io.Reader
	close func() error
}

func (r readCloser) Close() error { return r.close() }

// Tidy tells the sidecar that the files are out, so the pod ends.
func (p *podFiles) Tidy(ctx context.Context, _ *runner.Result) error {
	if p.collects() && !p.run.stopping.Load() && !p.run.gone.Load() {
		// Best effort: with Delete the pod goes anyway.
		_ = p.run.exec(ctx, containerOut, []string{"touch", markerOut}, nil, nil)
	}
	return nil
}

// Discard has nothing to undo on the host.
func (p *podFiles) Discard() {}

// exec runs command in container of the run's pod, with stdin when not nil
// and stdout into out, and returns what it wrote to stderr in its error.
func (run *run) exec(ctx context.Context, container string, command []string, stdin io.Reader, out io.Writer) error {
	req := run.r.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(run.r.namespace).Name(run.c.Name()).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: command, Stdin: stdin != nil, Stdout: out != nil, Stderr: true}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(run.r.rest, "POST", req.URL().String())
	if err != nil {
		return err
	}
	spdy, err := remotecommand.NewSPDYExecutor(run.r.rest, "POST", req.URL())
	if err != nil {
		return err
	}
	ex, err := remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: out, Stderr: &limited{w: &stderr, n: 4096}})
	var code utilexec.CodeExitError
	if errors.As(err, &code) {
		return fmt.Errorf("%s exited with %d: %s", strings.Join(command, " "), code.Code, strings.TrimSpace(stderr.String()))
	}
	if err != nil {
		return run.r.apiError("exec in container "+container+" of pod "+run.c.Name(), err)
	}
	return nil
}

// limited keeps the first n bytes written to it.
type limited struct {
	w io.Writer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
