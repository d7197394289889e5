package gotest_test

import (
	"testing"

	"github.com/lading-dev/lading/internal/testenv"
)

// testImage returns the image the script runs in. A project's own tests
// name a registry image (busybox:1.36) and let the runner pull it; this
// repository's CI has no registry, so it builds its offline busybox image
// when the engine lacks it.
func testImage(t *testing.T) string {
	testenv.Engine(t)
	return testenv.Image
}
