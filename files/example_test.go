package files_test

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/lading-dev/lading/files"
)

// Inputs are staged into a working directory, sent to a container as a tar
// rooted at "work/", and the files the task asked for are taken back.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "work-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	err = files.Stage(ctx, dir, map[string]files.Source{
		"hello.txt":            files.String("Hello World\n"),
		"test/application.yml": files.String("app: 1\n"),
	})
	if err != nil {
		log.Fatal(err)
	}

	// What CopyToContainer takes; CopyFromContainer("/work") gives back the
	// same shape, here simulated with the same bytes.
	var archive bytes.Buffer
	if err := files.WriteTar(ctx, &archive, dir, files.TarOptions{Prefix: "work/", UID: 1000, GID: 1000}); err != nil {
		log.Fatal(err)
	}

	m, err := files.NewMatcher([]string{"*.txt"})
	if err != nil {
		log.Fatal(err)
	}
	out, err := os.MkdirTemp("", "out-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(out)
	stats, err := files.Extract(ctx, &archive, out, files.ExtractOptions{StripPrefix: "work/", Filter: m.Match})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(stats.Files, stats.Bytes)

	collected, err := files.Collect(out, m)
	if err != nil {
		log.Fatal(err)
	}
	data, err := os.ReadFile(collected["hello.txt"])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(string(data))
	// Output:
	// [hello.txt] 12
	// Hello World
}

// Kestra's output globs: "*.txt" is the top level only, "out/**" recurses.
func ExampleNewMatcher() {
	m, err := files.NewMatcher([]string{"*.txt", "out/**", "{a,b}.csv"})
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range []string{"a.txt", "sub/a.txt", "out/bla.yml", "out/x/y.yml", "b.csv", "c.csv"} {
		fmt.Println(p, m.Match(p))
	}
	_, err = files.NewMatcher([]string{"../secrets/*"})
	fmt.Println(err)
	// Output:
	// a.txt true
	// sub/a.txt false
	// out/bla.yml true
	// out/x/y.yml true
	// b.csv true
	// c.csv false
	// invalid task: outputFiles "../secrets/*": entry 0 must stay inside the working directory (no ".." element)
}

// A hostile stream: a symbolic link to the victim, then a file through it.
// The link is never created, so the file lands inside the destination.
func ExampleExtract() {
	base, err := os.MkdirTemp("", "extract-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(base)
	dest := filepath.Join(base, "dest")
	if err := os.Mkdir(dest, 0o755); err != nil {
		log.Fatal(err)
	}

	var stream bytes.Buffer
	tw := tarWriter(&stream)
	tw.symlink("work/link", "/etc")
	tw.file("work/link/passwd", "pwned")
	tw.file("work/../../escape", "x")
	tw.close()

	stats, err := files.Extract(context.Background(), &stream, dest, files.ExtractOptions{StripPrefix: "work/"})
	fmt.Println(err)
	fmt.Println(stats.Skipped, stats.Files)
	entries, _ := os.ReadDir(dest)
	fmt.Println(len(entries), "entries left in dest")
	// Output:
	// files: unsafe tar entry "work/../../escape": has a ".." element
	// [link: symbolic link not extracted] []
	// 0 entries left in dest
}
