package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/internal/mask"
	"github.com/lading-dev/lading/memory"
	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/service"
)

// failedLogLines is how many of its last log lines a FAILED state's Reason
// quotes for a process that exited.
const failedLogLines = 5

// serviceHandle is a [service.Service] on Docker: a container id and what
// its labels say; every method reads the engine.
type serviceHandle struct {
	s      *Services
	info   service.Info
	mask   *mask.Masker         // the service's secret env values; nil without
	health *service.HealthCheck // nil without a health check
}

var (
	_ service.Service = (*serviceHandle)(nil)
	_ service.Execer  = (*serviceHandle)(nil)
)

func (h *serviceHandle) Info() service.Info { return h.info }

func (h *serviceHandle) notFound() error {
	return fmt.Errorf("docker: service %s in namespace %s: %w", h.info.Slug, h.info.Namespace, service.ErrNotFound)
}

// Status reads the container's state and health from the engine; see
// [Services] for how each state maps to a status.
func (h *serviceHandle) Status(ctx context.Context) (service.State, error) {
	in, err := h.s.r.cli.ContainerInspect(ctx, h.info.ID, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return service.State{}, h.notFound()
	}
	if err != nil {
		return service.State{}, engineError(h.s.r, "inspect service "+h.info.Slug, err)
	}
	c := in.Container
	st := service.State{Restarts: c.RestartCount}
	if c.State == nil {
		return service.State{Status: service.Pending, Reason: "the engine reports no state yet"}, nil
	}
	cs := c.State
	if t, err := time.Parse(time.RFC3339Nano, cs.StartedAt); err == nil && t.Year() > 1 {
		st.StartedAt = t
	}
	switch {
	case strings.Contains(c.Name, deletingMark) && cs.Status != container.StateRemoving:
		st.Status, st.Reason = service.Deleting, "being stopped and removed"
		return st, nil
	}
	switch cs.Status {
	case container.StateRemoving:
		st.Status, st.Reason = service.Deleting, "being removed"
	case container.StateCreated:
		st.Status, st.Reason = service.Pending, "created, not started yet"
	case container.StateRestarting:
		st.Status = service.Pending
		st.Exited, st.ExitCode, st.OOMKilled = true, cs.ExitCode, cs.OOMKilled
		st.Reason = fmt.Sprintf("restarting (restart %d) after it %s", c.RestartCount+1, exitWords(cs, c.HostConfig))
	case container.StatePaused:
		st.Status, st.Reason = service.Failed, "paused"
	case container.StateRunning:
		h.runningStatus(ctx, c, &st)
	default: // exited, dead
		st.Status = service.Failed
		st.Exited, st.ExitCode, st.OOMKilled = true, cs.ExitCode, cs.OOMKilled
		st.Reason = exitWords(cs, c.HostConfig)
		if rp := c.HostConfig; rp != nil && rp.RestartPolicy.IsOnFailure() && rp.RestartPolicy.MaximumRetryCount > 0 && c.RestartCount >= rp.RestartPolicy.MaximumRetryCount && cs.ExitCode != 0 {
			st.Reason = fmt.Sprintf("restarts exhausted (%d): the process %s", c.RestartCount, st.Reason)
		} else {
			st.Reason = "the process " + st.Reason
		}
		if cs.Error != "" {
			st.Reason += ": " + cs.Error
		}
		if tail := h.lastLines(ctx, failedLogLines); tail != "" {
			st.Reason += "; last log lines:\n" + tail
		}
	}
	st.Reason = h.mask.String(st.Reason)
	if st.Health != nil {
		st.Health.Output = h.mask.String(st.Health.Output)
	}
	return st, nil
}

// exitWords says how the process ended: "exited with code 3", "was killed
// for memory (limit 64MiB)".
func exitWords(cs *container.State, hc *container.HostConfig) string {
	if cs.OOMKilled {
		limit := ""
		if hc != nil && hc.Memory > 0 {
			limit = " (limit " + memory.Size(hc.Memory).String() + ")"
		}
		return fmt.Sprintf("was killed for memory%s, exit code %d", limit, cs.ExitCode)
	}
	return "exited with code " + strconv.Itoa(cs.ExitCode)
}

