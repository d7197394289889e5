// Package runnertest is a conformance suite for [runner.Runner]
// implementations. It is seeded with the cases of Kestra's own task-runner
// tests and adds the ones lading promises on top: every runner calls it from
// its own tests, and must pass it.
//
// The package imports no container engine: only [runner], the standard
// library and testify.
//
// # Usage
//
// Call [Run] from a test of the runner's package:
//
//	func TestConformance(t *testing.T) {
//		runnertest.Run(t, runnertest.Config{
//			Image: "busybox:1.36",
//			New: func(t *testing.T) runner.Runner {
//				r, err := docker.New(docker.Config{})
//				if err != nil {
//					t.Fatal(err)
//				}
//				t.Cleanup(func() { r.Close() })
//				return r
//			},
//		})
//	}
//
// The image must provide a busybox-like /bin/sh and its usual applets (echo,
// printf, seq, cat, head, tr, sleep, cp, mkdir, ln, base64). Each case of
// [Cases] runs as a parallel subtest named after it, with a runner of its
// own from [Config.New] (the concurrency case shares one runner between
// several goroutines), under [testing.T.Context].
//
// # Skipping cases
//
// A runner that cannot do something by design names the case in
// [Config.Skip] with the reason, which the skipped subtest reports:
//
//	Skip: map[string]string{"SymlinksNeverFollowed": "the object store has no symbolic links"},
//
// Naming a case that does not exist fails the suite, so a renamed case is
// not skipped silently.
//
// # What the cases check
//
// Exit codes and [*runner.ExitError]; line splitting and counting (many
// lines, long lines, "\r" and "\r\n", a last line without a newline); the
// bytes passed to the Stdout and Stderr writers; Kestra's ::{...}:: outputs,
// metrics and log entries, and the Kind and Level of each line (what Kestra
// logs, at which level, level markers); environment variables and masked
// secrets; the interpreter and the joining of commands; Kestra's set -e for
// shells and before commands; task validation; timeouts and cancellation;
// concurrent use of one runner; input and output files and the working and
// output directories; and templates (values of every
// character class unescaped, secret(), numbers as written, undefined
// functions refused before start, renders bounded by Timeout and size,
// input files that are templates, and rendering turned off).
//
// Every run also checks the delivery contract of [runner.Task]: calls to
// Stdout, Stderr and OnLine never overlap, and none comes after Run has
// returned.
package runnertest
