// Command buildbench measures image builds: lading's [docker.Runner.Build]
// beside `docker build` (the CLI, classic builder: DOCKER_BUILDKIT=0) on the
// same context and engine, for a context of many small files and one of a
// large file, and lading's cache hit. Each build runs in a child process,
// so that its peak RSS is its own (getrusage's ru_maxrss of the child).
//
//	go run ./internal/cmd/buildbench                    # 10,000 files of 1 KiB, one file of 1 GiB, 3 rounds
//	go run ./internal/cmd/buildbench -files 1000 -big 100MiB -n 1
//
// The Containerfile copies nothing (`FROM lading-test/busybox:latest` and a
// LABEL), so what is measured is sending the context and the engine
// receiving it, not the layer a COPY would write.
package main

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/build"
	"github.com/lading-dev/lading/docker"
)

func main() {
	child := flag.String("child", "", "internal: build this context in this process (lading or lading-cached)")
	dir := flag.String("dir", "", "internal: the context of -child")
	files := flag.Int("files", 10000, "files in the small-files context")
	big := flag.String("big", "1GiB", "size of the large file")
	n := flag.Int("n", 3, "rounds")
	flag.Parse()
	if *child != "" {
		if err := childBuild(*child, *dir); err != nil {
			fmt.Fprintln(os.Stderr, "buildbench:", err)
			os.Exit(1)
		}
		return
	}
	size, err := units.RAMInBytes(*big)
	if err == nil {
		err = bench(*files, size, *n)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "buildbench:", err)
		os.Exit(1)
	}
}

// childBuild builds dir once: with NoCache for "lading", from the cache
// (built before) for "lading-cached".
func childBuild(mode, dir string) error {
	r, err := docker.New(docker.Config{})
	if err != nil {
		return err
	}
	defer r.Close()
	img, err := r.Build(context.Background(), build.Spec{Context: dir, Name: "lading-bench/build", NoCache: mode == "lading"})
	if err != nil {
		return err
	}
	if mode == "lading-cached" && !img.Cached {
		return fmt.Errorf("expected a cache hit")
	}
	fmt.Println(img.ID)
	return nil
}

type sample struct {
	d   time.Duration
	rss int64 // bytes
}

func bench(files int, big int64, rounds int) error {
	root, err := os.MkdirTemp("", "lading-buildbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	contexts := map[string]string{}
	small := filepath.Join(root, "small")
	if err := smallFiles(small, files); err != nil {
		return err
	}
	contexts[fmt.Sprintf("%d files of 1 KiB", files)] = small
	large := filepath.Join(root, "large")
	if err := largeFile(large, big); err != nil {
		return err
	}
	contexts["one file of "+units.BytesSize(float64(big))] = large

	self, err := os.Executable()
	if err != nil {
		return err
	}
	var refs []string // image ids
	defer func() { removeImages(refs) }()
	names := make([]string, 0, len(contexts))
	for k := range contexts {
		names = append(names, k)
	}
	slices.Sort(names)
	fmt.Printf("%-28s %-22s %10s %10s %12s\n", "context", "client", "median", "min", "peak RSS")
	for _, name := range names {
		dir := contexts[name]
		results := map[string][]sample{}
		for range rounds {
			for _, who := range []string{"lading", "docker CLI", "lading-cached"} {
				var cmd *exec.Cmd
				switch who {
				case "docker CLI":
					cmd = exec.Command("docker", "build", "-q", "--no-cache", "-f", filepath.Join(dir, "Containerfile"), dir)
					cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
				default:
					cmd = exec.Command(self, "-child", who, "-dir", dir)
				}
				s, out, err := timed(cmd)
				if err != nil {
					return fmt.Errorf("%s on %s: %w: %s", who, name, err, out)
				}
				// Each build's image id, lading's and the CLI's, to remove.
				fields := strings.Fields(out)
				if len(fields) > 0 {
					if id := fields[len(fields)-1]; strings.HasPrefix(id, "sha256:") && !slices.Contains(refs, id) {
						refs = append(refs, id)
					}
				}
				results[who] = append(results[who], s)
			}
		}
		for _, who := range []string{"lading", "docker CLI", "lading-cached"} {
			label := who
			if who == "lading-cached" {
				label = "lading, cache hit"
			}
			ss := results[who]
			slices.SortFunc(ss, func(a, b sample) int { return int(a.d - b.d) })
			var peak int64
			for _, s := range ss {
				peak = max(peak, s.rss)
			}
			fmt.Printf("%-28s %-22s %10s %10s %12s\n", name, label, ss[len(ss)/2].d.Round(time.Millisecond), ss[0].d.Round(time.Millisecond), units.BytesSize(float64(peak)))
		}
	}
	return nil
}

// timed runs cmd and returns its wall time and peak RSS.
func timed(cmd *exec.Cmd) (sample, string, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	var rss int64
	if u, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = u.Maxrss * 1024 // kilobytes on Linux
	}
	return sample{d, rss}, out.String(), err
}

func containerfile(dir string) error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return os.WriteFile(filepath.Join(dir, "Containerfile"), fmt.Appendf(nil, "FROM lading-test/busybox:latest\nLABEL bench=%x\n", b), 0o644)
}

func smallFiles(dir string, n int) error {
	data := make([]byte, 1024)
	for i := range n {
		sub := filepath.Join(dir, strconv.Itoa(i%100))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		_, _ = rand.Read(data)
		if err := os.WriteFile(filepath.Join(sub, strconv.Itoa(i)), data, 0o644); err != nil {
			return err
		}
	}
	return containerfile(dir)
}

func largeFile(dir string, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(dir, "big.bin"))
	if err != nil {
		return err
	}
	if _, err := io.CopyN(f, rand.Reader, size); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return containerfile(dir)
}

func removeImages(refs []string) {
	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, ref := range refs {
		_, _ = cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	}
}
