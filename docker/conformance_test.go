package docker_test

import (
	"testing"

	"github.com/lading-dev/lading/docker"
	"github.com/lading-dev/lading/internal/testenv"
	"github.com/lading-dev/lading/runner"
	"github.com/lading-dev/lading/runner/runnertest"
)

func TestConformance(t *testing.T) {
	testenv.Engine(t)
	for _, strategy := range []docker.FileHandlingStrategy{docker.FileHandlingVolume, docker.FileHandlingMount} {
		t.Run(string(strategy), func(t *testing.T) {
			runnertest.Run(t, runnertest.Config{
				Image: testenv.Image,
				New: func(t *testing.T) runner.Runner {
					r, _ := newRunner(t, docker.Config{FileHandlingStrategy: strategy})
					return r
				},
			})
		})
	}
}
