package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/runner"
)

// ---- the warm pool ----

// newPooled returns a Runner with a warm pool of size containers, all
// warmed.
func newPooled(cfg config, size int) *docker.Runner {
	r, err := docker.New(docker.Config{}, docker.WithPool(docker.Pool{Size: size}))
	if err != nil {
		fail(err)
	}
	if err := r.Warm(ctx, cfg.Image); err != nil {
		fail(err)
	}
	return r
}

// settle waits until every container of the pool is free again: a
// repetition does not inherit the checks of the one before.
func settle(r *docker.Runner) {
	for r.PoolStats().Busy > 0 || r.PoolStats().Warming > 0 {
		time.Sleep(2 * time.Millisecond)
	}
}

func poolTrivial(cfg config) (measurement, error) {
	r := newPooled(cfg, 2)
	defer r.Close()
	f := func() error { return ladingTrue(r, cfg.Image) }
	if err := warm(f); err != nil {
		return measurement{}, err
	}
	s, err := timeIt(cfg.N, f)
	return measurement{Samples: s}, err
}

func poolParallel(cfg config) (measurement, error) {
	r := newPooled(cfg, cfg.Parallel)
	defer r.Close()
	return parallel(cfg, func() error { return ladingTrue(r, cfg.Image) })
}

// ioTask stages 1 MiB in and has the script write 1 MiB out.
func ioTask(cfg config) runner.Task {
	return runner.Task{Image: cfg.Image, InputFiles: map[string]runner.Source{"in.bin": files.HostFile(ioInput(cfg))},
		Commands: []string{"cat in.bin > out.bin"}, OutputFiles: []string{"out.bin"}}
}

// ioInput is the 1 MiB input file, written once per child.
func ioInput(cfg config) string {
	p := filepath.Join(cfg.Dir, "pool-in", "in-1MiB.bin")
	if _, err := os.Stat(p); err != nil {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			fail(err)
		}
		if err := os.WriteFile(p, make([]byte, 1<<20), 0o644); err != nil {
			fail(err)
		}
	}
	return p
}

func ladingIO(r *docker.Runner, cfg config) error {
	res, err := r.Run(ctx, ioTask(cfg))
	if res != nil {
		defer os.RemoveAll(res.WorkingDir)
		if err == nil && len(res.OutputFiles) != 1 {
			err = fmt.Errorf("collected %d files, want 1", len(res.OutputFiles))
		}
	}
	return err
}

func poolFiles(cfg config) (measurement, error) {
	r := newPooled(cfg, 2)
	defer r.Close()
	return filesOn(r, cfg)
}

func coldFiles(cfg config) (measurement, error) {
	r := newLading(docker.Config{})
	defer r.Close()
	return filesOn(r, cfg)
}

// filesOn times the 1 MiB in, 1 MiB out task on r, after a warm-up run.
func filesOn(r *docker.Runner, cfg config) (measurement, error) {
	f := func() error { return ladingIO(r, cfg) }
	if err := warm(f); err != nil {
		return measurement{}, err
	}
	s, err := timeIt(cfg.N, f)
	return measurement{Samples: s, Bytes: 2 << 20}, err
}

// rawFiles is the same task with the raw API: create, copy the input in,
// start, wait, copy the output out, remove.
func rawFiles(cfg config) (measurement, error) {
	cli := newRaw()
	in := ioInput(cfg)
	dir := filepath.Dir(in)
	f := func() error {
		created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{Image: cfg.Image, Entrypoint: []string{""},
			Cmd: []string{"/bin/sh", "-c", "cd /tmp/work && cat in-1MiB.bin > out.bin"}}})
		if err != nil {
			return err
		}
		defer cli.ContainerRemove(ctx, created.ID, client.ContainerRemoveOptions{Force: true})
		pr, pw := io.Pipe()
		go func() {
			pw.CloseWithError(files.WriteTar(ctx, pw, dir, files.TarOptions{Prefix: "work/"}))
		}()
		if _, err := cli.CopyToContainer(ctx, created.ID, client.CopyToContainerOptions{DestinationPath: "/tmp", Content: pr}); err != nil {
			return err
		}
		w := cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNextExit})
		if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
			return err
		}
		<-w.Result
		copied, err := cli.CopyFromContainer(ctx, created.ID, client.CopyFromContainerOptions{SourcePath: "/tmp/work/out.bin"})
		if err != nil {
			return err
		}
		defer copied.Content.Close()
		dest, _ := os.MkdirTemp(cfg.Dir, "raw-")
		defer os.RemoveAll(dest)
		_, err = files.Extract(ctx, copied.Content, dest, files.ExtractOptions{})
		return err
	}
	if err := warm(f); err != nil {
		return measurement{}, err
	}
	s, err := timeIt(cfg.N, f)
	return measurement{Samples: s, Bytes: 2 << 20}, err
}

// poolCheck reports the taint check of each task (from the pool's
// counters): what the pool does in the background between two tasks in
// one container.
func poolCheck(cfg config) (measurement, error) {
	r := newPooled(cfg, 1)
	defer r.Close()
	if err := warm(func() error { return ladingTrue(r, cfg.Image) }); err != nil {
		return measurement{}, err
	}
	var samples []float64
	for range cfg.N {
		settle(r)
		before := r.PoolStats()
		if err := ladingTrue(r, cfg.Image); err != nil {
			return measurement{}, err
		}
		settle(r)
		after := r.PoolStats()
		if after.Checks != before.Checks+1 {
			return measurement{}, fmt.Errorf("checks %d -> %d; taints %v", before.Checks, after.Checks, after.Taints)
		}
		samples = append(samples, (after.CheckTime - before.CheckTime).Seconds())
	}
	return measurement{Samples: samples}, nil
}

// poolSize1 is the trivial task, one at a time, in a pool of one: each
// task waits for the check of the one before.
func poolSize1(cfg config) (measurement, error) {
	r := newPooled(cfg, 1)
	defer r.Close()
	f := func() error { return ladingTrue(r, cfg.Image) }
	if err := warm(f); err != nil {
		return measurement{}, err
	}
	s, err := timeIt(cfg.N, f)
	return measurement{Samples: s}, err
}
