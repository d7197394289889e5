// Package files moves a task's files between the host and a container
// engine, on the host side only (it imports no engine package). It stages
// input files into a host working directory ([Stage]), streams a directory as
// the uncompressed tar an engine's archive API takes ([WriteTar]), extracts
// the tar an engine sends back, which is hostile input ([Extract]), and picks
// output files with Kestra's globs ([NewMatcher], [Collect]).
//
// The functions keep no state between calls and are safe for concurrent use
// on different directories. A [Matcher] is immutable and safe for concurrent
// use.
//
// # Security
//
// A tar stream that comes out of a container was written by whatever ran in
// it; Docker's own copy has let such streams write onto the host (CopyEscape:
// a symbolic link to /etc, then an entry "link/x"). [Extract] therefore:
//
//   - opens the destination once with [os.OpenRoot] and does every lookup,
//     mkdir, create, rename and remove through that Root, so no name, link or
//     race can reach outside it;
//   - refuses, with an error matching [ErrUnsafeEntry] that names the entry,
//     names that are empty after StripPrefix is removed, absolute, not
//     [filepath.IsLocal], contain a ".." element (even one that stays
//     inside), contain NUL or are longer than 4096 bytes; device and FIFO
//     entries (unless the Filter drops them); and entries whose parent in the
//     destination is a symbolic link, wherever it points: Extract never
//     follows a link;
//   - never creates a symbolic link or a hard link: such entries are skipped
//     and listed in [ExtractStats.Skipped] (a later entry "link/x" then makes
//     a real directory "link" inside the destination);
//   - creates every file with O_CREATE|O_EXCL, so it never writes through a
//     file, symbolic link or hard link already there. A name that exists is
//     an error matching [fs.ErrExist] unless [ExtractOptions.Overwrite] is
//     set; then the old entry is renamed aside, and removed only once the
//     whole stream has been extracted;
//   - keeps mode bits within 0o755 plus owner read and write (no setuid,
//     setgid or sticky bit, no group or world write), subject to the umask;
//   - caps bytes and files written (see Limits), whatever the headers claim;
//   - on any error, removes every file and directory it created and puts back
//     what it renamed aside, so the destination is as it was.
//
// [Stage] writes input files through an os.Root too: a key that is absolute,
// not local, contains "..", or leads through a symbolic link out of the
// working directory is refused with a [*runner.FieldError] for "inputFiles".
// An existing file or link at the key is removed and the file created anew
// with O_EXCL, never written through. A staged file keeps its source's
// permission bits ([HostFile], [WithMode]) but never a setuid, setgid or
// sticky bit (refused) nor the group or other write bit (dropped). [WriteTar] stores symbolic links as
// links and never follows them, and leaves out devices, FIFOs and sockets.
//
// Copy files in while the container is only created and out after it has
// exited: with no process running inside, nothing can race the copy.
//
// A directory a container wrote into directly (a bind mount) is made safe
// with [Sanitize] once the container has exited: devices, FIFOs and sockets
// removed, setuid, setgid, sticky and group or other write bits cleared,
// optionally the owners of others' entries changed, symbolic links left and
// never followed, in a bounded walk through an os.Root.
//
// # Limits
//
// [Extract] stops with an error matching [ErrLimit] once a stream would write
// more than [ExtractOptions.MaxBytes] bytes or create more than
// [ExtractOptions.MaxFiles] files and directories. Zero means
// [DefaultMaxBytes] (10 GiB) and [DefaultMaxFiles] (100,000). The byte limit
// is checked against each entry's declared size before anything is written
// and enforced again while copying, so a sparse entry or a size that lies
// cannot fill the disk. As with every other error, what was created is then
// removed.
//
// Every copy streams through one 1 MiB buffer per call: no file is held in
// memory, and a cancelled context stops a copy within one buffer.
//
// # Templates
//
// Only a [Template] source is a template: the runner renders it with the
// task's vars before staging (Kestra renders the inline contents of
// inputFiles), and its Open fails, so a runner that does not render it
// stops instead of staging braces. [String], [Bytes], [HostFile] and
// [Reader] contents are never parsed.
//
// # Globs
//
// [NewMatcher] compiles output globs with doublestar, relative to the working
// directory and matched against slash-separated relative paths: "*.txt"
// matches "a.txt" but not "sub/a.txt", "out/**" matches everything under out
// at any depth, "{a,b}.txt" and "[ab].txt" match a.txt and b.txt, and a
// backslash escapes a metacharacter. "**/" may match zero directories, so
// "**/*.csv" also matches "c.csv". An absolute or escaping pattern, and
// one that cannot match a file ("regex:..." or "glob:..." as Java's path
// matchers write them, "out/" naming a directory: write "out/**"), is a
// [*runner.FieldError] for "outputFiles" naming the pattern. [Collect] walks the working
// directory without following symbolic links and returns the regular files
// the globs match, plus every regular file under the output directory.
// [CollectChanged] keeps only the matches created or changed since a
// [TakeSnapshot], within limits.
//
// # Changed files
//
// [WriteTar] reports what it sends of each file ([TarOptions.OnFile]), and
// [ExtractOptions.Decide] lets the caller drop an entry or write it only
// when its content differs from the file already in dest, so that a copy
// back brings only what a container changed. [ExtractPending] lets several
// extractions succeed or fail together.
//
// # Example
//
// Stage inputs, send them to a container as "work/...", and take back the
// files the task asked for:
//
//	package main
//
//	import (
//		"bytes"
//		"context"
//		"fmt"
//		"log"
//		"os"
//
//		"github.com/lading-dev/lading/files"
//	)
//
//	func main() {
//		ctx := context.Background()
//		dir, err := os.MkdirTemp("", "work-")
//		if err != nil {
//			log.Fatal(err)
//		}
//		defer os.RemoveAll(dir)
//
//		// Inputs into the host working directory.
//		err = files.Stage(ctx, dir, map[string]files.Source{
//			"hello.txt":            files.String("Hello World\n"),
//			"test/application.yml": files.String("app: 1\n"),
//		})
//		if err != nil {
//			log.Fatal(err)
//		}
//
//		// The tar an engine's CopyToContainer takes, rooted at "work/".
//		var archive bytes.Buffer
//		if err := files.WriteTar(ctx, &archive, dir, files.TarOptions{Prefix: "work/", UID: 1000, GID: 1000}); err != nil {
//			log.Fatal(err)
//		}
//
//		// What CopyFromContainer("/work") sends back (here the same tar),
//		// filtered by the task's output globs.
//		m, err := files.NewMatcher([]string{"*.txt"})
//		if err != nil {
//			log.Fatal(err)
//		}
//		out, err := os.MkdirTemp("", "out-")
//		if err != nil {
//			log.Fatal(err)
//		}
//		defer os.RemoveAll(out)
//		stats, err := files.Extract(ctx, &archive, out, files.ExtractOptions{StripPrefix: "work/", Filter: m.Match})
//		if err != nil {
//			log.Fatal(err)
//		}
//		fmt.Println(stats.Files) // [hello.txt]
//
//		collected, err := files.Collect(out, m)
//		if err != nil {
//			log.Fatal(err)
//		}
//		fmt.Println(len(collected)) // 1
//	}
package files
