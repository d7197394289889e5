package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	tc "github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/runner"
)

var ctx = context.Background()

// ---- trivial and parallel ----

func newLading(cfg docker.Config) *docker.Runner {
	r, err := docker.New(cfg)
	if err != nil {
		fail(err)
	}
	return r
}

func ladingTrue(r *docker.Runner, image string) error {
	return ladingTask(r, runner.Task{Image: image})
}

// ladingBare runs `true` without an output directory: what the output
// directory costs is the difference with ladingTrue.
func ladingBare(r *docker.Runner, image string) error {
	return ladingTask(r, runner.Task{Image: image, DisableOutputDir: true})
}

func ladingTask(r *docker.Runner, task runner.Task) error {
	task.Commands = []string{"true"}
	res, err := r.Run(ctx, task)
	if res != nil {
		os.RemoveAll(res.WorkingDir)
	}
	return err
}

func ladingTrivial(cfg config) (measurement, error)     { return ladingLatency(cfg, ladingTrue) }
func ladingBareTrivial(cfg config) (measurement, error) { return ladingLatency(cfg, ladingBare) }

func ladingLatency(cfg config, run func(*docker.Runner, string) error) (measurement, error) {
	r := newLading(docker.Config{})
	f := func() error { return run(r, cfg.Image) }
	if err := warm(f); err != nil {
		return measurement{}, err
	}
	s, err := timeIt(cfg.N, f)
	return measurement{Samples: s}, err
}

func newRaw() *client.Client {
	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		fail(err)
	}
	return cli
}

// rawRun is the minimal Engine API sequence: create, wait, start, wait,
// remove.
func rawRun(cli *client.Client, image string, cmd ...string) error {
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: image, Entrypoint: []string{""}, Cmd: cmd}})
	if err != nil {
		return err
	}
	defer cli.ContainerRemove(ctx, created.ID, client.ContainerRemoveOptions{Force: true})
	w := cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return err
	}
	select {
	case <-w.Result:
		return nil
	case err := <-w.Error:
		return err
	}
}

func rawTrivial(cfg config) (measurement, error) {
	cli := newRaw()
	f := func() error { return rawRun(cli, cfg.Image, "true") }
	if err := warm(f); err != nil {
		return measurement{}, err
	}
	s, err := timeIt(cfg.N, f)
	return measurement{Samples: s}, err
}

func cliTrivial(cfg config) (measurement, error) {
	f := func() error {
		return exec.Command("docker", "run", "--rm", "--entrypoint", "", cfg.Image, "true").Run()
	}
	if err := warm(f); err != nil {
		return measurement{}, err
	}
	s, err := timeIt(cfg.N, f)
	return measurement{Samples: s}, err
}

func tcRun(image string) error {
	c, err := tc.GenericContainer(ctx, tc.GenericContainerRequest{
		ContainerRequest: tc.ContainerRequest{Image: image, Entrypoint: []string{""}, Cmd: []string{"true"}, WaitingFor: wait.ForExit()},
		Started:          true,
	})
	if c != nil {
		defer c.Terminate(ctx)
	}
	return err
}

func tcTrivial(cfg config) (measurement, error) {
	f := func() error { return tcRun(cfg.Image) }
	if err := warm(f); err != nil {
		return measurement{}, err
	}
	s, err := timeIt(cfg.N, f)
	return measurement{Samples: s}, err
}

