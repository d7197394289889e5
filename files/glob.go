package files

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
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
// or is not a valid doublestar pattern (such as "[unclosed") is refused with
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
// nothing; one that is not a local path is an error.
func Collect(dir string, m *Matcher, under ...string) (map[string]string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("files: collect outputs in %s: %w", dir, err)
	}
	var prefixes []string // "out-1/"
	for _, u := range under {
		if u == "" {
			continue
		}
		clean, ok := LocalPath(strings.TrimSuffix(u, "/"))
		if !ok {
			return nil, fmt.Errorf("files: collect outputs in %s: output directory %q is not a local path", dir, u)
		}
		prefixes = append(prefixes, clean+"/")
	}
	out := map[string]string{}
	if m.Empty() && len(prefixes) == 0 {
		return out, nil
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("files: collect outputs in %s: %w", dir, err)
	}
	defer root.Close()

	rank := map[string]int{} // key -> index of the under directory it came from; glob matches are absent
	visit := func(rel string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil // directories are walked, links never followed
		}
		host := filepath.Join(abs, filepath.FromSlash(rel))
		for i, prefix := range prefixes {
			if key, ok := strings.CutPrefix(rel, prefix); ok {
				if r, fromUnder := rank[key]; !fromUnder || i < r {
					out[key], rank[key] = host, i
				}
				return nil
			}
		}
		if m.Match(rel) {
			if _, fromUnder := rank[rel]; !fromUnder {
				out[rel] = host
			}
		}
		return nil
	}
	if !m.Empty() {
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
		return nil, fmt.Errorf("files: collect outputs in %s: %w", dir, err)
	}
	return out, nil
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
