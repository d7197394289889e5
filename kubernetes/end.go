package kubernetes

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lading-dev/lading/internal/core"
)

// The end of a task's output. containerd's CRI (1.6, the CI node's) drops
// what is left in a container's stdout pipe when the container exits
// ("Failed to pipe stdout of container ...: file already closed"): a flood
// that exits at once loses its tail, in the log file itself. So the task's
// command runs under a small wrapper in the same shell: it runs the
// command as a child (TERM and INT passed on to it, its exit code kept),
// prints an end marker on stdout and on stderr, and waits, at most
// releaseBound, until lading, having read both markers, releases it (an
// exec of "kill -USR1 1"). The container lives until its log is read to
// its end; the markers never reach the task's sinks.
//
// Reasons the wrapper is as it is:
//   - the marker is "lading-end-<nonce>-o\n" on stdout ("-e" on stderr),
//     a random nonce per run, with no newline before it: a last line with
//     no newline comes back as it did without the wrapper (the marker ends
//     that line in the log, and is cut out of it);
//   - after a TERM (a stop, a deletion) it prints the markers and exits at
//     once, as the grace period wants;
//   - an interrupted wait is waited again: the child's own exit code (a
//     trap's, or 143) is the container's; a child killed by SIGKILL is 137;
//     an OOM kill is still the kernel's in the container's cgroup, which the
//     runtime reports as OOMKilled;
//   - with no sleep in the image the release wait ends at once (the
//     markers are printed all the same).
const endWrapper = `m=$1; shift; t=; s=
trap 't=1; s=1; [ -n "$c" ] && kill -TERM "$c" 2>/dev/null' TERM
trap 't=1; s=1; [ -n "$c" ] && kill -INT "$c" 2>/dev/null' INT
"$@" & c=$!
[ -n "$t" ] && kill -TERM "$c" 2>/dev/null
wait "$c"; e=$?
while [ -n "$s" ]; do s=; wait "$c"; r=$?; [ "$r" -eq 127 ] || e=$r; done
trap : USR1
printf '%s-o\n' "$m"; printf '%s-e\n' "$m" >&2
if [ -z "$t" ]; then sleep ` + releaseBoundSeconds + ` & w=$!; wait "$w"; kill "$w" 2>/dev/null; fi
exit "$e"`

// releaseBoundSeconds bounds the wrapper's wait for its release: a pod
// whose runner died, or cannot exec, ends after it.
const releaseBoundSeconds = "30"

// endShells are the interpreters the wrapper runs in: POSIX shells with
// trap, wait, kill and printf built in.
var endShells = map[string]bool{"sh": true, "bash": true, "dash": true, "ash": true, "ksh": true, "mksh": true, "zsh": true}

// endMarker is the end of one run's output.
type endMarker struct {
	shell  string // runs the wrapper and the release
	marker string // "lading-end-<nonce>"
}

// newEndMarker returns the end marker of a run of command (interpreter and
// script), nil when its interpreter is not a shell.
func newEndMarker(command []string) *endMarker {
	if len(command) < 2 || !endShells[path.Base(command[0])] {
		return nil
	}
	var nonce [16]byte
	_, _ = rand.Read(nonce[:]) // never fails (crypto/rand)
	return &endMarker{shell: command[0], marker: "lading-end-" + hex.EncodeToString(nonce[:])}
}

// wrap returns the container's command: command under the wrapper.
func (e *endMarker) wrap(command []string) []string {
	return append([]string{e.shell, "-c", endWrapper, "lading", e.marker}, command...)
}

// endMarkerOf reads the end marker of a pod's task container command, nil
// when it runs without the wrapper.
func endMarkerOf(command []string) *endMarker {
	if len(command) < 5 || command[1] != "-c" || command[2] != literal(endWrapper) {
		return nil
	}
	return &endMarker{shell: command[0], marker: command[4]}
}

func (e *endMarker) stdout() []byte { return []byte(e.marker + "-o\n") }
func (e *endMarker) stderr() []byte { return []byte(e.marker + "-e\n") }

// ending is what a run's followers learn of the end of its output.
type ending struct {
	run      *run
	end      *endMarker // nil: the command runs without the wrapper
	left     atomic.Int32
	release  sync.Once
	released chan struct{} // closed once the release has been tried
}

func newEnding(run *run, end *endMarker, followers int) *ending {
	e := &ending{run: run, end: end, released: make(chan struct{})}
	e.left.Store(int32(followers))
	if end == nil {
		close(e.released)
	}
	return e
}

// seen is called by each follower once it has read its markers: when all
// have, the wrapper is released.
func (e *ending) seen() {
	if e.left.Add(-1) != 0 {
		return
	}
	e.release.Do(func() {
		go func() {
			defer close(e.released)
			if e.run.stopping.Load() {
				return // the pod is being deleted: the wrapper does not wait
			}
			ctx, cancel := context.WithTimeout(context.Background(), core.EngineTimeout)
			defer cancel()
			start := time.Now()
			err := e.run.exec(ctx, containerTask, []string{e.end.shell, "-c", "kill -USR1 1"}, nil, nil)
			if err != nil && !e.run.stopping.Load() {
				e.run.log().Warn("could not release the task's container: it ends "+releaseBoundSeconds+"s after its output", "error", err)
				return
			}
			e.run.log().Debug("released the task's container", "took", time.Since(start))
		}()
	})
}

// complete reports whether every follower read its markers.
func (e *ending) complete() bool { return e.end != nil && e.left.Load() <= 0 }

// warnings is the result's warning when the output may lack its end: the
// wrapper ran and its markers did not come. A run without the wrapper (an
// interpreter that is not a shell) cannot tell, and says nothing: the
// package doc says so, rather than a warning on every such run.
func (e *ending) warnings() []string {
	if e.end == nil || e.complete() || e.run.stopping.Load() {
		return nil
	}
	return []string{"the end of the output may be missing: the container's log ended without the wrapper's end marker (the container was killed, or the node's runtime did not write the last of its output)"}
}

// markerFilter cuts a follower's end markers out of its log, holding back
// a tail that may be the start of one.
type markerFilter struct {
	want [][]byte // the markers not seen yet
	hold []byte
}

// pass returns what of p, after what was held, goes on to the sink, and
// whether the last marker was just seen.
func (m *markerFilter) pass(p []byte) ([]byte, bool) {
	if len(m.want) == 0 {
		return p, false
	}
	m.hold = append(m.hold, p...)
	last := false
	for i := 0; i < len(m.want); {
		if at := bytes.Index(m.hold, m.want[i]); at >= 0 {
			m.hold = append(m.hold[:at], m.hold[at+len(m.want[i]):]...)
			m.want = append(m.want[:i], m.want[i+1:]...)
			last = len(m.want) == 0
			continue
		}
		i++
	}
	keep := 0
	for _, w := range m.want {
		for k := min(len(w)-1, len(m.hold)); k > keep; k-- {
			if bytes.HasSuffix(m.hold, w[:k]) {
				keep = k
				break
			}
		}
	}
	out := bytes.Clone(m.hold[:len(m.hold)-keep])
	m.hold = append(m.hold[:0], m.hold[len(m.hold)-keep:]...)
	return out, last
}

// flush returns what is held back, at the end of the log.
func (m *markerFilter) flush() []byte {
	out := m.hold
	m.hold = nil
	return out
}
