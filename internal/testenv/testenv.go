// Package testenv gives lading's integration tests a real container engine
// and the offline test image.
//
// Tests that need an engine call [Engine]: when no engine answers, the test
// is skipped locally but fails when the CI environment variable is set, so a
// green CI always means the integration tests ran.
package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// Image is the offline test image: a static busybox with its applets, a
// non-root user "lading" (uid 1000) and "nobody" (65534). [BuildImage] makes
// it from the host's /bin/busybox (Debian's busybox-static).
const Image = "lading-test/busybox:latest"

// BusyboxPath is where the static busybox binary is read from.
const BusyboxPath = "/bin/busybox"

// Engine returns a client for the engine the tests use (DOCKER_HOST or the
// default socket) after checking it answers, and makes sure [Image] exists.
// It skips the test when no engine answers, unless CI is set, when it fails.
func Engine(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		unavailable(t, fmt.Sprintf("docker client: %v", err))
	}
	t.Cleanup(func() { _ = cli.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		unavailable(t, fmt.Sprintf("no container engine at %s: %v", cli.DaemonHost(), err))
	}
	if err := EnsureImage(ctx, cli); err != nil {
		t.Fatalf("test image: %v", err)
	}
	return cli
}

func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set, so integration tests must run: %s", why)
	}
	t.Skipf("skipping integration test: %s (set DOCKER_HOST or start dockerd)", why)
}

// EnsureImage builds [Image] unless the engine already has it.
func EnsureImage(ctx context.Context, cli *client.Client) error {
	if _, err := cli.ImageInspect(ctx, Image); err == nil {
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return err
	}
	return BuildImage(ctx, cli)
}

// BuildImage imports a root filesystem made of the host's static busybox as
// [Image], replacing any image of that name.
func BuildImage(ctx context.Context, cli *client.Client) error {
	return ImportImage(ctx, cli, Image)
}

// ImportImage imports the test root filesystem as name, with Dockerfile-style
// changes (for example `ENTRYPOINT ["/bin/echo"]`) applied after the default
// PATH and CMD.
func ImportImage(ctx context.Context, cli *client.Client, name string, changes ...string) error {
	return importRootfs(ctx, cli, name, nil, changes...)
}

// ImportUniqueImage imports the test root filesystem plus a file of size
// random bytes as name: its layer is shared with no other image, so once
// the image is removed the engine must download the layer again.
func ImportUniqueImage(ctx context.Context, cli *client.Client, name string, size int) error {
	extra := make([]byte, size)
	_, _ = rand.Read(extra)
	return importRootfs(ctx, cli, name, extra)
}

func importRootfs(ctx context.Context, cli *client.Client, name string, extra []byte, changes ...string) error {
	rootfs, err := Rootfs(extra)
	if err != nil {
		return err
	}
	changes = append([]string{`ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, `CMD ["/bin/sh"]`}, changes...)
	res, err := cli.ImageImport(ctx, client.ImageImportSource{Source: bytes.NewReader(rootfs), SourceName: "-"}, name,
		client.ImageImportOptions{Message: "lading test image: static busybox", Changes: changes})
	if err != nil {
		return fmt.Errorf("import %s: %w", name, err)
	}
	defer res.Close()
	if _, err := io.Copy(io.Discard, res); err != nil {
		return fmt.Errorf("import %s: %w", name, err)
	}
	return nil
}

// Rootfs returns the test image's root filesystem as an uncompressed tar,
// with /unique holding extra when it is not nil.
func Rootfs(extra []byte) ([]byte, error) {
	bin, err := os.ReadFile(BusyboxPath)
	if err != nil {
		return nil, fmt.Errorf("read %s (install Debian's busybox-static): %w", BusyboxPath, err)
	}
	list, err := exec.Command(BusyboxPath, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", BusyboxPath, err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: now})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: now}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "home", "home/lading", "proc", "sys", "dev", "var"} {
		if err := dir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := dir("tmp", 0o1777); err != nil {
		return nil, err
	}
	if err := file("bin/busybox", 0o755, bin); err != nil {
		return nil, err
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet == "bin/busybox" {
			continue
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: applet, Linkname: "/bin/busybox", Mode: 0o777, ModTime: now}); err != nil {
			return nil, err
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nlading:x:1000:1000:lading:/home/lading:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":  "root:x:0:\nlading:x:1000:\nnogroup:x:65534:\n",
	}
	if extra != nil {
		if err := file("unique", 0o644, extra); err != nil {
			return nil, err
		}
	}
	for _, name := range []string{"etc/passwd", "etc/group"} {
		if err := file(name, 0o644, []byte(files[name])); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
