package docker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/runner"
)

// statsWanted reports whether a run follows the container's stats.
func (run *run) statsWanted() bool {
	return run.r.cfg.StatsInterval > 0 || run.task.OnStats != nil
}

// followStats reads the engine's stats stream (a sample about every second)
// until ctx ends or the container stops, calling OnStats at most once per
// interval, and records peak memory and CPU time in res. It returns when the
// stream ends.
func (run *run) followStats(ctx context.Context, id string, res *runner.Result) error {
	interval := time.Duration(run.r.cfg.StatsInterval)
	if interval <= 0 {
		interval = time.Second
	}
	resp, err := run.r.cli.ContainerStats(ctx, id, client.ContainerStatsOptions{Stream: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	var last time.Time
	var prevCPU uint64
	var prevAt time.Time
	for {
		var s container.StatsResponse
		if err := dec.Decode(&s); err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		if s.Read.IsZero() || s.PidsStats.Current == 0 && s.MemoryStats.Usage == 0 {
			continue // the sample the engine sends once the container is gone
		}
		mem := s.MemoryStats
		peak := max(int64(mem.MaxUsage), int64(mem.Usage))
		res.PeakMemory = max(res.PeakMemory, peak)
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
		if run.task.OnStats != nil && s.Read.Sub(last) >= interval-50*time.Millisecond {
			last = s.Read
			run.task.OnStats(sample)
		}
	}
}
