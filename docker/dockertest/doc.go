// Package dockertest gives Go tests a [docker.Runner] on a real engine, the
// way testcontainers-go gives them containers: a test asks for a runner, runs
// its scripts in containers and asserts on the [runner.Result].
//
// # Skipping
//
// [New] checks that an engine answers. When none does, the test is skipped,
// unless the CI environment variable is set (as every CI service sets it),
// when it fails: a green CI run always means the tests ran.
//
// # Sharing
//
// A [docker.Runner] is safe for concurrent use, so one runner serves every
// subtest of a table, parallel ones included: call New in the parent test and
// hand the runner to the subtests. New closes it when the parent test and its
// subtests have finished. For one runner per test binary, create it with
// [docker.New] in TestMain and close it there.
//
// # Logs
//
// [Log] returns a [runner.Task.OnLine] callback that writes each line of
// the script to the test's log, shown with go test -v or when the test fails.
//
// # Example
//
//	func TestGreet(t *testing.T) {
//		r := dockertest.New(t, docker.Config{})
//		for _, name := range []string{"Ada", "Linus"} {
//			t.Run(name, func(t *testing.T) {
//				t.Parallel()
//				res, err := r.Run(t.Context(), runner.Task{
//					Image:    "busybox:1.36",
//					Env:      map[string]string{"NAME": name},
//					Commands: []string{`echo "hello $NAME"`},
//					OnLine:   dockertest.Log(t),
//				})
//				if err != nil {
//					t.Fatal(err)
//				}
//				t.Cleanup(func() { os.RemoveAll(res.WorkingDir) })
//			})
//		}
//	}
package dockertest