// runningStatus sets the status of a running container from its health:
// the engine's for a command check, a probe of the published port made
// now for an HTTP or TCP check.
func (h *serviceHandle) runningStatus(ctx context.Context, c container.InspectResponse, st *service.State) {
	hc := h.health
	switch {
	case hc == nil:
		st.Status = service.Deployed
	case len(hc.Command) > 0:
		eh := c.State.Health
		if eh == nil {
			st.Status, st.Reason = service.Pending, "no health result from the engine yet"
			return
		}
		if n := len(eh.Log); n > 0 {
			last := eh.Log[n-1]
			st.Health = &service.Probe{Healthy: last.ExitCode == 0, Output: strings.TrimSpace(last.Output), Time: last.End}
		}
		switch eh.Status {
		case container.Healthy:
			st.Status = service.Deployed
		case container.Unhealthy:
			st.Status, st.Reason = service.Failed, "health check failing"
			if st.Health != nil {
				st.Reason += ": " + st.Health.Output
			}
		default:
			st.Status, st.Reason = service.Pending, "health check not passed yet"
			if st.Health != nil {
				st.Reason += ": " + st.Health.Output
			}
		}
	default:
		var p service.Probe
		if hc.Log != "" {
			p = h.logProbe(ctx, st.StartedAt)
		} else {
			p = h.probe(ctx, c)
		}
		st.Health = &p
		if p.Healthy {
			st.Status = service.Deployed
			return
		}
		// Failed probes count once the start period is over; the
		// retries are a grace of Retries intervals beyond it.
		grace := hc.StartPeriod + time.Duration(hc.Retries)*hc.Interval
		if !st.StartedAt.IsZero() && time.Since(st.StartedAt) < grace {
			st.Status, st.Reason = service.Pending, "health check not passed yet: "+p.Output
			return
		}
		st.Status, st.Reason = service.Failed, "health check failing: "+p.Output
	}
}

// probe makes one HTTP or TCP probe of the service's published port.
func (h *serviceHandle) probe(ctx context.Context, c container.InspectResponse) service.Probe {
	p := service.Probe{Time: time.Now()}
	addr, err := endpointOf(c, h.info.Port)
	if err != nil {
		p.Output = err.Error()
		return p
	}
	ctx, cancel := context.WithTimeout(ctx, h.health.Timeout)
	defer cancel()
	if hc := h.health.HTTP; hc != nil {
		url := "http://" + addr + hc.Path
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			p.Output = err.Error()
			return p
		}
		tr := &http.Transport{DisableKeepAlives: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			p.Output = "GET " + url + ": " + err.Error()
			return p
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		p.Output = "GET " + url + ": " + resp.Status
		if hc.Status != 0 {
			p.Healthy = resp.StatusCode == hc.Status
			if !p.Healthy {
				p.Output += " (want " + strconv.Itoa(hc.Status) + ")"
			}
		} else {
			p.Healthy = resp.StatusCode >= 200 && resp.StatusCode < 400
		}
		return p
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		p.Output = "connect " + addr + ": " + err.Error()
		return p
	}
	defer conn.Close()
	// The engine's port proxy accepts every connection on the host's side,
	// and closes it when nothing listens in the container: a connection
	// closed at once is refused. One left open, or with data, is accepted.
	_ = conn.SetReadDeadline(time.Now().Add(min(h.health.Timeout, tcpSettle)))
	var b [1]byte
	if _, err := conn.Read(b[:]); err != nil && !isTimeout(err) {
		p.Output = "connect " + addr + ": closed at once (nothing listens on port " + strconv.Itoa(h.info.Port) + " in the container?): " + err.Error()
		return p
	}
	p.Healthy, p.Output = true, "connect "+addr+": accepted"
	return p
}

// tcpSettle is how long a TCP probe waits to see whether the connection it
// made stays open.
const tcpSettle = 200 * time.Millisecond

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// logProbe looks for a line matching the health check's pattern among the
// lines logged since the container last started. It reads them from the
// engine each time, so it costs a read of the logs until a line matches.
func (h *serviceHandle) logProbe(ctx context.Context, since time.Time) service.Probe {
	p := service.Probe{Time: time.Now()}
	re, err := regexp.Compile(h.health.Log)
	if err != nil { // checked by Resolve; a label edited by hand
		p.Output = "bad pattern: " + err.Error()
		return p
	}
	ctx, cancel := context.WithTimeout(ctx, h.health.Timeout)
	defer cancel()
	m := &lineMatcher{re: re, found: cancel}
	err = h.Logs(ctx, service.LogOptions{Since: since, Stdout: m, Stderr: m})
	switch {
	case m.line != "":
		p.Healthy, p.Output = true, "log line "+strconv.Quote(m.line)
	case err != nil:
		p.Output = "read logs: " + err.Error()
	default:
		p.Output = "no log line matched " + strconv.Quote(h.health.Log) + " yet"
	}
	return p
}

// lineMatcher keeps the first line matching re and then calls found.
type lineMatcher struct {
	mu    sync.Mutex
	re    *regexp.Regexp
	line  string
	found func()
}

func (m *lineMatcher) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if line := strings.TrimSuffix(string(p), "\n"); m.line == "" && m.re.MatchString(line) {
		m.line = line
		m.found()
	}
	return len(p), nil
}

