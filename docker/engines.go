package docker

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/runner"
)

// TLS is the TLS of a tcp:// engine, as the docker CLI's --tlscacert,
// --tlscert, --tlskey and --tlsverify give it. Paths are the host's PEM
// files, read by [New].
type TLS struct {
	// CA is the CA certificate that signs the engine's certificate (the
	// CLI's ca.pem). Empty means the host's system roots.
	CA string `json:"ca,omitempty"`
	// Cert and Key are the client's certificate and private key (cert.pem,
	// key.pem), which an engine run with --tlsverify requires. Both or
	// neither.
	Cert string `json:"cert,omitempty"`
	Key  string `json:"key,omitempty"`
	// Verify checks the engine's certificate against CA and the host name.
	// Nil means true; false skips the check (DOCKER_TLS_VERIFY unset): the
	// connection is encrypted but anyone on the path can pose as the engine.
	Verify *bool `json:"verify,omitempty"`
}

func (t *TLS) verifies() bool { return t.Verify == nil || *t.Verify }

// validate checks the shape of t for host; the files are read by New.
func (t *TLS) validate(host string) error {
	if t == nil {
		return nil
	}
	if host != "" && !strings.HasPrefix(host, "tcp://") && !strings.HasPrefix(host, "https://") {
		return invalidConfig("tls", host, "applies to a tcp:// host only")
	}
	if (t.Cert == "") != (t.Key == "") {
		return invalidConfig("tls.cert", t.Cert, "and tls.key go together: set both (the client's certificate and its key) or neither")
	}
	return nil
}

// clientOptions are the Engine API client's options for cfg: DOCKER_HOST,
// DOCKER_API_VERSION and (unless cfg.TLS is set) DOCKER_CERT_PATH with
// DOCKER_TLS_VERIFY, as client.FromEnv reads them, then cfg.Host and
// cfg.TLS. With neither cfg.Host, cfg.TLS nor DOCKER_HOST set, the docker
// CLI's current context (DOCKER_CONTEXT, else currentContext in its config
// file) selects the engine, as it does for the CLI.
func clientOptions(cfg Config) ([]client.Opt, error) {
	opts := []client.Opt{client.WithAPIVersionNegotiation()}
	if cfg.Host == "" && cfg.TLS == nil {
		c, ok, err := currentContext(os.Getenv)
		if err != nil {
			return nil, err
		}
		if ok {
			ctxOpts, err := contextOptions(c)
			return append(opts, ctxOpts...), err
		}
	}
	if cfg.TLS != nil {
		host := cmp.Or(cfg.Host, os.Getenv(client.EnvOverrideHost))
		if !strings.HasPrefix(host, "tcp://") && !strings.HasPrefix(host, "https://") {
			return nil, invalidConfig("tls", host, "applies to a tcp:// host only: set Config.Host (or DOCKER_HOST) to the engine's tcp://host:port")
		}
		tc, err := cfg.TLS.config()
		if err != nil {
			return nil, err
		}
		// The transport comes first: the host options below configure it.
		opts = append(opts, client.WithHTTPClient(&http.Client{Transport: &http.Transport{TLSClientConfig: tc}}))
	} else {
		opts = append(opts, client.WithTLSClientConfigFromEnv())
	}
	opts = append(opts, client.WithHostFromEnv(), client.WithAPIVersionFromEnv())
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	return opts, nil
}

