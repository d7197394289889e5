package core

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/lading-dev/lading/files"
	"github.com/lading-dev/lading/runner"
)

// MaxCopies bounds the archive calls of one collection (each costs tens of
// milliseconds whatever it carries): past it, paths that share a directory
// are copied as that directory, and the entries of it that are not wanted
// are read and dropped.
const MaxCopies = 8

// MaxConflictWarnings bounds the warnings about files changed on the host
// while the run ran; the rest are counted.
const MaxConflictWarnings = 100

// Extract copies src out of the task's file system into dest within the
// limits left, and takes what it wrote off them: open is the engine's copy
// of src as a tar stream (nil and no error when src does not exist), and
// Extract reads it as a hostile archive ([files.ExtractPending]). It
// returns the pending extraction (nil when src does not exist) and the
// paths it wrote, relative to dest.
func (run *State) Extract(ctx context.Context, src string, open func() (io.ReadCloser, error), dest string, opts files.ExtractOptions, left *OutputLimits, res *runner.Result) (*files.Extraction, []string, error) {
	if left.Bytes <= 0 || left.Files <= 0 {
		return nil, nil, fmt.Errorf("%s: collect output files: %w: nothing left for %s", run.opts.Name, files.ErrLimit, src)
	}
	opts.Overwrite = true // inputs the script changed come back over the staged ones (Decide says which)
	opts.MaxBytes, opts.MaxFiles = left.Bytes, left.Files
	content, err := open()
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, run.CollectError(ctx, err)
		}
		return nil, nil, run.eng.Error("copy output files from the container", err)
	}
	if content == nil {
		return nil, nil, nil
	}
	x, stats, err := files.ExtractPending(ctx, content, dest, opts)
	content.Close()
	left.Bytes -= stats.Bytes
	left.Files -= len(stats.Files)
	for _, s := range stats.Skipped {
		res.Warnings = append(res.Warnings, "output "+s)
	}
	if err != nil {
		return nil, nil, run.CollectError(ctx, err)
	}
	return x, stats.Files, nil
}