// endpointOf returns the host address the container's port is published at.
func endpointOf(c container.InspectResponse, port int) (string, error) {
	if port == 0 {
		return "", service.ErrNoPort
	}
	p, _ := network.PortFrom(uint16(port), network.TCP)
	if c.NetworkSettings != nil {
		for _, b := range c.NetworkSettings.Ports[p] {
			if b.HostPort == "" {
				continue
			}
			ip := "127.0.0.1"
			if b.HostIP.IsValid() && !b.HostIP.IsUnspecified() {
				ip = b.HostIP.String()
			}
			return net.JoinHostPort(ip, b.HostPort), nil
		}
	}
	return "", fmt.Errorf("port %d is not published (the container is not running)", port)
}

// Endpoint returns the host address ("127.0.0.1:<port>") of the service's
// port, read from the engine: the port a free-port deploy got is known
// only while the container runs.
func (h *serviceHandle) Endpoint(ctx context.Context) (string, error) {
	if h.info.Port == 0 {
		return "", fmt.Errorf("docker: service %s: %w", h.info.Slug, service.ErrNoPort)
	}
	in, err := h.s.r.cli.ContainerInspect(ctx, h.info.ID, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return "", h.notFound()
	}
	if err != nil {
		return "", engineError(h.s.r, "inspect service "+h.info.Slug, err)
	}
	addr, err := endpointOf(in.Container, h.info.Port)
	if err != nil {
		return "", fmt.Errorf("docker: service %s: %w", h.info.Slug, err)
	}
	return addr, nil
}

// lastLines returns the last n lines of the service's logs, both streams,
// or "" when they cannot be read.
func (h *serviceHandle) lastLines(ctx context.Context, n int) string {
	var buf bytes.Buffer
	w := &lockedWriter{w: &buf}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := h.Logs(ctx, service.LogOptions{Tail: n, Stdout: w, Stderr: w}); err != nil {
		return ""
	}
	return strings.TrimRight(buf.String(), "\n")
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Logs writes the service's logs line by line, stdout and stderr apart,
// secrets masked. A line is at most what the engine delivers in one frame
// (16 KiB, a longer one arrives in parts, each ended by a newline here).
func (h *serviceHandle) Logs(ctx context.Context, opts service.LogOptions) error {
	lo := client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: opts.Follow}
	if !opts.Since.IsZero() {
		lo.Since = strconv.FormatInt(opts.Since.Unix(), 10) + "." + fmt.Sprintf("%09d", opts.Since.Nanosecond())
	}
	if opts.Tail > 0 {
		lo.Tail = strconv.Itoa(opts.Tail)
	}
	body, err := h.s.r.cli.ContainerLogs(ctx, h.info.ID, lo)
	if cerrdefs.IsNotFound(err) {
		return h.notFound()
	}
	if err != nil {
		return engineError(h.s.r, "logs of service "+h.info.Slug, err)
	}
	defer body.Close()
	stdout := &maskedLines{w: opts.Stdout, m: h.mask}
	stderr := &maskedLines{w: opts.Stderr, m: h.mask}
	_, err = stdcopy.StdCopy(stdout, stderr, body)
	stdout.flush()
	stderr.flush()
	if ctx.Err() != nil {
		return nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("docker: logs of service %s: %w", h.info.Slug, err)
	}
	return errors.Join(stdout.err, stderr.err)
}

// maskedLines cuts what it is given into lines and writes each, masked, in
// one Write. The first write error is kept and the rest discarded.
type maskedLines struct {
	w    io.Writer
	m    *mask.Masker
	part []byte
	err  error
}

func (l *maskedLines) Write(p []byte) (int, error) {
	if l.w == nil {
		return len(p), nil
	}
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			l.part = append(l.part, p...)
			break
		}
		l.part = append(l.part, p[:i]...)
		l.emit()
		p = p[i+1:]
	}
	return n, nil
}

func (l *maskedLines) emit() {
	line := l.m.String(string(l.part)) + "\n"
	l.part = l.part[:0]
	if l.err == nil {
		_, l.err = io.WriteString(l.w, line)
	}
}

func (l *maskedLines) flush() {
	if l.w != nil && len(l.part) > 0 {
		l.emit()
	}
}

// Stats returns one sample, in Zero-OS's fields and units.
func (h *serviceHandle) Stats(ctx context.Context) (service.Stats, error) {
	resp, err := h.s.r.cli.ContainerStats(ctx, h.info.ID, client.ContainerStatsOptions{Stream: false})
	if cerrdefs.IsNotFound(err) {
		return service.Stats{}, h.notFound()
	}
	if err != nil {
		return service.Stats{}, engineError(h.s.r, "stats of service "+h.info.Slug, err)
	}
	defer resp.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return service.Stats{}, fmt.Errorf("docker: stats of service %s: %w", h.info.Slug, err)
	}
	return zeroOSStats(&s), nil
}

