package credentials_test

import (
	"context"
	"fmt"

	"github.com/lading-dev/lading/credentials"
)

// Which credentials go with which pull: the explicit ones for their own
// registry, DOCKER_AUTH_CONFIG's for another, none for Docker Hub. Only
// registry, user name and source are ever printed.
func ExampleResolver() {
	env := map[string]string{
		"DOCKER_AUTH_CONFIG": `{"auths":{"ghcr.io":{"auth":"Ym90OnRvay0zZjlhMWM3ZQ=="}}}`, // bot:tok-3f9a1c7e
		"HOME":               "/nonexistent",
	}
	r := credentials.Resolver{
		Explicit: &credentials.Credentials{Registry: "registry.example:5000", Username: "ci", Password: "s3cret-pw"},
		Getenv:   func(k string) string { return env[k] },
	}
	for _, image := range []string{"registry.example:5000/app:1.2", "ghcr.io/org/tool", "busybox:1.36"} {
		auth, err := r.Resolve(context.Background(), image)
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(image, "->", auth)
	}
	// Output:
	// registry.example:5000/app:1.2 -> auth{registry: "registry.example:5000", username: "ci", from: credentials, secrets: redacted}
	// ghcr.io/org/tool -> auth{registry: "ghcr.io", username: "bot", from: DOCKER_AUTH_CONFIG, secrets: redacted}
	// busybox:1.36 -> auth{registry: "docker.io", none}
}