// WantedLeaves returns the changed paths that are not directories (no other
// changed path is under them) and that m matches: the files a collection
// expects.
func WantedLeaves(changed map[string]bool, m *files.Matcher) map[string]bool {
	dirs := map[string]bool{}
	for p := range changed {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	want := map[string]bool{}
	for p := range changed {
		if !dirs[p] && m.Match(p) {
			want[p] = true
		}
	}
	return want
}

// StopWhenDone returns an [files.ExtractOptions.Stop] for a copy of root
// ("" for the whole working directory) that ends it once every path of
// want under root has gone by: the rest of the stream holds nothing wanted.
func StopWhenDone(root string, want map[string]bool) func(string) bool {
	expected := 0
	for p := range want {
		if root == "" || p == root || strings.HasPrefix(p, root+"/") {
			expected++
		}
	}
	seen := 0
	return func(rel string) bool {
		if want[rel] {
			seen++
			return false
		}
		return seen >= expected
	}
}

// PlanCopies returns the paths of the working directory to copy out so
// that every changed path the matcher wants comes back and, as far as
// MaxCopies allows, nothing else is read: a directory whose changed
// entries are all wanted is copied whole, one with an unwanted entry is
// split. "" is the whole working directory.
func PlanCopies(changed map[string]bool, m *files.Matcher) []string {
	dirs := map[string]bool{}
	for p := range changed {
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	dirty, wanted := map[string]bool{}, map[string]bool{}
	mark := func(set map[string]bool, p string) {
		for set[p] = true; p != ""; {
			if p = path.Dir(p); p == "." {
				p = ""
			}
			set[p] = true
		}
	}
	for p := range changed {
		if dirs[p] {
			continue
		}
		if m.Match(p) {
			mark(wanted, p)
		} else {
			mark(dirty, p)
		}
	}
	if !wanted[""] {
		return nil
	}
	if !dirty[""] {
		return []string{""}
	}
	var roots []string
	for p := range wanted {
		parent := path.Dir(p)
		if parent == "." {
			parent = ""
		}
		if p != "" && !dirty[p] && dirty[parent] {
			roots = append(roots, p)
		}
	}
	slices.Sort(roots)
	for len(roots) > MaxCopies {
		// Merge the roots of the parent that has the most of them.
		count := map[string]int{}
		best := ""
		for _, r := range roots {
			parent := path.Dir(r)
			if parent == "." {
				parent = ""
			}
			count[parent]++
			if count[parent] > count[best] || (count[parent] == count[best] && len(parent) > len(best)) {
				best = parent
			}
		}
		merged := []string{best}
		for _, r := range roots {
			if best != "" && r != best && !strings.HasPrefix(r, best+"/") {
				merged = append(merged, r)
			}
		}
		slices.Sort(merged)
		roots = merged
	}
	return roots
}

// Staging is what a run sent into the container and what its collection
// brings back, for strategies that copy files both ways.
type Staging struct {
	Known    bool                        // the run staged what is in Files (false for a resumed run)
	Files    map[string]files.StagedFile // path relative to the working directory -> what was sent
	Outputs  map[string]string           // key -> host path, what the collection wrote
	Globbed  []string                    // paths (relative to the working directory) written for the globs
	Warnings []string                    // the conflicts Decide met, at most MaxConflictWarnings
	More     int                         // conflict warnings not listed
}

func (s *Staging) conflict(rel, what string) {
	if len(s.Warnings) < MaxConflictWarnings {
		s.Warnings = append(s.Warnings, fmt.Sprintf("output %s: %s while the run ran (another run on the same working directory?); the host's file is kept and this run's is not collected", rel, what))
	} else {
		s.More++
	}
}

// Decide returns the [files.ExtractOptions.Decide] of a collection by copy:
// a file comes back only when the container created or changed it, and
// never over a host file that changed since it was staged. The output
// directory is the run's own: everything in it comes back. hostRoot is the
// host working directory.
func (s *Staging) Decide(hostRoot *os.Root, outputRel string) func(rel string, hdr *tar.Header) files.Decision {
	return func(rel string, hdr *tar.Header) files.Decision {
		if !s.Known || (outputRel != "" && strings.HasPrefix(rel, outputRel+"/")) {
			return files.Write
		}
		sent, wasStaged := s.Files[rel]
		host, err := hostRoot.Lstat(rel)
		if !wasStaged {
			if errors.Is(err, fs.ErrNotExist) {
				return files.Write // the container made it, and the host has none
			}
			s.conflict(rel, "a file was created on the host")
			return files.Skip
		}
		hostSame := err == nil && host.Mode().IsRegular() && host.Size() == sent.Size && host.ModTime().Equal(sent.ModTime)
		// The tar carries whole seconds: a time within a second of the one
		// sent is the one sent, and the content decides.
		entrySame := hdr.Size == sent.Size && hdr.ModTime.Sub(sent.ModTime).Abs() < time.Second &&
			fs.FileMode(hdr.Mode).Perm() == sent.Mode
		switch {
		case !hostSame && entrySame:
			return files.Skip // the container left it as staged; the host's is newer
		case !hostSame && errors.Is(err, fs.ErrNotExist):
			s.conflict(rel, "the file was removed from the host")
			return files.Skip
		case !hostSame:
			s.conflict(rel, "the file was also changed on the host")
			return files.Skip
		case entrySame:
			return files.WriteIfChanged
		}
		return files.Write
	}
}

// Record notes what a collection wrote: written are the paths, relative to
// the working directory, of the files it wrote there. Those in the output
// directory are outputs under their path in it; the others (the globs')
// under their own path, unless a file of the output directory has it.
func (s *Staging) Record(ws *Workspace, written []string) {
	outputs := map[string]string{}
	fromOutput := map[string]bool{}
	for _, rel := range written {
		if key, ok := strings.CutPrefix(rel, ws.OutputRel+"/"); ws.OutputRel != "" && ok {
			outputs[key], fromOutput[key] = ws.HostPath(rel), true
			continue
		}
		s.Globbed = append(s.Globbed, rel)
		if !fromOutput[rel] {
			outputs[rel] = ws.HostPath(rel)
		}
	}
	s.Outputs = outputs
}

// Fill lists in res what the collection brought back (OutputFiles, never
// nil) and the conflicts it met, and returns the paths written for the
// globs: what [Files.Collect] returns.
func (s *Staging) Fill(res *runner.Result) []string {
	res.OutputFiles = s.Outputs
	if res.OutputFiles == nil {
		res.OutputFiles = map[string]string{}
	}
	res.Warnings = append(res.Warnings, s.Warnings...)
	if s.More > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d more output files changed on the host while the run ran were not collected", s.More))
	}
	return s.Globbed
}
