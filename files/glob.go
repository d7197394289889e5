package files

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/lading-dev/lading/runner"
)

// Matcher selects output files by Kestra's globs (see the package
// documentation, Globs). A Matcher with no patterns, and a nil *Matcher,
// match nothing. A Matcher is immutable: safe for concurrent use and
// reusable.
type Matcher struct {
	patterns []string
}

// NewMatcher compiles output globs, relative to the working directory. A
// leading "./" is dropped. A pattern that is empty, absolute (also inside a
// leading "{...}"), has a ".." element (also inside braces), contains NUL,
// is not a valid doublestar pattern (such as "[unclosed"), or cannot match
// a file (a "regex:" or "glob:" prefix, a "." or empty element, a trailing
// "/" or "." alone, which name a directory) is refused with
// a [*runner.FieldError] for "outputFiles" with the pattern as Value,
// matching [runner.ErrInvalidTask]; its Problem says which entry it is.
func NewMatcher(patterns []string) (*Matcher, error) {
	m := &Matcher{patterns: make([]string, 0, len(patterns))}
	for i, p := range patterns {
		clean, problem := globPattern(p)
		if problem != "" {
			return nil, &runner.FieldError{Field: "outputFiles", Value: p,
				Problem: fmt.Sprintf("entry %d %s", i, problem), Err: runner.ErrInvalidTask}
		}
		m.patterns = append(m.patterns, clean)
	}
	return m, nil
}

// globPattern cleans an output glob, or says what is wrong with it.
func globPattern(p string) (clean, problem string) {
	clean = p
	for strings.HasPrefix(clean, "./") {
		clean = strings.TrimLeft(strings.TrimPrefix(clean, "./"), "/")
	}
	switch {
	case strings.TrimSpace(clean) == "":
		return "", "must not be empty"
	case strings.ContainsRune(clean, 0):
		return "", "must not contain NUL"
	case absoluteGlob(clean):
		return "", "must be relative to the working directory, not absolute"
	case strings.HasPrefix(clean, "regex:"):
		return "", `is a regex: pattern, which lading does not support (Kestra's outputFiles are globs): write it as a glob, such as "**/*.csv"`
	case strings.HasPrefix(clean, "glob:"):
		return "", `starts with "glob:": output patterns are globs already; drop the prefix`
	case clean == "." || strings.HasSuffix(clean, "/"):
		return "", `names a directory, and only files are collected: add "**" to take the files under it, such as "out/**"`
	}
	for part := range strings.SplitSeq(clean, "/") {
		switch part {
		case ".":
			return "", `must not have a "." element: paths are matched cleaned, so it matches nothing`
		case "":
			return "", "must not have an empty element (\"//\"): paths are matched cleaned, so it matches nothing"
		}
	}
	for part := range strings.FieldsFuncSeq(clean, func(r rune) bool { return strings.ContainsRune("/{},", r) }) {
		if part == ".." {
			return "", `must stay inside the working directory (no ".." element)`
		}
	}
	if !doublestar.ValidatePattern(clean) {
		return "", "is not a valid glob"
	}
	return clean, ""
}

// absoluteGlob reports whether p, or one of the alternatives of a leading
// "{...}", starts at the file system root.
func absoluteGlob(p string) bool {
	if strings.HasPrefix(p, "/") || filepath.IsAbs(p) {
		return true
	}
	if !strings.HasPrefix(p, "{") {
		return false
	}
	depth := 0
	for i, r := range p {
		switch r {
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 1 && strings.HasPrefix(p[i+1:], "/") {
				return true
			}
		}
		if depth == 0 {
			break
		}
	}
	return strings.HasPrefix(p, "{/")
}

// Empty reports whether m has no patterns (m may be nil).
func (m *Matcher) Empty() bool { return m == nil || len(m.patterns) == 0 }

// Match reports whether rel, a slash-separated path relative to the working
// directory, matches one of the patterns.
func (m *Matcher) Match(rel string) bool {
	if m == nil {
		return false
	}
	for _, p := range m.patterns {
		if doublestar.MatchUnvalidated(p, rel) {
			return true
		}
	}
	return false
}

// Prefixes returns the directories (relative, slash-separated, "" for the
// top level) under which the patterns can match, each once: a copy can be
// limited to them.
func (m *Matcher) Prefixes() []string {
	if m == nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, p := range m.patterns {
		base, _ := doublestar.SplitPattern(p)
		if base == "." {
			base = ""
		}
		if !seen[base] {
			seen[base] = true
			out = append(out, base)
		}
	}
	return out
}

// Patterns returns the cleaned patterns, in the order given to
// [NewMatcher] (one per pattern given).
func (m *Matcher) Patterns() []string {
	if m == nil {
		return nil
	}
	return slices.Clone(m.patterns)
}

