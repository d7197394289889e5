// Command bench measures lading side by side with what users would pick
// instead, on the same engine and image, and prints ratios:
//
//   - raw: the minimal Engine API sequence with github.com/moby/moby/client;
//   - cli: the docker command line (docker run, docker cp);
//   - tc:  testcontainers-go (reaper disabled: its image cannot be pulled
//     offline), for the container cases and the service case (deploy to
//     ready: GenericContainer with wait.ForHTTP against lading's Deploy and
//     service.Wait with an HTTP health check).
//
// lading-bare is lading without an output directory (DisableOutputDir), to
// show what the output directory costs; lading-volume and lading-mount are
// the two file handling strategies. The pool-* cases measure the warm pool
// (docker.WithPool, its containers warmed before the first sample):
// lading-pool beside lading (cold) and raw; pool-check reports the taint
// check run between two tasks in one container, from the pool's counters.
//
// The k8s-trivial and k8s-parallel cases run the same `true` as a pod with
// the kubernetes runner, against raw client-go and `kubectl run --rm -i`, on
// the cluster of -kubeconfig (else KUBECONFIG, else the one
// .ci/kubernetes/up.sh starts); they run by default only when that
// kubeconfig exists (see kubernetes.go).
//
// Each case and peer runs in a child process of its own, so the peak RSS
// reported is that peer's alone. A case runs in rounds: each round runs
// every peer once, in a rotated order, and the samples of all rounds are
// pooled, so a drift in the engine's speed during the case hits every peer
// alike. The latency cases make one unrecorded warm-up run per child.
//
//	cd bench && go run . -image lading-test/busybox:latest
//	cd bench && go run . -size 1GiB -n 3 -cases files-out,files-in   # the 1 GiB figures
//	cd bench && go run . -n 40 -rounds 4 -cases pool-trivial,pool-parallel,pool-files,pool-check
//	cd bench && go run . -cases k8s-trivial,k8s-parallel              # on a Kubernetes cluster
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/docker/go-units"
)

// config is what every measurement gets.
type config struct {
	Image    string
	N        int
	Parallel int
	Size     int64 // bytes of files or stdout
	Dir      string
	// Kubeconfig is the cluster of the k8s- cases; empty means KUBECONFIG,
	// else defaultKubeconfig.
	Kubeconfig string
}

// measurement is what a child reports.
type measurement struct {
	Samples []float64 // seconds per repetition
	Bytes   int64     // bytes moved per repetition, for MB/s
	Tasks   int       // tasks per repetition, for tasks/s
	Err     string
	RSS     int64 // peak RSS of the child, filled in by the parent
}

// peer measures one case.
type peer func(cfg config) (measurement, error)

var cases = []struct {
	name, what string
	peers      map[string]peer
}{
	{"trivial", "`true`, one at a time: latency", map[string]peer{"lading": ladingTrivial, "lading-bare": ladingBareTrivial, "raw": rawTrivial, "cli": cliTrivial, "tc": tcTrivial}},
	{"parallel", "`true`, 8 at a time: tasks/s", map[string]peer{"lading": ladingParallel, "lading-bare": ladingBareParallel, "raw": rawParallel, "cli": cliParallel, "tc": tcParallel}},
	{"files-out", "output files collected to the host (1,000 files and 1 file)", map[string]peer{"lading": ladingFilesOut, "raw": rawFilesOut, "cli": cliFilesOut}},
	{"files-in", "input files staged in", map[string]peer{"lading-volume": ladingFilesInVolume, "lading-mount": ladingFilesInMount, "raw": rawFilesIn, "cli": cliFilesIn}},
	{"stdout", "stdout lines to a line callback", map[string]peer{"lading": ladingStdout, "raw": rawStdout, "cli": cliStdout}},
	{"stdout-masked", "the same with secret masking on", map[string]peer{"lading": ladingStdoutMasked, "raw": rawStdout}},
	{"pool-trivial", "`true`, one at a time, in a warm pool of 2: latency", map[string]peer{"lading-pool": poolTrivial, "lading": ladingTrivial, "raw": rawTrivial}},
	{"pool-parallel", "`true`, 8 at a time, in a warm pool of 8: tasks/s", map[string]peer{"lading-pool": poolParallel, "lading": ladingParallel, "raw": rawParallel}},
	{"pool-files", "1 MiB input file in, 1 MiB output file out, one at a time: latency", map[string]peer{"lading-pool": poolFiles, "lading": coldFiles, "raw": rawFiles}},
	{"pool-check", "the taint check after each task (check), and `true` in a pool of 1, which waits for it", map[string]peer{"check": poolCheck, "lading-pool-1": poolSize1, "lading-pool": poolTrivial}},
	{"k8s-trivial", "`true` as a Kubernetes pod, one at a time: latency", map[string]peer{"lading": k8sLadingTrivial, "lading-bare": k8sLadingBareTrivial, "raw": k8sRawTrivial, "kubectl": k8sKubectlTrivial}},
	{"k8s-parallel", "`true` as a Kubernetes pod, 8 at a time: tasks/s", map[string]peer{"lading": k8sLadingParallel, "lading-bare": k8sLadingBareParallel, "raw": k8sRawParallel, "kubectl": k8sKubectlParallel}},
	{"service", "deploy to ready: an HTTP health check passing (busybox httpd)", map[string]peer{"lading": ladingService, "lading-ns": ladingServiceNS, "tc": tcService, "tc-net": tcServiceNet}},
}