// config reads t's files into a tls.Config, refusing an unreadable file, a
// file that holds no certificate, and a client certificate that has expired
// or is not valid yet (the engine would refuse it with a bare "bad
// certificate").
func (t *TLS) config() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: !t.verifies()} //nolint:gosec // the user's explicit choice, documented
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, &runner.FieldError{Field: "tls.ca", Value: t.CA, Problem: "cannot be read: " + pathProblem(err), Err: runner.ErrInvalidConfig}
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, invalidConfig("tls.ca", t.CA, "holds no PEM certificate")
		}
	}
	if t.Cert != "" {
		pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, &runner.FieldError{Field: "tls.cert", Value: t.Cert, Problem: "with tls.key " + t.Key + ": " + pathProblem(err), Err: runner.ErrInvalidConfig}
		}
		now := time.Now()
		switch leaf := pair.Leaf; {
		case leaf != nil && now.After(leaf.NotAfter):
			return nil, invalidConfig("tls.cert", t.Cert, "expired on "+leaf.NotAfter.UTC().Format(time.RFC3339)+": renew the client certificate")
		case leaf != nil && now.Before(leaf.NotBefore):
			return nil, invalidConfig("tls.cert", t.Cert, "is not valid before "+leaf.NotBefore.UTC().Format(time.RFC3339)+": check the host's clock or the certificate")
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// pathProblem is err without its path, which the FieldError already names.
func pathProblem(err error) string {
	if pe := (*os.PathError)(nil); errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// tlsHint says what to fix when err is a failed TLS handshake with the
// engine, or "" when it is not one.
func tlsHint(err error) string {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	var host x509.HostnameError
	var op *net.OpError // a TLS alert from the peer: Op "remote error"
	var rec tls.RecordHeaderError
	switch {
	case errors.As(err, &unknown):
		return "the engine's certificate is not signed by the CA lading trusts: set tls.ca (or DOCKER_CERT_PATH's ca.pem) to the CA that signed it"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "the engine's certificate has expired or is not valid yet: renew it on the engine, or check the host's clock"
	case errors.As(err, &invalid):
		return "the engine's certificate is not valid for a server: " + invalid.Error()
	case errors.As(err, &host):
		return "the engine's certificate does not name " + host.Host + ": use the host name it was issued for in Config.Host or DOCKER_HOST"
	case errors.As(err, &op) && op.Op == "remote error":
		return "the engine refused lading's client certificate (" + op.Err.Error() + "): set tls.cert and tls.key (or DOCKER_CERT_PATH's cert.pem and key.pem) to a certificate signed by the CA the engine trusts (its --tlscacert)"
	case errors.As(err, &rec):
		return "the engine does not speak TLS on this port: remove tls (and DOCKER_TLS_VERIFY, DOCKER_CERT_PATH), or point the host at the engine's TLS port"
	case strings.Contains(strings.ToLower(err.Error()), "client sent an http request to an https server"):
		return "the engine serves TLS: set tls (or DOCKER_TLS_VERIFY=1 and DOCKER_CERT_PATH)"
	}
	return ""
}

// runtimes is a Runner's cache of the engine's OCI runtimes, filled on the
// first Run that sets [Container.Runtime] and filled again after a failure.
type runtimes struct {
	mu    sync.Mutex
	names []string // sorted; nil until known
}

// checkRuntime fails with a FieldError naming the engine's runtimes when
// [Container.Runtime] is not one of them.
func (r *Runner) checkRuntime(ctx context.Context) error {
	want := r.cfg.Runtime
	if want == "" {
		return nil
	}
	r.runtimes.mu.Lock()
	defer r.runtimes.mu.Unlock()
	if r.runtimes.names == nil {
		info, err := r.cli.Info(ctx, client.InfoOptions{})
		if err != nil {
			return engineError(r, "list the engine's runtimes", err)
		}
		names := make([]string, 0, len(info.Info.Runtimes))
		for name := range info.Info.Runtimes {
			names = append(names, name)
		}
		slices.Sort(names)
		r.runtimes.names = names
	}
	if !slices.Contains(r.runtimes.names, want) {
		return invalidConfig("runtime", want, fmt.Sprintf("is not a runtime of the engine at %s, which has %s (register it in the engine's configuration, e.g. daemon.json's runtimes)",
			r.cli.DaemonHost(), strings.Join(r.runtimes.names, ", ")))
	}
	return nil
}
