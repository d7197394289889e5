package files_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/lading-dev/lading/files"
)

// A script staged with a mode runs as ./build.sh; a host file keeps its own.
func ExampleWithMode() {
	dir, err := os.MkdirTemp("", "work-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	err = files.Stage(context.Background(), dir, map[string]files.Source{
		"build.sh": files.WithMode(files.String("#!/bin/sh\nmake\n"), 0o755),
		"key.pem":  files.WithMode(files.String("secret"), 0o600),
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, name := range []string{"build.sh", "key.pem"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(name, fi.Mode())
	}
	// Output:
	// build.sh -rwxr-xr-x
	// key.pem -rw-------
}

// After a container has written into a bind-mounted directory, Sanitize
// leaves nothing in it that another local user could use.
func ExampleSanitize() {
	dir, err := os.MkdirTemp("", "work-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	shared := filepath.Join(dir, "shared.txt")
	if err := os.WriteFile(shared, []byte("x"), 0o600); err != nil {
		log.Fatal(err)
	}
	if err := os.Chmod(shared, 0o666); err != nil {
		log.Fatal(err)
	}
	st, err := files.Sanitize(context.Background(), dir, files.SanitizeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fi, err := os.Stat(shared)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.Restricted, fi.Mode())
	// Output:
	// 1 -rw-r--r--
}
