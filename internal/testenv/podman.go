package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// EngineName is the product that serves the Docker API the tests use:
// "Podman" when its version reply has a "Podman Engine" component, "Docker"
// otherwise. It calls [Engine], so it skips or fails the test as [Engine]
// does when no engine answers.
func EngineName(t testing.TB) string {
	t.Helper()
	cli := Engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		t.Fatalf("engine version: %v", err)
	}
	return productName(v)
}

func productName(v client.ServerVersionResult) string {
	for _, c := range v.Components {
		if strings.HasPrefix(c.Name, "Podman") {
			return "Podman"
		}
	}
	return "Docker"
}

// IsPodman reports whether the engine the tests use is Podman.
func IsPodman(t testing.TB) bool {
	t.Helper()
	return EngineName(t) == "Podman"
}

// SkipOnPodman skips the test when, and only when, the engine is Podman,
// with reason saying what Podman lacks. On every other engine it does
// nothing, so the test still runs on Docker.
func SkipOnPodman(t testing.TB, reason string) {
	t.Helper()
	if IsPodman(t) {
		t.Skipf("skipped on Podman: %s", reason)
	}
}