// Unmatched returns the indexes of the patterns that match none of rels, in
// order.
func (m *Matcher) Unmatched(rels []string) []int {
	if m == nil {
		return nil
	}
	left := make([]int, 0, len(m.patterns))
	for i := range m.patterns {
		left = append(left, i)
	}
	for _, rel := range rels {
		if len(left) == 0 {
			break
		}
		left = slices.DeleteFunc(left, func(i int) bool { return doublestar.MatchUnvalidated(m.patterns[i], rel) })
	}
	return left
}

// maxDepth returns how many path elements a match can have at most, or -1
// when a pattern has "**" (any depth). Every "/" of a pattern counts, those
// of all brace alternatives together, so it is an upper bound.
func (m *Matcher) maxDepth() int {
	depth := 0
	for _, p := range m.patterns {
		if strings.Contains(p, "**") {
			return -1
		}
		depth = max(depth, strings.Count(p, "/")+1)
	}
	return depth
}

// tooDeep reports whether no match of m can be under the directory rel
// (relative to the walk's root, "." for it).
func (m *Matcher) tooDeep(rel string) bool {
	limit := m.maxDepth()
	return limit >= 0 && rel != "." && strings.Count(rel, "/")+1 >= limit
}

// Roots returns the fewest paths (relative, slash-separated, "" for the
// whole directory) whose trees hold every path the patterns can match: a
// literal pattern is its own root ("a/b.txt"), another one the directory
// before its first metacharacter ("out" for "out/**/*.csv"). No root is
// under another.
func (m *Matcher) Roots() []string {
	if m == nil {
		return nil
	}
	var roots []string
	for _, p := range m.patterns {
		root := p
		if strings.ContainsAny(p, `*?[{\`) {
			root, _ = doublestar.SplitPattern(p)
			if root == "." {
				root = ""
			}
		}
		roots = append(roots, root)
	}
	slices.Sort(roots)
	out := roots[:0]
	for _, r := range roots {
		if len(out) > 0 && (out[len(out)-1] == "" || r == out[len(out)-1] || strings.HasPrefix(r, out[len(out)-1]+"/")) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// Collect walks dir without following symbolic links and returns the
// regular files to hand back, as a map from a slash-separated relative path
// to an absolute host path:
//
//   - every regular file whose path relative to dir matches m, keyed by that
//     path;
//   - every regular file under each of the under directories (relative to
//     dir; "" entries are ignored), at any depth, keyed by its path relative
//     to that directory, as Kestra keys the files of its output directory
//     ("out-1/nested/f.txt" gives "nested/f.txt").
//
// When two files get the same key, a file from an under directory wins over
// a glob match, and an earlier under directory over a later one. Symbolic
// links, directories, devices, FIFOs and sockets are never returned; an
// under directory that is itself a symbolic link is not followed. dir itself
// may be a symbolic link. An under directory that does not exist yields
// nothing; one that is not a local path is an error. [CollectChanged] does
// the same with a snapshot and limits.
func Collect(dir string, m *Matcher, under ...string) (map[string]string, error) {
	c, err := CollectChanged(context.Background(), dir, m, CollectOptions{Under: under})
	return c.Files, err
}

// CollectOptions controls [CollectChanged]. The zero value collects as
// [Collect] does.
type CollectOptions struct {
	// Under are the output directories, as for [Collect].
	Under []string
	// Since, when set, keeps only the glob matches that were created or
	// changed since the snapshot was taken (files under the Under
	// directories are always kept).
	Since *Snapshot
	// MaxBytes and MaxFiles, when positive, cap the total size (a sparse
	// file counts by its size) and the number of the files collected; going
	// past them is an error matching [ErrLimit], returned with the whole
	// [Collected] so the caller can remove what it will not hand back.
	MaxBytes int64
	MaxFiles int
}

// Collected is what [CollectChanged] found.
type Collected struct {
	// Files maps keys to absolute host paths, as [Collect] returns.
	Files map[string]string
	// Globbed are the paths (relative to dir) of the files in Files that
	// came from the globs, not from an output directory.
	Globbed []string
	// Created are the paths (relative to dir) of the files in Files that
	// did not exist when Since was taken: every file from an output
	// directory, and the glob matches absent from Since (all of them when
	// Since is nil).
	Created []string
	// Bytes is the total size of Files.
	Bytes int64
}

// CollectChanged is [Collect] with options: only what changed since a
// [Snapshot], and limits. ctx is checked during the walk.
func CollectChanged(ctx context.Context, dir string, m *Matcher, opts CollectOptions) (Collected, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return Collected{}, fmt.Errorf("files: collect outputs in %s: %w", dir, err)
	}
	var prefixes []string // "out-1/"
	for _, u := range opts.Under {
		if u == "" {
			continue
		}
		clean, ok := LocalPath(strings.TrimSuffix(u, "/"))
		if !ok {
			return Collected{}, fmt.Errorf("files: collect outputs in %s: output directory %q is not a local path", dir, u)
		}
		prefixes = append(prefixes, clean+"/")
	}
	out := map[string]string{}
	if m.Empty() && len(prefixes) == 0 {
		return Collected{Files: out}, nil
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return Collected{}, fmt.Errorf("files: collect outputs in %s: %w", dir, err)
	}
	defer root.Close()

	walkingGlobs := !m.Empty()
	type found struct {
		rel     string
		size    int64
		created bool
	}
	fromUnder := map[string]int{} // key -> index of the under directory it came from
	entries := map[string]found{} // key -> the file it maps to
	visit := func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() && walkingGlobs && m.tooDeep(rel) && !slices.ContainsFunc(prefixes, func(p string) bool {
			return strings.HasPrefix(rel+"/", p) || strings.HasPrefix(p, rel+"/")
		}) {
			return fs.SkipDir // no glob can match below, and no output directory is there
		}
		if !d.Type().IsRegular() {
			return nil // directories are walked, links never followed
		}
		for i, prefix := range prefixes {
			if key, ok := strings.CutPrefix(rel, prefix); ok {
				if r, seen := fromUnder[key]; !seen || i < r {
					info, err := d.Info()
					if err != nil {
						return err
					}
					entries[key], fromUnder[key] = found{rel: rel, size: info.Size(), created: true}, i
				}
				return nil
			}
		}
		if !m.Match(rel) {
			return nil
		}
		if _, seen := fromUnder[rel]; seen {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		created := true
		if opts.Since != nil {
			before, ok := opts.Since.files[rel]
			if ok && before == stateOf(info) {
				return nil // there before, and unchanged
			}
			created = !ok
		}
		entries[rel] = found{rel: rel, size: info.Size(), created: created}
		return nil
	}
	if walkingGlobs {
		err = fs.WalkDir(root.FS(), ".", visit)
	} else {
		for _, prefix := range prefixes {
			sub := strings.TrimSuffix(prefix, "/")
			if !realDir(root, sub) {
				continue
			}
			if err = fs.WalkDir(root.FS(), sub, visit); err != nil {
				break
			}
		}
	}
	if err != nil {
		return Collected{}, fmt.Errorf("files: collect outputs in %s: %w", dir, err)
	}
	c := Collected{Files: out}
	for key, f := range entries {
		out[key] = filepath.Join(abs, filepath.FromSlash(f.rel))
		c.Bytes += f.size
		if _, under := fromUnder[key]; !under {
			c.Globbed = append(c.Globbed, f.rel)
		}
		if f.created {
			c.Created = append(c.Created, f.rel)
		}
	}
	slices.Sort(c.Globbed)
	slices.Sort(c.Created)
	switch {
	case opts.MaxFiles > 0 && len(out) > opts.MaxFiles:
		return c, fmt.Errorf("files: collect outputs in %s: %w: %d files, more than %d", dir, ErrLimit, len(out), opts.MaxFiles)
	case opts.MaxBytes > 0 && c.Bytes > opts.MaxBytes:
		return c, fmt.Errorf("files: collect outputs in %s: %w: %d bytes, more than %d", dir, ErrLimit, c.Bytes, opts.MaxBytes)
	}
	return c, nil
}

// Snapshot records the regular files under a directory at one moment (size,
// modification and change times, inode), so that [CollectChanged] can tell
// which were created or changed since. A file rewritten within the
// resolution of the file system's timestamps with the same size, in place,
// looks unchanged only if its change time did not move either, which a
// write always moves on Linux.
type Snapshot struct {
	files map[string]fileState
}

// Len returns the number of files recorded.
func (s *Snapshot) Len() int { return len(s.files) }

// TakeSnapshot records the regular files under dir that m can match (it
// walks only the directories of [Matcher.Roots]), without following
// symbolic links.
func TakeSnapshot(ctx context.Context, dir string, m *Matcher) (*Snapshot, error) {
	s := &Snapshot{files: map[string]fileState{}}
	if m.Empty() {
		return s, nil
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("files: snapshot %s: %w", dir, err)
	}
	defer root.Close()
	for _, r := range m.Roots() {
		start := r
		if start == "" {
			start = "."
		} else if fi, err := root.Lstat(start); err != nil || (!fi.IsDir() && !fi.Mode().IsRegular()) || !realDir(root, path.Dir(start)) {
			continue
		}
		err := fs.WalkDir(root.FS(), start, func(rel string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if d.IsDir() && m.tooDeep(rel) {
				return fs.SkipDir
			}
			if !d.Type().IsRegular() {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			s.files[rel] = stateOf(info)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("files: snapshot %s: %w", dir, err)
		}
	}
	return s, nil
}

// realDir reports whether rel and each of its parents is a directory in
// root, not a symbolic link to one.
func realDir(root *os.Root, rel string) bool {
	for p := rel; p != "."; p = path.Dir(p) {
		if fi, err := root.Lstat(p); err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}