func main() {
	var cfg config
	var sizeFlag, only, child string
	var rounds int
	flag.StringVar(&cfg.Image, "image", "lading-test/busybox:latest", "image the engine has (busybox applets needed)")
	flag.IntVar(&cfg.N, "n", 20, "repetitions per case and peer, over all rounds (file, stdout and parallel cases use n/5, at least 3)")
	flag.IntVar(&rounds, "rounds", 3, "rounds per case: each runs every peer once, in a rotated order")
	flag.IntVar(&cfg.Parallel, "parallel", 8, "concurrency of the parallel case")
	flag.StringVar(&sizeFlag, "size", "64MiB", "bytes of files and of stdout per repetition, e.g. 1GiB")
	flag.StringVar(&only, "cases", "", "comma-separated cases to run (default all)")
	flag.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig of the k8s- cases' cluster (default: KUBECONFIG, else "+defaultKubeconfig+")")
	flag.StringVar(&child, "child", "", "internal: measure case/peer and print JSON")
	flag.Parse()
	size, err := units.RAMInBytes(strings.TrimSuffix(strings.TrimSuffix(sizeFlag, "iB"), "B"))
	if err != nil {
		fail(fmt.Errorf("-size %q: %w", sizeFlag, err))
	}
	cfg.Size = size
	if child != "" {
		runChild(cfg, child)
		return
	}
	dir, err := os.MkdirTemp("", "lading-bench-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(dir)
	cfg.Dir = dir
	fmt.Printf("lading bench: image %s, n %d in %d rounds, size %s, %s\n\n", cfg.Image, cfg.N, rounds, units.BytesSize(float64(cfg.Size)), machine())
	for _, c := range cases {
		if only != "" && !strings.Contains(","+only+",", ","+c.name+",") {
			continue
		}
		if only == "" && strings.HasPrefix(c.name, "k8s-") {
			if _, err := os.Stat(kubeconfigPath(cfg)); err != nil {
				fmt.Printf("## %s: skipped, no cluster (%v)\n\n", c.name, err)
				continue
			}
		}
		results := map[string]measurement{}
		names := make([]string, 0, len(c.peers))
		for name := range c.peers {
			names = append(names, name)
		}
		sort.Strings(names)
		rounds := max(1, min(rounds, cfg.N))
		per := cfg
		per.N = max(1, cfg.N/rounds)
		for round := range rounds {
			for i := range names {
				name := names[(i+round)%len(names)]
				m := runParent(per, c.name, name)
				r := results[name]
				if r.Err == "" {
					r.Err = m.Err
				}
				r.Samples = append(r.Samples, m.Samples...)
				r.Bytes, r.Tasks, r.RSS = m.Bytes, m.Tasks, max(r.RSS, m.RSS)
				results[name] = r
			}
		}
		report(c.name, c.what, names, results)
	}
}

// runParent measures case/peer in a child process and adds its peak RSS.
func runParent(cfg config, name, peer string) measurement {
	args := []string{"-child", name + "/" + peer, "-image", cfg.Image, "-n", fmt.Sprint(cfg.N), "-parallel", fmt.Sprint(cfg.Parallel), "-size", fmt.Sprint(cfg.Size), "-kubeconfig", cfg.Kubeconfig}
	cmd := exec.Command(os.Args[0], args...)
	// testcontainers-go: its reaper's image cannot be pulled offline; and
	// where this program runs in a container (/.dockerenv), it would look
	// for published ports at that container's default gateway, not where
	// the engine publishes them, on the host's loopback.
	cmd.Env = append(os.Environ(), "TESTCONTAINERS_RYUK_DISABLED=true", "TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1", "LADING_BENCH_DIR="+cfg.Dir)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr // testcontainers logs every step
	err := cmd.Run()
	if err != nil {
		os.Stderr.Write(stderr.Bytes())
	}
	var m measurement
	if jerr := json.Unmarshal(out.Bytes(), &m); jerr != nil {
		m.Err = fmt.Sprintf("child: %v %v: %s", err, jerr, strings.TrimSpace(out.String()))
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		m.RSS = ru.Maxrss << 10
	}
	return m
}

func runChild(cfg config, spec string) {
	cfg.Dir = os.Getenv("LADING_BENCH_DIR")
	name, peerName, _ := strings.Cut(spec, "/")
	for _, c := range cases {
		if c.name == name {
			m, err := c.peers[peerName](cfg)
			if err != nil {
				m.Err = err.Error()
			}
			_ = json.NewEncoder(os.Stdout).Encode(m)
			return
		}
	}
	fail(fmt.Errorf("no case %q", spec))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// reps is the repetitions of the heavy cases in one child.
func (c config) reps() int { return max(1, c.N/5) }

// warm runs f once, unrecorded: the first run of a process pays for
// connections and caches that a long-running program pays once.
func warm(f func() error) error { return f() }

// timeIt runs f reps times and records each duration.
func timeIt(reps int, f func() error) ([]float64, error) {
	var out []float64
	for range reps {
		start := time.Now()
		if err := f(); err != nil {
			return out, err
		}
		out = append(out, time.Since(start).Seconds())
	}
	return out, nil
}

func percentile(s []float64, p float64) float64 {
	if len(s) == 0 {
		return 0
	}
	c := append([]float64(nil), s...)
	sort.Float64s(c)
	return c[min(len(c)-1, int(p*float64(len(c))))]
}

func report(name, what string, peers []string, res map[string]measurement) {
	fmt.Printf("## %s: %s\n", name, what)
	fmt.Printf("%-14s %10s %10s %10s %12s %10s  %s\n", "peer", "p50", "p95", "spread", "rate", "peak RSS", "vs lading")
	base := res["lading"]
	if _, ok := res["lading-volume"]; ok {
		base = res["lading-volume"]
	}
	if _, ok := res["lading-pool"]; ok {
		base = res["lading-pool"]
	}
	for _, p := range peers {
		m := res[p]
		if m.Err != "" {
			fmt.Printf("%-14s error: %s\n", p, m.Err)
			continue
		}
		p50, p95 := percentile(m.Samples, 0.5), percentile(m.Samples, 0.95)
		spread := percentile(m.Samples, 1) - percentile(m.Samples, 0)
		rate := ""
		switch {
		case m.Bytes > 0:
			rate = fmt.Sprintf("%.0f MB/s", float64(m.Bytes)/p50/1e6)
		case m.Tasks > 0:
			rate = fmt.Sprintf("%.1f tasks/s", float64(m.Tasks)/p50)
		}
		ratio := ""
		if b50 := percentile(base.Samples, 0.5); b50 > 0 && base.Err == "" {
			ratio = fmt.Sprintf("lading takes %.2fx its time", b50/p50)
		}
		fmt.Printf("%-14s %9.1fms %9.1fms %9.1fms %12s %8.1fMiB  %s\n", p, p50*1e3, p95*1e3, spread*1e3, rate, float64(m.RSS)/(1<<20), ratio)
	}
	fmt.Println()
}

func machine() string {
	out, _ := exec.Command("docker", "version", "--format", "engine {{.Server.Version}} (API {{.Server.APIVersion}})").Output()
	cpus, _ := os.ReadFile("/proc/cpuinfo")
	n := strings.Count(string(cpus), "processor\t:")
	return fmt.Sprintf("%s, %d CPUs", strings.TrimSpace(string(out)), n)
}
