//go:build !linux

package testenv

import (
	"testing"

	"github.com/moby/moby/client"
)

// SecondEngine is a Docker Engine a test starts for itself; see the Linux
// version. Elsewhere there is none: [StartSecondEngine] skips the test, or
// fails it when CI is set.
type SecondEngine struct {
	Host   string         // the engine's socket
	Client *client.Client // a client for it
	PID    int            // its dockerd
}

// StartSecondEngine needs Linux (unshare, dockerd).
func StartSecondEngine(t testing.TB) *SecondEngine {
	t.Helper()
	unavailable(t, "a second engine needs Linux")
	return nil
}

// Freeze is not available outside Linux.
func (e *SecondEngine) Freeze(t testing.TB) {}

// Thaw is not available outside Linux.
func (e *SecondEngine) Thaw(t testing.TB) {}

// Kill is not available outside Linux.
func (e *SecondEngine) Kill(t testing.TB) {}
