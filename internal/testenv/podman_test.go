package testenv

import (
	"testing"

	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"
)

func TestProductName(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    client.ServerVersionResult
		want string
	}{
		{"podman", client.ServerVersionResult{Components: []system.ComponentVersion{{Name: "Podman Engine", Version: "4.3.1"}, {Name: "Conmon"}}}, "Podman"},
		{"docker", client.ServerVersionResult{Components: []system.ComponentVersion{{Name: "Engine", Version: "20.10.24"}, {Name: "containerd"}}}, "Docker"},
		{"no components", client.ServerVersionResult{}, "Docker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := productName(tc.v); got != tc.want {
				t.Errorf("productName = %q, want %q", got, tc.want)
			}
		})
	}
}
