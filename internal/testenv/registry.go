package testenv

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/moby/moby/client"
	"github.com/stretchr/testify/require"
)

// Registry is a real OCI registry (go-containerregistry's) served on
// 127.0.0.1 over plain HTTP behind basic auth, which the Docker Engine pulls
// from as an insecure registry. It counts manifest fetches and can inject
// failures and stalls.
type Registry struct {
	// Host is "127.0.0.1:<port>", the registry part of image references.
	Host     string
	Username string
	Password string

	manifestGets atomic.Int64
	failNext     atomic.Int64 // answer this many requests with 503
	stall        atomic.Bool  // hold blob downloads until the test ends
	stallOnce    sync.Once
	released     chan struct{}
}

// NewRegistry starts a registry for the test, stopped at its end.
func NewRegistry(t testing.TB) *Registry {
	t.Helper()
	reg := &Registry{Username: "lading", Password: "s3cret-" + fmt.Sprint(time.Now().UnixNano()), released: make(chan struct{})}
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		user, pass, ok := req.BasicAuth()
		if !ok || user != reg.Username || pass != reg.Password {
			w.Header().Set("WWW-Authenticate", `Basic realm="lading-test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		if strings.Contains(req.URL.Path, "/manifests/") && reg.failNext.Load() > 0 && reg.failNext.Add(-1) >= 0 {
			http.Error(w, "injected failure", http.StatusServiceUnavailable)
			return
		}
		if _, ref, ok := strings.Cut(req.URL.Path, "/manifests/"); ok && !strings.HasPrefix(ref, "sha256:") &&
			(req.Method == http.MethodGet || req.Method == http.MethodHead) {
			reg.manifestGets.Add(1)
		}
		if reg.stall.Load() && req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
			select {
			case <-reg.released:
			case <-req.Context().Done():
			}
			return
		}
		inner.ServeHTTP(w, req)
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv.Listener = l
	srv.Start()
	t.Cleanup(func() {
		reg.stallOnce.Do(func() { close(reg.released) })
		srv.Close()
	})
	reg.Host = l.Addr().String()
	return reg
}

// ManifestGets returns how many times the registry resolved a tag to a
// manifest (a GET or HEAD by tag) with valid credentials since the last Push: once per pull.
func (r *Registry) ManifestGets() int64 { return r.manifestGets.Load() }

// FailNext makes the next n manifest requests (with valid credentials) fail
// with 503 Service Unavailable.
func (r *Registry) FailNext(n int64) { r.failNext.Store(n) }

// Stall makes blob downloads hang until the test ends.
func (r *Registry) Stall() { r.stall.Store(true) }

// Auth returns the X-Registry-Auth value for the registry's credentials.
func (r *Registry) Auth() string {
	b, _ := json.Marshal(map[string]string{"username": r.Username, "password": r.Password, "serveraddress": r.Host})
	return base64.URLEncoding.EncodeToString(b)
}

// Push builds a test image with a layer of its own as <host>/<repo>:<tag>,
// pushes it, and removes it from the engine, so the engine has to pull it,
// layer and all. It returns the reference. The image is removed again when
// the test ends, also when the push failed.
func (r *Registry) Push(t testing.TB, cli *client.Client, repo, tag string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ref := r.Host + "/" + repo + ":" + tag
	// Registered before the image exists, so that a failed import or push
	// does not leave a 127.0.0.1:<port>/... image behind.
	t.Cleanup(func() { RemoveImage(t, cli, ref) })
	// A layer of its own, 4 MiB: after the removal below the engine has to
	// download it, so pulls show progress and can stall.
	require.NoError(t, ImportUniqueImage(ctx, cli, ref, 4<<20))
	resp, err := cli.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: r.Auth()})
	require.NoError(t, err)
	require.NoError(t, resp.Wait(ctx), "push %s", ref)
	r.manifestGets.Store(0) // count pulls only
	RemoveImage(t, cli, ref)
	return ref
}

// RemoveImage removes a local image reference if it exists.
func RemoveImage(t testing.TB, cli *client.Client, ref string) {
	t.Helper()
	_, _ = cli.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true})
}