// parallel runs 4*cfg.Parallel tasks, cfg.Parallel at a time, per
// repetition, after one unrecorded task.
func parallel(cfg config, task func() error) (measurement, error) {
	total := 4 * cfg.Parallel
	if err := warm(task); err != nil {
		return measurement{}, err
	}
	s, err := timeIt(cfg.reps(), func() error {
		var wg sync.WaitGroup
		errs := make(chan error, total)
		slots := make(chan struct{}, cfg.Parallel)
		for range total {
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				if err := task(); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		return <-errs
	})
	return measurement{Samples: s, Tasks: total}, err
}

func ladingParallel(cfg config) (measurement, error) {
	r := newLading(docker.Config{})
	return parallel(cfg, func() error { return ladingTrue(r, cfg.Image) })
}

func ladingBareParallel(cfg config) (measurement, error) {
	r := newLading(docker.Config{})
	return parallel(cfg, func() error { return ladingBare(r, cfg.Image) })
}

func rawParallel(cfg config) (measurement, error) {
	cli := newRaw()
	return parallel(cfg, func() error { return rawRun(cli, cfg.Image, "true") })
}

func cliParallel(cfg config) (measurement, error) {
	return parallel(cfg, func() error {
		return exec.Command("docker", "run", "--rm", "--entrypoint", "", cfg.Image, "true").Run()
	})
}

func tcParallel(cfg config) (measurement, error) {
	return parallel(cfg, func() error { return tcRun(cfg.Image) })
}

// ---- files ----

// makeFiles is the script that writes count files totalling size bytes
// under out/.
func makeFiles(count int, size int64) string {
	return fmt.Sprintf(`mkdir -p out && i=0 && while [ $i -lt %d ]; do head -c %d /dev/zero > out/f$i; i=$((i+1)); done`, count, size/int64(count))
}

// stageTimer measures the time between two lading events.
type stageTimer struct {
	from, to runner.Stage
	start    time.Time
	took     time.Duration
}

func (s *stageTimer) event(e runner.Event) {
	switch e.Stage {
	case s.from:
		s.start = e.Time
	case s.to:
		if !s.start.IsZero() {
			s.took = e.Time.Sub(s.start)
		}
	}
}

func filesOut(cfg config, count int, measure func(image, script string) (time.Duration, error)) (measurement, error) {
	var samples []float64
	for range cfg.reps() {
		d, err := measure(cfg.Image, makeFiles(count, cfg.Size))
		if err != nil {
			return measurement{}, err
		}
		samples = append(samples, d.Seconds())
	}
	return measurement{Samples: samples, Bytes: cfg.Size}, nil
}

func ladingOut(cfg config, count int) (measurement, error) {
	r := newLading(docker.Config{})
	return filesOut(cfg, count, func(image, script string) (time.Duration, error) {
		st := &stageTimer{from: runner.StageCollecting, to: runner.StageCleaning}
		res, err := r.Run(ctx, runner.Task{Image: image, Commands: []string{script}, OutputFiles: []string{"out/**"}, OnEvent: st.event, DisableOutputDir: true})
		if res != nil {
			defer os.RemoveAll(res.WorkingDir)
			if err == nil && len(res.OutputFiles) != count {
				err = fmt.Errorf("collected %d files, want %d", len(res.OutputFiles), count)
			}
		}
		return st.took, err
	})
}

func rawOut(cfg config, count int) (measurement, error) {
	cli := newRaw()
	return filesOut(cfg, count, func(image, script string) (time.Duration, error) {
		created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: image, Entrypoint: []string{""}, Cmd: []string{"/bin/sh", "-c", "cd /tmp && " + script}}})
		if err != nil {
			return 0, err
		}
		defer cli.ContainerRemove(ctx, created.ID, client.ContainerRemoveOptions{Force: true})
		w := cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
		if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
			return 0, err
		}
		<-w.Result
		start := time.Now()
		copied, err := cli.CopyFromContainer(ctx, created.ID, client.CopyFromContainerOptions{SourcePath: "/tmp/out"})
		if err != nil {
			return 0, err
		}
		defer copied.Content.Close()
		dest, _ := os.MkdirTemp(os.Getenv("LADING_BENCH_DIR"), "raw-")
		defer os.RemoveAll(dest)
		// The raw peer writes the tar out as plainly as it can: archive/tar
		// through the same safe extractor lading uses would measure lading.
		_, err = files.Extract(ctx, copied.Content, dest, files.ExtractOptions{})
		return time.Since(start), err
	})
}

