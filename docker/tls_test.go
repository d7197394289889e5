package docker_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
)

// The remote engine of these tests is the tests' own engine behind a
// TLS-terminating proxy on 127.0.0.1 that requires a client certificate
// signed by the test's CA, as dockerd --tlsverify does: lading's TLS client
// (handshake, CA, client certificate) is tested for real without a second
// engine.

// pki is a CA and the certificates the tests sign with it, as PEM files.
type pki struct {
	dir    string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	p := &pki{dir: t.TempDir(), caCert: cert, caKey: key}
	writePEM(t, filepath.Join(p.dir, "ca.pem"), "CERTIFICATE", der)
	return p
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}

// sign writes name-cert.pem and name-key.pem, a certificate for a server
// (127.0.0.1) or a client, valid from notBefore to notAfter.
func (p *pki) sign(t *testing.T, name string, server bool, notBefore, notAfter time.Time) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	require.NoError(t, err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(p.dir, name+"-cert.pem"), filepath.Join(p.dir, name+"-key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
	return certFile, keyFile
}

// engineSocket is the unix socket of the tests' engine.
func engineSocket(t *testing.T) string {
	t.Helper()
	host := testenv.Engine(t).DaemonHost()
	path, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		t.Skipf("the TLS proxy forwards to a unix socket; the engine is at %s", host)
	}
	return path
}

// tlsProxy serves TLS on 127.0.0.1 with serverCert, requires a client
// certificate signed by clientCA, and forwards each connection to the
// engine's socket. It returns the tcp:// host.
func tlsProxy(t *testing.T, socket, serverCert, serverKey string, clientCA *x509.Certificate) string {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(serverCert, serverKey)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(clientCA)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	})
	require.NoError(t, err)
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { forward(c.(*tls.Conn), socket) })
		}
	})
	return "tcp://" + ln.Addr().String()
}

func forward(c *tls.Conn, socket string) {
	defer c.Close()
	if err := c.HandshakeContext(context.Background()); err != nil {
		// Plain HTTP gets the answer net/http's TLS server (dockerd's) gives.
		if rhe := (tls.RecordHeaderError{}); errors.As(err, &rhe) && rhe.Conn != nil {
			_, _ = io.WriteString(rhe.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
			_ = rhe.Conn.Close()
		}
		return
	}
	e, err := net.Dial("unix", socket)
	if err != nil {
		return
	}
	defer e.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(e, c); _ = e.(*net.UnixConn).CloseWrite(); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, e); _ = c.CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
}

type tlsSetup struct {
	host                 string
	ca, cert, key        string
	other                *pki
	expiredCert, expKey  string
	otherCert, otherKey  string
	serverCA             *pki
	expiredServerProxied string
}

