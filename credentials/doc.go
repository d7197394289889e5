// Package credentials decides which registry credentials go with an image
// pull and encodes them for the engine.
//
// # Where credentials come from
//
// [Resolver.Resolve] looks, in this order, and takes the first that has
// credentials for the image's registry:
//
//  1. explicit [Credentials] (Kestra's credentials block), when their
//     registry is the image's or they name none;
//  2. the docker config given to the runner (Kestra's config property:
//     inline JSON or a path);
//  3. DOCKER_AUTH_CONFIG (inline config JSON, as CI systems set it);
//  4. $DOCKER_CONFIG/config.json, or ~/.docker/config.json.
//
// Within a config, as the docker CLI does: credHelpers[registry], then
// credsStore, then auths[registry]. Helpers run through the
// docker-credential-<name> protocol.
//
// A config file is read only when it is a regular file (a symbolic link to
// one is followed) of at most [MaxConfigSize], 1 MiB, the cap
// DOCKER_AUTH_CONFIG and inline configs have too: a named pipe, a device or
// a directory is refused without being read, so that no path blocks the
// host program or feeds it without end.
//
// # Registries
//
// Image references are parsed as the engine parses them
// (github.com/distribution/reference): "busybox", "ubuntu:22.04" and
// "user/repo" are on docker.io; "host:5000/repo" on host:5000. Docker Hub's
// aliases (docker.io, index.docker.io, registry-1.docker.io,
// https://index.docker.io/v1/) are one registry. Credentials go only to the
// exact registry host (and port) they were given for.
//
// # Secrets
//
// No secret is put into an error, a log value or a formatted value:
// [Credentials] and [Auth] print as their registry and user name only, and a
// credential helper's output is never echoed.
//
// # Use
//
// The docker runner ([github.com/lading-dev/lading/docker]) resolves the
// credentials of every pull itself, from its Config's credentials and
// config properties. A host program that pulls on its own asks a
// [Resolver] and hands the engine [Auth.Header]:
//
//	package main
//
//	import (
//		"context"
//		"fmt"
//		"log"
//
//		"github.com/lading-dev/lading/credentials"
//	)
//
//	func main() {
//		cfg, err := credentials.LoadConfig("/etc/ci/docker-config.json") // or inline JSON
//		if err != nil {
//			log.Fatal(err) // a *credentials.ConfigError, no secret in it
//		}
//		r := credentials.Resolver{
//			Explicit: &credentials.Credentials{Registry: "registry.example:5000", Username: "ci", Password: "s3cret"},
//			Config:   cfg,
//		}
//		auth, err := r.Resolve(context.Background(), "registry.example:5000/app:1.2")
//		if err != nil {
//			log.Fatal(err)
//		}
//		fmt.Println(auth) // registry, user name and source: never the secret
//		header, err := auth.Header() // the X-Registry-Auth value of an image pull
//		if err != nil {
//			log.Fatal(err)
//		}
//		_ = header
//	}
//
// A [Resolver] is a plain value, safe for concurrent use and reusable; it
// reads DOCKER_AUTH_CONFIG and the user's docker config at each Resolve, so
// a login made while the host program runs is seen by the next pull.
package credentials
