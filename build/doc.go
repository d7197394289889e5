// Package build is the engine-neutral vocabulary of image builds: a [Spec]
// (a context directory, a Containerfile, build args, a target, labels, a
// platform, a pull policy), the build [Context] sent to an engine, the
// [Context.Digest] that names a built image, and the errors. It imports no engine;
// engines implement [Builder] (the docker package's Runner does).
//
// # Using a built image
//
// The host program builds, then passes the image's reference to a task
// (or to a service) as any image:
//
//	img, err := r.Build(ctx, build.Spec{Context: "./app", Args: map[string]string{"PYTHON_VERSION": "3.12"}})
//	if err != nil {
//		return err // a *build.StepError names the failing step
//	}
//	res, err := r.Run(ctx, runner.Task{Image: img.Ref, Commands: []string{"python -m app.check"}})
//
// A [runner.Task] names an image, not a build, so that a task means the same
// on every runner, including those that cannot build; an engine's Run never
// builds behind the caller's back, and one build serves many tasks.
//
// # Cache by content
//
// The image is tagged "<name>:<hex>" with the hex of the build's digest:
// a SHA-256 of every entry the context sends (path, type, permission bits,
// size, link target, content), the Containerfile's path, the args, the
// secret args' names, the target, the platform and the labels. A second
// build of unchanged input finds that tag and makes no build call; one
// changed byte gives another tag. Modification times and owners are not
// part of it (a fresh checkout of the same commit hits the cache), nor are
// secret args' values (see [Spec.SecretArgs]). Force a rebuild with
// [Spec.NoCache], or by removing the tag.
//
// # The context
//
// The context honours .containerignore, else .dockerignore, exactly as
// the docker CLI does, with github.com/moby/patternmatcher (see
// [Context]); it is streamed as a tar, one file at a time, never held in
// memory; symbolic links are sent as links and never followed, so no file
// outside the directory is read.
//
// # Build args are not secret
//
// Build args end up in the image: its history records the args each RUN
// step used, readable by anyone who can pull the image. [Spec.SecretArgs]
// are masked in what lading hands back, and only there.
//
// # Example
//
//	package main
//
//	import (
//		"context"
//		"fmt"
//		"log"
//
//		"github.com/lading-dev/lading/build"
//		"github.com/lading-dev/lading/docker"
//		"github.com/lading-dev/lading/runner"
//	)
//
//	func main() {
//		r, err := docker.New(docker.Config{})
//		if err != nil {
//			log.Fatal(err)
//		}
//		defer r.Close()
//		ctx := context.Background()
//		img, err := r.Build(ctx, build.Spec{
//			Context:    "./app", // holds a Containerfile
//			Args:       map[string]string{"GREETING": "hello"},
//			OnProgress: func(p build.Progress) { fmt.Printf("[%d/%d] %s\n", p.Step, p.Steps, p.Line) },
//		})
//		if err != nil {
//			log.Fatal(err)
//		}
//		fmt.Println(img.Ref, "cached:", img.Cached)
//		res, err := r.Run(ctx, runner.Task{Image: img.Ref, Commands: []string{"cat /greeting"}})
//		if err != nil {
//			log.Fatal(err)
//		}
//		fmt.Println("exit", res.ExitCode)
//	}
package build
