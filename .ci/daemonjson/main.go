// Command daemonjson merges a runtime into dockerd's daemon.json, keeping
// everything else the file holds, and says whether it changed the file.
//
//	go run ./.ci/daemonjson -file /etc/docker/daemon.json -name runsc -path /usr/bin/runsc -arg --platform=ptrace
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"strings"
)

func main() {
	file := flag.String("file", "/etc/docker/daemon.json", "daemon.json to merge into")
	name := flag.String("name", "runsc", "runtime name")
	path := flag.String("path", "/usr/bin/runsc", "runtime binary")
	args := flag.String("arg", "", "runtime arguments, comma-separated")
	flag.Parse()

	cfg := map[string]any{}
	old, err := os.ReadFile(*file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		log.Fatal(err)
	case len(bytes.TrimSpace(old)) > 0:
		if err := json.Unmarshal(old, &cfg); err != nil {
			log.Fatalf("%s: %v", *file, err)
		}
	}
	rts, _ := cfg["runtimes"].(map[string]any)
	if rts == nil {
		rts = map[string]any{}
	}
	rt := map[string]any{"path": *path}
	if *args != "" {
		rt["runtimeArgs"] = strings.Split(*args, ",")
	}
	rts[*name] = rt
	cfg["runtimes"] = rts
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		log.Fatal(err)
	}
	data = append(data, '\n')
	if bytes.Equal(data, old) {
		fmt.Println("unchanged")
		return
	}
	if err := os.MkdirAll("/etc/docker", 0o755); err != nil && *file == "/etc/docker/daemon.json" {
		log.Fatal(err)
	}
	tmp := *file + ".lading.tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		log.Fatal(err)
	}
	if err := os.Rename(tmp, *file); err != nil {
		log.Fatal(err)
	}
	fmt.Println("changed")
}