// zeroOSStats converts an engine sample: cpu_usage is the total CPU time in
// 10 µs units, memory_cache the page cache (cgroup v1 "cache", v2 "file").
func zeroOSStats(s *container.StatsResponse) service.Stats {
	at := s.Read
	if at.IsZero() {
		at = time.Now()
	}
	cache := s.MemoryStats.Stats["cache"]
	if cache == 0 {
		cache = s.MemoryStats.Stats["file"]
	}
	return service.Stats{
		Timestamp:   at.Unix(),
		MemoryUsage: s.MemoryStats.Usage,
		MemoryLimit: s.MemoryStats.Limit,
		MemoryCache: cache,
		CPUUsage:    s.CPUStats.CPUUsage.TotalUsage / 10_000,
		PidsCurrent: s.PidsStats.Current,
	}
}

// Delete stops the service (SIGTERM, then a kill after
// [ServicesConfig.StopTimeout]), removes its container and anonymous
// volumes, then its namespace's network if no service is left in it. It
// runs on a fresh bounded context, so a cancelled caller still leaves a
// clean engine; a service already gone is success.
func (h *serviceHandle) Delete(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), serviceCallTimeout+h.stopTimeout())
	defer cancel()
	cli := h.s.r.cli
	// The new name is the engine's record that a delete is under way
	// (DELETING, for every handle and every process); it frees the slug.
	if id, err := randomID(); err == nil {
		_, err := cli.ContainerRename(ctx, h.info.ID, client.ContainerRenameOptions{NewName: containerName(h.info.Namespace, h.info.Slug) + deletingMark + id})
		if cerrdefs.IsNotFound(err) {
			return h.s.removeNetworkIfEmpty(ctx, h.info.Namespace)
		}
	}
	timeout := int(h.stopTimeout() / time.Second)
	_, err := cli.ContainerStop(ctx, h.info.ID, client.ContainerStopOptions{Timeout: &timeout})
	if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsNotModified(err) {
		h.s.r.log.Debug("stop service", "service", h.info.Slug, "error", err)
	}
	_, err = cli.ContainerRemove(ctx, h.info.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress") {
		err = nil
	}
	if err != nil && !cerrdefs.IsNotFound(err) {
		return engineError(h.s.r, "remove service "+h.info.Slug, err)
	}
	return h.s.removeNetworkIfEmpty(ctx, h.info.Namespace)
}

// deletingMark is in the name of a service's container once its Delete
// has begun.
const deletingMark = "--deleting-"

func (h *serviceHandle) stopTimeout() time.Duration {
	switch d := h.s.cfg.StopTimeout; {
	case d < 0:
		return 0
	case d == 0:
		return serviceStopTimeout
	default:
		return d
	}
}

// Exec runs cmd in the service's container, as the container's user, and
// returns its exit code and output (masked, capped at
// [service.ExecOutputLimit] per stream). When ctx is done first, Exec
// returns ctx's error; the command may run on in the container.
func (h *serviceHandle) Exec(ctx context.Context, cmd []string) (service.ExecResult, error) {
	var res service.ExecResult
	if len(cmd) == 0 {
		return res, &runner.FieldError{Field: "cmd", Problem: "must not be empty", Err: service.ErrInvalidSpec}
	}
	cli := h.s.r.cli
	created, err := cli.ExecCreate(ctx, h.info.ID, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if cerrdefs.IsNotFound(err) {
		return res, h.notFound()
	}
	if err != nil {
		return res, h.mask.Error(engineError(h.s.r, "exec in service "+h.info.Slug, err))
	}
	att, err := cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return res, h.mask.Error(engineError(h.s.r, "exec in service "+h.info.Slug, err))
	}
	defer att.Close()
	stdout := &cappedBuffer{limit: service.ExecOutputLimit}
	stderr := &cappedBuffer{limit: service.ExecOutputLimit}
	done := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(stdout, stderr, att.Reader)
		done <- err
	}()
	select {
	case err = <-done:
	case <-ctx.Done():
		att.Close()
		<-done
		return res, ctx.Err()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return res, fmt.Errorf("docker: exec in service %s: read output: %w", h.info.Slug, err)
	}
	in, err := cli.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
	if err != nil {
		return res, engineError(h.s.r, "exec in service "+h.info.Slug, err)
	}
	res.ExitCode = in.ExitCode
	res.Stdout, res.Stderr = h.mask.String(stdout.buf.String()), h.mask.String(stderr.buf.String())
	res.Truncated = stdout.cut || stderr.cut
	return res, nil
}

// cappedBuffer keeps the first limit bytes written to it.
type cappedBuffer struct {
	buf   bytes.Buffer
	limit int
	cut   bool
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := c.limit - c.buf.Len(); room < len(p) {
		c.cut = true
		c.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	c.buf.Write(p)
	return len(p), nil
}
