package docker

import (
	"errors"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/mount"

	"github.com/lading-dev/lading/runner"
)

// checkFieldError fails unless err is a FieldError naming field and value.
func checkFieldError(t *testing.T, err error, field, value string) {
	t.Helper()
	var fe *runner.FieldError
	if !errors.As(err, &fe) || !errors.Is(err, runner.ErrInvalidConfig) || fe.Field != field || fe.Value != value {
		t.Fatalf("error %v: want a FieldError for %s %q", err, field, value)
	}
}

// FuzzParseVolume: a volume comes from a taskRunner block (once the host
// program allows volumes). Whatever it is, parseVolume does not panic, and
// what it accepts is a bind mount of an absolute host path on an absolute
// container path (one over the run's working directory, at the host's
// path, is refused per run: TestVolumes).
func FuzzParseVolume(f *testing.F) {
	for _, s := range []string{"/a:/b", "/a:/b:ro", "/a:/b:rw", "/a:/b:x", "a:/b", "/a:b", "/a", "/a:/b:ro:x", "",
		"/a:/w/x", "/a:/w/../x", "/a:/w/", "/a:/w//x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseVolume(s)
		if err != nil {
			checkFieldError(t, err, "volumes", s)
			return
		}
		if m.Type != mount.TypeBind || !filepath.IsAbs(m.Source) || !path.IsAbs(m.Target) {
			t.Fatalf("%q: accepted as %+v", s, m)
		}
		if m.ReadOnly != strings.HasSuffix(s, ":ro") {
			t.Fatalf("%q: read-only %v", s, m.ReadOnly)
		}
	})
}

// FuzzPortBindings: a port binding comes from a taskRunner block (once the
// host program allows them). Whatever it is, portBindings does not panic;
// what it accepts exposes every port it binds, each a valid port of tcp,
// udp or sctp, on a host port that is a number, a range the engine picks
// one from, or empty (any).
func FuzzPortBindings(f *testing.F) {
	for _, s := range []string{"8080:80", "127.0.0.1:8080:80/tcp", "18081:81/udp", "[::1]:80:80", "80", "a:b:c", "1-3:1-3", "1-3:5",
		"0.0.0.0::80", "8080:80/bogus", "70000:80", ":80", "127.0.0.1:8080:80/sctp", "1-65535:1-65535", "0", "0:80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 64 {
			return // a range may name 65535 ports: bounded so that each input stays fast
		}
		ports, exposed, err := portBindings([]string{s})
		if err != nil {
			checkFieldError(t, err, "portBindings", s)
			return
		}
		if len(ports) == 0 {
			t.Fatalf("%q: accepted, binds nothing", s)
		}
		for p, bindings := range ports {
			if _, ok := exposed[p]; !ok {
				t.Fatalf("%q: binds %s without exposing it", s, p)
			}
			if p.Num() == 0 {
				t.Fatalf("%q: binds port 0", s)
			}
			switch p.Proto() {
			case "tcp", "udp", "sctp":
			default:
				t.Fatalf("%q: protocol %q", s, p.Proto())
			}
			for _, b := range bindings {
				if b.HostPort == "" {
					continue
				}
				// A number, or a range the engine picks one from.
				lo, hi, isRange := strings.Cut(b.HostPort, "-")
				if !isRange {
					hi = lo
				}
				l, errLo := strconv.ParseUint(lo, 10, 16)
				h, errHi := strconv.ParseUint(hi, 10, 16)
				if errLo != nil || errHi != nil || l > h {
					t.Fatalf("%q: host port %q", s, b.HostPort)
				}
			}
		}
	})
}
