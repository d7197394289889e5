package testenv

import (
	"bufio"
	"os"
	"os/exec"
	"testing"
)

// CrashMidRun is a host program that crashes mid-run: it runs the test
// binary again with only the test helper (a test that does its work when
// the variables of env are set, and skips otherwise), reads its stdout
// until a line is until, then kills it with SIGKILL and reaps it. What the
// helper's run created is left behind, as a crash leaves it.
func CrashMidRun(t testing.TB, helper string, env []string, until string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+helper+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	scan := bufio.NewScanner(out)
	seen := false
	for !seen && scan.Scan() {
		seen = scan.Text() == until
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if !seen {
		t.Fatalf("%s ended before it printed %q", helper, until)
	}
}
