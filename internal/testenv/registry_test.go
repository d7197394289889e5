package testenv

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/stretchr/testify/require"
)

// recorder is a testing.TB that keeps the cleanups registered on it and
// ends the goroutine that fails it, as a test's FailNow does.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

func (r *recorder) Helper() {}
func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}
func (r *recorder) Errorf(format string, args ...any) { r.fail() }
func (r *recorder) Error(args ...any)                 { r.fail() }
func (r *recorder) Fail()                             { r.fail() }
func (r *recorder) FailNow()                          { r.fail(); runtime.Goexit() }
func (r *recorder) Fatalf(format string, args ...any) { r.FailNow() }
func (r *recorder) Fatal(args ...any)                 { r.FailNow() }
func (r *recorder) fail() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
}

// A push that fails must not leave its 127.0.0.1:<port>/... image in the
// engine: Push registers the removal before it pushes.
func TestFailedPushLeavesNoImage(t *testing.T) {
	cli := Engine(t)
	reg := NewRegistry(t)
	repo, tag := "lading/failed-push", fmt.Sprint(time.Now().UnixNano())
	ref := reg.Host + "/" + repo + ":" + tag
	t.Cleanup(func() { RemoveImage(t, cli, ref) }) // whatever Push does
	reg.FailNext(1 << 20)                          // every manifest request fails, so the push does

	rec := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		reg.Push(rec, cli, repo, tag)
	}()
	<-done
	require.True(t, rec.failed, "the push failed")
	for i := len(rec.cleanups) - 1; i >= 0; i-- {
		rec.cleanups[i]()
	}
	_, err := cli.ImageInspect(context.Background(), ref)
	require.True(t, cerrdefs.IsNotFound(err), "the image of the failed push is gone: %v", err)
}
