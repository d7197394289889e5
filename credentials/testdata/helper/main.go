// Command helper is a real docker-credential-<name> program for the tests:
// it answers "get" from the JSON fixture named by LADING_HELPER_FIXTURE
// (server URL -> reply) and appends what it read on stdin to
// LADING_HELPER_LOG. A reply of "fail" makes it print the secret to stderr
// and exit 1, to check that callers never echo a helper's output.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
)

func main() {
	if len(os.Args) != 2 || os.Args[1] != "get" {
		fmt.Fprintln(os.Stderr, "usage: get")
		os.Exit(2)
	}
	in, _ := io.ReadAll(os.Stdin)
	if log := os.Getenv("LADING_HELPER_LOG"); log != "" {
		f, err := os.OpenFile(log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintln(f, string(in))
			f.Close()
		}
	}
	data, err := os.ReadFile(os.Getenv("LADING_HELPER_FIXTURE"))
	if err != nil {
		os.Exit(3)
	}
	var fixture map[string]json.RawMessage
	if err := json.Unmarshal(data, &fixture); err != nil {
		os.Exit(4)
	}
	reply, ok := fixture[string(in)]
	switch {
	case !ok:
		fmt.Println("credentials not found in native keychain")
		os.Exit(1)
	case string(reply) == `"fail"`:
		fmt.Fprintln(os.Stderr, "cannot unlock: password hunter2-helper-secret rejected")
		fmt.Println("hunter2-helper-secret")
		os.Exit(1)
	}
	os.Stdout.Write(reply)
}
