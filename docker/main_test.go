package docker_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/lading-dev/lading/docker"
)

// TestMain fails the package when its tests leave behind any container or
// volume that lading created in this process.
func TestMain(m *testing.M) {
	code := m.Run()
	// TestServiceSurvivesProgramRestart's child leaves an ephemeral service
	// on purpose, for its parent to prune.
	if code == 0 && os.Getenv("LADING_TEST_SERVICE_CHILD_NS") == "" {
		if leaks := leftovers(); leaks != "" {
			fmt.Fprintln(os.Stderr, "FAIL: lading resources left on the engine:", leaks)
			code = 1
		}
	}
	os.Exit(code)
}

func leftovers() string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return ""
	}
	defer cli.Close()
	if _, err := cli.Ping(ctx, client.PingOptions{}); err != nil {
		return "" // no engine: the integration tests skipped (or failed under CI)
	}
	mine := make(client.Filters).Add("label", docker.LabelManaged+"=true", docker.LabelOwnerPID+"="+strconv.Itoa(os.Getpid()))
	var leaks string
	containers, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: mine})
	if err != nil {
		return "list containers: " + err.Error()
	}
	for _, c := range containers.Items {
		leaks += " container " + c.ID[:12]
	}
	volumes, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: mine})
	if err != nil {
		return "list volumes: " + err.Error()
	}
	for _, v := range volumes.Items {
		leaks += " volume " + v.Name
	}
	return leaks
}