func newTLSSetup(t *testing.T) *tlsSetup {
	t.Helper()
	socket := engineSocket(t)
	ca := newPKI(t, "lading test CA")
	now := time.Now()
	srvCert, srvKey := ca.sign(t, "server", true, now.Add(-time.Hour), now.Add(time.Hour))
	s := &tlsSetup{host: tlsProxy(t, socket, srvCert, srvKey, ca.caCert), ca: filepath.Join(ca.dir, "ca.pem"), serverCA: ca}
	s.cert, s.key = ca.sign(t, "client", false, now.Add(-time.Hour), now.Add(time.Hour))
	s.expiredCert, s.expKey = ca.sign(t, "expired-client", false, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	s.other = newPKI(t, "another CA")
	s.otherCert, s.otherKey = s.other.sign(t, "stranger", false, now.Add(-time.Hour), now.Add(time.Hour))
	oldCert, oldKey := ca.sign(t, "expired-server", true, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	s.expiredServerProxied = tlsProxy(t, socket, oldCert, oldKey, ca.caCert)
	return s
}

func runOverTLS(t *testing.T, cfg docker.Config) (*runner.Result, error) {
	t.Helper()
	r, err := docker.New(cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = r.Close() })
	var out bytes.Buffer
	res, err := r.Run(t.Context(), runner.Task{Image: testenv.Image, Stdout: &out, Commands: []string{"echo over-tls"}})
	if res != nil && res.WorkingDir != "" {
		t.Cleanup(func() { _ = os.RemoveAll(res.WorkingDir) })
	}
	if err == nil {
		assert.Equal(t, "over-tls\n", out.String())
	} else {
		t.Log(err)
	}
	return res, err
}

func TestRemoteEngineOverTLS(t *testing.T) {
	s := newTLSSetup(t)
	t.Run("a good client certificate works", func(t *testing.T) {
		res, err := runOverTLS(t, docker.Config{Host: s.host, TLS: &docker.TLS{CA: s.ca, Cert: s.cert, Key: s.key}})
		require.NoError(t, err)
		assert.Equal(t, 0, res.ExitCode)
	})
	t.Run("the same from a taskRunner block", func(t *testing.T) {
		block := `{"host":"` + s.host + `","tls":{"ca":"` + s.ca + `","cert":"` + s.cert + `","key":"` + s.key + `"}}`
		cfg, err := docker.ParseConfigAllowing([]byte(block), docker.Allow{Host: true})
		require.NoError(t, err)
		_, err = runOverTLS(t, cfg)
		require.NoError(t, err)
	})
	t.Run("DOCKER_TLS_VERIFY and DOCKER_CERT_PATH", func(t *testing.T) {
		dir := t.TempDir()
		for name, from := range map[string]string{"ca.pem": s.ca, "cert.pem": s.cert, "key.pem": s.key} {
			data, err := os.ReadFile(from)
			require.NoError(t, err)
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), data, 0o600))
		}
		t.Setenv("DOCKER_HOST", s.host)
		t.Setenv("DOCKER_TLS_VERIFY", "1")
		t.Setenv("DOCKER_CERT_PATH", dir)
		_, err := runOverTLS(t, docker.Config{})
		require.NoError(t, err)
	})
	t.Run("no client certificate", func(t *testing.T) {
		_, err := runOverTLS(t, docker.Config{Host: s.host, TLS: &docker.TLS{CA: s.ca}})
		require.ErrorIs(t, err, runner.ErrEngineUnreachable)
		assert.Contains(t, err.Error(), "refused lading's client certificate")
		assert.Contains(t, err.Error(), "set tls.cert and tls.key")
	})
	t.Run("a client certificate of another CA", func(t *testing.T) {
		_, err := runOverTLS(t, docker.Config{Host: s.host, TLS: &docker.TLS{CA: s.ca, Cert: s.otherCert, Key: s.otherKey}})
		require.ErrorIs(t, err, runner.ErrEngineUnreachable)
		assert.Contains(t, err.Error(), "refused lading's client certificate")
	})
	t.Run("a wrong CA", func(t *testing.T) {
		_, err := runOverTLS(t, docker.Config{Host: s.host, TLS: &docker.TLS{CA: filepath.Join(s.other.dir, "ca.pem"), Cert: s.cert, Key: s.key}})
		require.ErrorIs(t, err, runner.ErrEngineUnreachable)
		assert.Contains(t, err.Error(), "not signed by the CA lading trusts: set tls.ca")
	})
	t.Run("an expired client certificate", func(t *testing.T) {
		_, err := runOverTLS(t, docker.Config{Host: s.host, TLS: &docker.TLS{CA: s.ca, Cert: s.expiredCert, Key: s.expKey}})
		var fe *runner.FieldError
		require.ErrorAs(t, err, &fe, "refused before contacting the engine")
		assert.Equal(t, "tls.cert", fe.Field)
		assert.Equal(t, s.expiredCert, fe.Value)
		assert.Contains(t, fe.Problem, "expired on")
		assert.Contains(t, fe.Problem, "renew")
	})
	t.Run("an expired engine certificate", func(t *testing.T) {
		_, err := runOverTLS(t, docker.Config{Host: s.expiredServerProxied, TLS: &docker.TLS{CA: s.ca, Cert: s.cert, Key: s.key}})
		require.ErrorIs(t, err, runner.ErrEngineUnreachable)
		assert.Contains(t, err.Error(), "the engine's certificate has expired")
	})
	t.Run("plain HTTP to a TLS port", func(t *testing.T) {
		_, err := runOverTLS(t, docker.Config{Host: s.host})
		require.ErrorIs(t, err, runner.ErrEngineUnreachable)
		assert.Contains(t, err.Error(), "the engine serves TLS: set tls")
	})
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not a certificate"), 0o600))
	for _, tc := range []struct {
		name  string
		cfg   docker.Config
		field string
		want  string
	}{
		{"a unix host", docker.Config{Host: "unix:///var/run/docker.sock", TLS: &docker.TLS{}}, "tls", "tcp://"},
		{"cert without key", docker.Config{Host: "tcp://127.0.0.1:2376", TLS: &docker.TLS{Cert: "/c.pem"}}, "tls.cert", "tls.key"},
		{"a missing CA", docker.Config{Host: "tcp://127.0.0.1:2376", TLS: &docker.TLS{CA: filepath.Join(dir, "nope.pem")}}, "tls.ca", "no such file"},
		{"a CA file without a certificate", docker.Config{Host: "tcp://127.0.0.1:2376", TLS: &docker.TLS{CA: garbage}}, "tls.ca", "no PEM certificate"},
		{"a key pair that is not one", docker.Config{Host: "tcp://127.0.0.1:2376", TLS: &docker.TLS{Cert: garbage, Key: garbage}}, "tls.cert", "tls.key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := docker.New(tc.cfg)
			var fe *runner.FieldError
			require.ErrorAs(t, err, &fe)
			assert.ErrorIs(t, err, runner.ErrInvalidConfig)
			assert.Equal(t, tc.field, fe.Field)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestMountAgainstRemoteEngine: an engine that does not see the host's files
// (a remote one) is told apart before the script starts, and the error says
// so. The test runs itself again in a private mount namespace where the
// working directory is a tmpfs the engine cannot see, talking to the engine
// over TLS.
func TestMountAgainstRemoteEngine(t *testing.T) {
	if dir := os.Getenv("LADING_TEST_UNSEEN_DIR"); dir != "" {
		s := newTLSSetup(t)
		r, err := docker.New(docker.Config{Host: s.host, TLS: &docker.TLS{CA: s.ca, Cert: s.cert, Key: s.key}, FileHandlingStrategy: docker.FileHandlingMount})
		require.NoError(t, err)
		t.Cleanup(func() { _ = r.Close() })
		var started bool
		_, err = r.Run(t.Context(), runner.Task{Image: testenv.Image, WorkingDir: dir, Commands: []string{"echo started"},
			OnEvent: func(e runner.Event) { started = started || e.Stage == runner.StageRunning }})
		var fe *runner.FieldError
		require.ErrorAs(t, err, &fe)
		assert.Equal(t, "fileHandlingStrategy", fe.Field)
		assert.Contains(t, fe.Problem, "remote")
		assert.Contains(t, fe.Problem, "use VOLUME")
		assert.False(t, started, "the script never started")
		return
	}
	testenv.Engine(t)
	unshare, err := exec.LookPath("unshare")
	if err != nil || os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set: this test needs root and unshare(1) (util-linux)")
		}
		t.Skip("needs root and unshare(1) for a private mount namespace")
	}
	dir := t.TempDir() // on the host: empty; in the child: a tmpfs over it
	cmd := exec.CommandContext(t.Context(), unshare, "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs lading-unseen "$LADING_TEST_UNSEEN_DIR" && exec "$0" -test.run '^TestMountAgainstRemoteEngine$' -test.count=1 -test.v`, os.Args[0])
	cmd.Env = append(os.Environ(), "LADING_TEST_UNSEEN_DIR="+dir)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)
	assert.Contains(t, string(out), "--- PASS: TestMountAgainstRemoteEngine")
}
