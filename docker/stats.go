package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/runner"
)

// Stats are followed by polling: every interval (Config.StatsInterval, 1 s
// when only OnStats asks for them) Run asks the engine for one sample
// (GET /containers/{id}/stats?stream=false&one-shot=true, a few
// milliseconds on Docker), rather than reading the engine's stream, whose
// period is the engine's choice (Docker: 1 s; Podman: 5 s). OnStats gets
// every sample, so at most one per interval.
//
// Result.PeakMemory is the larger of the highest usage seen in the samples
// and the cgroup's own high-water mark (memory.max_usage_in_bytes), which
// engines report under cgroup v1 only. Where the engine reports no
// max_usage (cgroup v2, Podman), PeakMemory is the peak of the samples, and
// a peak shorter than the interval can be missed. Result.CPUTime is the
// container's CPU time in the last sample.

// statsWanted reports whether a run follows the container's stats.
func (run *run) statsWanted() bool {
	return run.r.cfg.StatsInterval > 0 || run.task.OnStats != nil
}

// statsInterval is the period of the polls.
func (run *run) statsInterval() time.Duration {
	if d := time.Duration(run.r.cfg.StatsInterval); d > 0 {
		return d
	}
	return time.Second
}

// followStats polls one-shot samples until ctx ends, calling OnStats with
// each, and records peak memory and CPU time in res. A container the
// engine no longer knows ends it without an error; three failed polls in a
// row end it with the last error.
func (run *run) followStats(ctx context.Context, id string, res *runner.Result) error {
	interval := run.statsInterval()
	var prevCPU uint64
	var prevAt time.Time
	next := time.Now()
	failures := 0
	sawPIDs := false // the engine reports processes: a sample of none is a container that has exited
	for {
		s, err := run.statsSample(ctx, id)
		if ctx.Err() != nil || cerrdefs.IsNotFound(err) {
			return nil
		}
		if err != nil {
			// A busy engine may fail a poll; three in a row end the
			// following.
			if failures++; failures == 3 {
				return err
			}
			s = &container.StatsResponse{}
		} else {
			failures = 0
		}
		// The engine answers for a container that has gone with an empty
		// sample, and for one whose processes have all exited with a
		// sample of no processes: skip those.
		pids := s.PidsStats.Current
		gone := s.Read.IsZero() || pids == 0 && (s.MemoryStats.Usage == 0 || sawPIDs)
		sawPIDs = sawPIDs || pids != 0
		if !gone {
			mem := s.MemoryStats
			res.PeakMemory = max(res.PeakMemory, int64(mem.MaxUsage), int64(mem.Usage))
			cpu := s.CPUStats.CPUUsage.TotalUsage
			res.CPUTime = time.Duration(cpu)
			sample := runner.Stats{
				Time:        s.Read,
				MemoryUsage: int64(mem.Usage),
				MemoryLimit: int64(mem.Limit),
				MemoryCache: int64(max(mem.Stats["cache"], mem.Stats["file"])), // cgroup v1, v2
				CPUUsage:    time.Duration(cpu),
				PIDs:        int64(s.PidsStats.Current),
			}
			if !prevAt.IsZero() && s.Read.After(prevAt) && cpu >= prevCPU {
				sample.CPUPercent = float64(cpu-prevCPU) / float64(s.Read.Sub(prevAt)) * 100
			}
			prevCPU, prevAt = cpu, s.Read
			if run.task.OnStats != nil {
				run.task.OnStats(sample)
			}
		}
		// Polls start every interval, however long one takes; a poll
		// slower than the interval is followed at once by the next.
		next = next.Add(interval)
		if wait := time.Until(next); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil
			case <-timer.C:
			}
		} else {
			next = time.Now()
		}
	}
}

// statsSample asks the engine for one sample of the container's stats.
func (run *run) statsSample(ctx context.Context, id string) (*container.StatsResponse, error) {
	resp, err := run.r.cli.ContainerStats(ctx, id, client.ContainerStatsOptions{Stream: false})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return nil, fmt.Errorf("docker: read stats: %w", err)
	}
	return &s, nil
}
