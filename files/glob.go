package files

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/bmatcuk/doublestar/v4"

	"github.com/lading-dev/lading/runner"
)

// Matcher selects output files by Kestra's globs. A Matcher with no
// patterns matches nothing. It is safe for concurrent use.
type Matcher struct {
	patterns []string
}

// NewMatcher compiles output globs, relative to the working directory. An
// absolute or escaping pattern, or an invalid one, is a
// [*runner.FieldError] naming outputFiles[i] and the pattern.
func NewMatcher(patterns []string) (*Matcher, error) {
	m := &Matcher{}
	for i, p := range patterns {
		clean := strings.TrimPrefix(strings.ReplaceAll(p, "\\", "/"), "./")
		if strings.HasPrefix(clean, "/") || strings.HasPrefix(clean, "../") || strings.Contains(clean, "/../") || clean == ".." {
			return nil, &runner.FieldError{Field: fmt.Sprintf("outputFiles[%d]", i), Value: p, Problem: "must be relative to the working directory", Err: runner.ErrInvalidTask}
		}
		if !doublestar.ValidatePattern(clean) {
			return nil, &runner.FieldError{Field: fmt.Sprintf("outputFiles[%d]", i), Value: p, Problem: "is not a valid glob", Err: runner.ErrInvalidTask}
		}
		m.patterns = append(m.patterns, clean)
	}
	return m, nil
}

// Empty reports whether the matcher has no patterns.
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
// top level) under which the patterns can match: a copy can be limited to
// them.
func (m *Matcher) Prefixes() []string {
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
// regular files to hand back: those whose path relative to dir matches m,
// keyed by that path, and every file under outputDir (a directory relative
// to dir; empty for none), keyed by its path relative to outputDir. Values
// are absolute host paths.
func Collect(dir string, m *Matcher, outputDir string) (map[string]string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if m.Empty() && outputDir == "" {
		return out, nil
	}
	outPrefix := ""
	if outputDir != "" {
		outPrefix = strings.TrimSuffix(filepath.ToSlash(outputDir), "/") + "/"
	}
	err = filepath.WalkDir(abs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil // directories are walked, links never followed
		}
		rel, err := filepath.Rel(abs, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if outPrefix != "" && strings.HasPrefix(rel, outPrefix) {
			out[strings.TrimPrefix(rel, outPrefix)] = p
			return nil
		}
		if m.Match(rel) {
			out[rel] = p
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("files: collect outputs in %s: %w", dir, err)
	}
	return out, nil
}
