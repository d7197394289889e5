package docker_test

import (
	"testing"

	"github.com/lading-dev/lading/build"
	"github.com/lading-dev/lading/build/buildtest"
	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
)

func TestBuildConformance(t *testing.T) {
	cli := testenv.Engine(t)
	r, _ := newRunner(t, docker.Config{})
	buildtest.Run(t, buildtest.Config{
		Builder: r,
		Base:    testenv.Image,
		Name:    "lading-test/build-conformance",
		Remove:  func(t testing.TB, img build.Image) { removeBuiltImage(t, cli, img) },
	})
}
