package kubernetes

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/runner"
)

// collectTimeout bounds the copy of the output files once the script has
// ended.
const collectTimeout = 10 * time.Minute

// exec runs command in container of the run's pod, with stdin when not nil
// and stdout into out, and returns what it wrote to stderr in its error.
func (run *run) exec(ctx context.Context, container string, command []string, stdin io.Reader, out io.Writer) error {
	req := run.r.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(run.r.namespace).Name(run.name()).SubResource("exec").
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
		return run.r.apiError("exec in container "+container, err)
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

// copyIn streams the host working directory into the pod's volume through
// the init container, then tells it to let the pod go on.
func (run *run) copyIn(ctx context.Context, ws *workspace) error {
	pr, pw := io.Pipe()
	written := make(chan error, 1)
	go func() {
		err := files.WriteTar(ctx, pw, ws.hostDir, files.TarOptions{Prefix: "work/"})
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

// collect copies back into the host working directory, through the
// sidecar, the files the globs match and those of the output directory
// that the run created or changed, and lists them in res. The tar stream is
// read as hostile (files.ExtractPending: no path out of the directory, no
// links, limits); a file with the content the host already has is not
// written, and not an output. Then the sidecar is told to end.
func (run *run) collect(ctx context.Context, ws *workspace, res *runner.Result) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), collectTimeout)
	defer cancel()
	run.event(runner.StageCollecting, ws.hostDir)
	defer func() {
		// Best effort: with Delete the pod goes anyway.
		_ = run.exec(ctx, containerOut, []string{"touch", markerOut}, nil, nil)
	}()
	filter := func(rel string) bool {
		if ws.outputRel != "" && strings.HasPrefix(rel, ws.outputRel+"/") {
			return true
		}
		return ws.matcher.Match(rel)
	}
	pr, pw := io.Pipe()
	execErr := make(chan error, 1)
	go func() {
		err := run.exec(ctx, containerOut, []string{"tar", "-c", "-f", "-", "-C", volumeMount, "work"}, nil, pw)
		pw.CloseWithError(err)
		execErr <- err
	}()
	x, stats, err := files.ExtractPending(ctx, pr, ws.hostDir, files.ExtractOptions{
		StripPrefix: "work/", Filter: filter, Overwrite: true,
		Decide: func(string, *tar.Header) files.Decision { return files.WriteIfChanged },
	})
	pr.CloseWithError(errors.New("the extraction ended"))
	eerr := <-execErr
	for _, s := range stats.Skipped {
		res.Warnings = append(res.Warnings, "output "+s)
	}
	if err == nil && eerr != nil {
		err = eerr
	}
	if err != nil {
		if x != nil {
			err = errors.Join(err, x.Rollback())
		}
		return fmt.Errorf("kubernetes: collect output files: %w", err)
	}
	if err := x.Commit(); err != nil {
		return fmt.Errorf("kubernetes: collect output files: %w", err)
	}
	res.OutputFiles = map[string]string{}
	var globbed []string
	for _, rel := range stats.Files {
		if key, ok := strings.CutPrefix(rel, ws.outputRel+"/"); ws.outputRel != "" && ok {
			res.OutputFiles[key] = host(ws, rel)
			continue
		}
		globbed = append(globbed, rel)
	}
	for _, rel := range globbed {
		if _, taken := res.OutputFiles[rel]; !taken {
			res.OutputFiles[rel] = host(ws, rel)
		}
	}
	ws.removeEmptyOutputDir()
	patterns := ws.matcher.Patterns()
	for _, i := range ws.matcher.Unmatched(globbed) {
		res.Warnings = append(res.Warnings, fmt.Sprintf("outputFiles[%d] %q matched no file the run created or changed", i, patterns[i]))
	}
	return nil
}

func host(ws *workspace, rel string) string {
	return filepath.Join(ws.hostDir, filepath.FromSlash(path.Clean(rel)))
}