func cliOut(cfg config, count int) (measurement, error) {
	return filesOut(cfg, count, func(image, script string) (time.Duration, error) {
		name := fmt.Sprintf("lading-bench-%d", time.Now().UnixNano())
		if out, err := exec.Command("docker", "run", "--name", name, "--entrypoint", "", image, "/bin/sh", "-c", "cd /tmp && "+script).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%v: %s", err, out)
		}
		defer exec.Command("docker", "rm", "-f", name).Run()
		dest, _ := os.MkdirTemp(os.Getenv("LADING_BENCH_DIR"), "cli-")
		defer os.RemoveAll(dest)
		start := time.Now()
		if out, err := exec.Command("docker", "cp", name+":/tmp/out", dest).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%v: %s", err, out)
		}
		return time.Since(start), nil
	})
}

func ladingFilesOut(cfg config) (measurement, error) { return both(cfg, ladingOut) }
func rawFilesOut(cfg config) (measurement, error)    { return both(cfg, rawOut) }
func cliFilesOut(cfg config) (measurement, error)    { return both(cfg, cliOut) }

// both measures 1,000 files and then one file, and reports the sum per
// repetition.
func both(cfg config, f func(config, int) (measurement, error)) (measurement, error) {
	many, err := f(cfg, 1000)
	if err != nil {
		return many, err
	}
	one, err := f(cfg, 1)
	if err != nil {
		return one, err
	}
	for i := range many.Samples {
		many.Samples[i] += one.Samples[min(i, len(one.Samples)-1)]
	}
	many.Bytes *= 2
	return many, nil
}

// inputDir writes count files totalling size bytes, once per child.
func inputDir(cfg config, count int) string {
	dir := filepath.Join(cfg.Dir, fmt.Sprintf("in-%d", count))
	if _, err := os.Stat(dir); err == nil {
		return dir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fail(err)
	}
	chunk := make([]byte, cfg.Size/int64(count))
	for i := range count {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", i)), chunk, 0o644); err != nil {
			fail(err)
		}
	}
	return dir
}

func filesIn(cfg config, measure func(dir string) (time.Duration, error)) (measurement, error) {
	var samples []float64
	for _, count := range []int{1000, 1} {
		dir := inputDir(cfg, count)
		for i := range cfg.reps() {
			d, err := measure(dir)
			if err != nil {
				return measurement{}, err
			}
			if count == 1000 {
				samples = append(samples, d.Seconds())
			} else {
				samples[i] += d.Seconds()
			}
		}
	}
	return measurement{Samples: samples, Bytes: 2 * cfg.Size}, nil
}

func ladingIn(cfg config, strategy docker.FileHandlingStrategy) (measurement, error) {
	r := newLading(docker.Config{FileHandlingStrategy: strategy})
	return filesIn(cfg, func(dir string) (time.Duration, error) {
		st := &stageTimer{from: runner.StageCreating, to: runner.StageRunning}
		_, err := r.Run(ctx, runner.Task{Image: cfg.Image, WorkingDir: dir, DisableOutputDir: true, Commands: []string{"true"}, OnEvent: st.event})
		return st.took, err
	})
}

func ladingFilesInVolume(cfg config) (measurement, error) {
	return ladingIn(cfg, docker.FileHandlingVolume)
}
func ladingFilesInMount(cfg config) (measurement, error) {
	return ladingIn(cfg, docker.FileHandlingMount)
}

func rawFilesIn(cfg config) (measurement, error) {
	cli := newRaw()
	return filesIn(cfg, func(dir string) (time.Duration, error) {
		start := time.Now()
		created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: cfg.Image, Entrypoint: []string{""}, Cmd: []string{"true"}}})
		if err != nil {
			return 0, err
		}
		defer cli.ContainerRemove(ctx, created.ID, client.ContainerRemoveOptions{Force: true})
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(files.WriteTar(ctx, pw, dir, files.TarOptions{Prefix: "work/"})) }()
		_, err = cli.CopyToContainer(ctx, created.ID, client.CopyToContainerOptions{DestinationPath: "/tmp", Content: pr})
		return time.Since(start), err
	})
}

func cliFilesIn(cfg config) (measurement, error) {
	return filesIn(cfg, func(dir string) (time.Duration, error) {
		start := time.Now()
		out, err := exec.Command("docker", "create", "--entrypoint", "", cfg.Image, "true").Output()
		if err != nil {
			return 0, err
		}
		id := strings.TrimSpace(string(out))
		defer exec.Command("docker", "rm", "-f", id).Run()
		if out, err := exec.Command("docker", "cp", dir, id+":/tmp/work").CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%v: %s", err, out)
		}
		return time.Since(start), nil
	})
}

// ---- stdout ----

// stdoutScript prints size bytes of 100-byte lines.
func stdoutScript(size int64) string {
	return fmt.Sprintf(`yes %s | head -c %d`, strings.Repeat("y", 99), size)
}

func ladingStdoutWith(cfg config, secrets map[string]string) (measurement, error) {
	r := newLading(docker.Config{})
	var lines int
	s, err := timeIt(cfg.reps(), func() error {
		lines = 0
		res, err := r.Run(ctx, runner.Task{Image: cfg.Image, Commands: []string{stdoutScript(cfg.Size)}, Secrets: secrets, DisableOutputDir: true,
			OnLine: func(runner.Line) { lines++ }})
		if res != nil {
			os.RemoveAll(res.WorkingDir)
		}
		if err == nil && int64(lines) != wantLines(cfg.Size) {
			err = fmt.Errorf("got %d lines, want %d", lines, wantLines(cfg.Size))
		}
		return err
	})
	return measurement{Samples: s, Bytes: cfg.Size}, err
}

func ladingStdout(cfg config) (measurement, error) { return ladingStdoutWith(cfg, nil) }
func ladingStdoutMasked(cfg config) (measurement, error) {
	return ladingStdoutWith(cfg, map[string]string{"TOKEN": "hunter2-secret-value", "KEY": "ghp_0123456789abcdef", "PW": "p@ss word"})
}

func rawStdout(cfg config) (measurement, error) {
	cli := newRaw()
	s, err := timeIt(cfg.reps(), func() error {
		created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: cfg.Image, Entrypoint: []string{""},
			Cmd: []string{"/bin/sh", "-c", stdoutScript(cfg.Size)}, AttachStdout: true, AttachStderr: true}})
		if err != nil {
			return err
		}
		defer cli.ContainerRemove(ctx, created.ID, client.ContainerRemoveOptions{Force: true})
		att, err := cli.ContainerAttach(ctx, created.ID, client.ContainerAttachOptions{Stream: true, Stdout: true, Stderr: true})
		if err != nil {
			return err
		}
		defer att.Close()
		w := cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
		pr, pw := io.Pipe()
		go func() {
			_, err := stdcopy.StdCopy(pw, io.Discard, att.Reader)
			pw.CloseWithError(err)
		}()
		if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
			return err
		}
		return countLines(pr, cfg.Size, func() { <-w.Result })
	})
	return measurement{Samples: s, Bytes: cfg.Size}, err
}

func cliStdout(cfg config) (measurement, error) {
	s, err := timeIt(cfg.reps(), func() error {
		cmd := exec.Command("docker", "run", "--rm", "--entrypoint", "", cfg.Image, "/bin/sh", "-c", stdoutScript(cfg.Size))
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		return countLines(out, cfg.Size, func() { _ = cmd.Wait() })
	})
	return measurement{Samples: s, Bytes: cfg.Size}, err
}

// wantLines is the number of lines in size bytes of 100-byte lines, the
// last one possibly cut short.
func wantLines(size int64) int64 { return (size + 99) / 100 }

// countLines delivers each line to a callback, as a user of the peer would.
func countLines(r io.Reader, size int64, done func()) error {
	var lines int64
	onLine := func(string) { lines++ }
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		onLine(sc.Text())
	}
	done()
	if lines != wantLines(size) {
		return fmt.Errorf("got %d lines, want %d", lines, wantLines(size))
	}
	return sc.Err()
}
