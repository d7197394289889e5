// Package template renders the templated string fields of a task (its
// commands above all) with pongo2, the Go implementation of the Django and
// Jinja syntax that Kestra's Pebble also follows: {{ workingDir }},
// {{ outputDir }}, {{ inputs.file }}.
//
// # Strict variables
//
// pongo2 renders an undefined variable as an empty string. For a script that
// is dangerous: a typo in rm -rf {{ workDir }}/ would remove /. Render
// therefore checks, before rendering, that every variable a {{ ... }}
// expression names is defined, down to nested keys of maps, and fails with an
// error that names it. Variables bound inside the template ({% for %},
// {% with %}, {% set %}, macro arguments) are not checked, and neither is an
// expression that supplies its own fallback with the default or
// default_if_none filter. Conditions in {% if %} may name undefined
// variables, which are false there, as in Django.
//
// # Shell syntax
//
// The shell's ${#name} (a string's length) stays as written, although {#
// opens a template comment. Any other literal {{, {% or {# is written
// {{ "{{" }} or inside {% verbatim %}...{% endverbatim %}.
//
// # Sandbox
//
// Templates come from workflow authors, not from the host program, so the
// tags that read files (include, import, extends, ssi) are refused.
//
// # Example
//
//	out, err := template.Render("cat {{ workingDir }}/{{ inputs.name }}.txt", map[string]any{
//		"workingDir": "/work",
//		"inputs":     map[string]any{"name": "data"},
//	})
//	// out == "cat /work/data.txt"
package template

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/flosch/pongo2/v6"

	"github.com/lading-dev/lading/runner"
)

// UndefinedError reports a variable a template uses but the variables do not
// define.
type UndefinedError struct {
	Name    string   // the variable as written, e.g. "inputs.fiel"
	Defined []string // the top-level names that are defined, sorted
}

func (e *UndefinedError) Error() string {
	return fmt.Sprintf("undefined variable %q (defined: %s)", e.Name, strings.Join(e.Defined, ", "))
}

// Render renders s with vars. A string with no template markup is returned
// as it is, without parsing. Errors name the undefined variable, or the
// line and column of a syntax error.
func Render(s string, vars map[string]any) (out string, err error) {
	if !strings.Contains(s, "{{") && !strings.Contains(s, "{%") && !strings.Contains(s, "{#") {
		return s, nil
	}
	// The shell's ${#name} (a length) would open a template comment: keep
	// it literal.
	s = strings.ReplaceAll(s, "${#", `${{ "{#" }}`)
	if err := checkDefined(s, vars); err != nil {
		return "", err
	}
	set := pongo2.NewSet("lading", refuseLoader{})
	for _, tag := range []string{"include", "import", "extends", "ssi"} {
		if err := set.BanTag(tag); err != nil {
			return "", fmt.Errorf("template: ban %s: %w", tag, err)
		}
	}
	// pongo2 panics on some templates (an integer division by zero, for
	// one); a workflow author's template must not crash the host program.
	defer func() {
		if p := recover(); p != nil {
			out, err = "", fmt.Errorf("template failed: %v", p)
		}
	}()
	tpl, err := set.FromString(s)
	if err != nil {
		return "", err
	}
	return tpl.Execute(pongo2.Context(vars))
}

// refuseLoader is the loader of the sandboxed set: templates cannot load
// other templates or files.
type refuseLoader struct{}

func (refuseLoader) Abs(base, name string) string { return name }
func (refuseLoader) Get(path string) (io.Reader, error) {
	return nil, errors.New("templates cannot read files")
}

// checkDefined fails on the first variable path used in a {{ ... }}
// expression that vars does not define.
func checkDefined(s string, vars map[string]any) error {
	s = unrendered.ReplaceAllString(s, "")
	bound := boundNames(s)
	for _, expr := range blocks(s, "{{", "}}") {
		if hasDefaultFilter(expr) {
			continue
		}
		for _, path := range variablePaths(expr) {
			if bound[path[0]] {
				continue
			}
			if !defined(vars, path) {
				names := make([]string, 0, len(vars))
				for k := range vars {
					names = append(names, k)
				}
				sort.Strings(names)
				return &UndefinedError{Name: strings.Join(path, "."), Defined: names}
			}
		}
	}
	return nil
}

// unrendered matches what pongo2 does not evaluate: verbatim blocks and
// comments.
var unrendered = regexp.MustCompile(`(?s)\{%-?\s*verbatim\s*-?%\}.*?\{%-?\s*endverbatim\s*-?%\}|\{#.*?#\}`)

// blocks returns the text between each open and close delimiter pair.
func blocks(s, open, close string) []string {
	var out []string
	for {
		i := strings.Index(s, open)
		if i < 0 {
			return out
		}
		s = s[i+len(open):]
		j := strings.Index(s, close)
		if j < 0 {
			return out // the parser reports the unclosed block
		}
		out = append(out, s[:j])
		s = s[j+len(close):]
	}
}

// boundNames collects the names a template binds itself.
func boundNames(s string) map[string]bool {
	bound := map[string]bool{"forloop": true}
	for _, tag := range blocks(s, "{%", "%}") {
		words := strings.Fields(strings.NewReplacer(",", " ", "=", " = ", "(", " ", ")", " ").Replace(tag))
		if len(words) == 0 {
			continue
		}
		switch words[0] {
		case "for":
			for _, w := range words[1:] {
				if w == "in" {
					break
				}
				bound[w] = true
			}
		case "with", "set":
			for i, w := range words {
				if w == "=" && i > 0 {
					bound[words[i-1]] = true
				}
			}
			if words[0] == "with" && slices.Contains(words, "as") { // {% with x as y %}
				bound[words[len(words)-1]] = true
			}
		case "macro":
			for _, w := range words[1:] {
				if w != "=" && w != "export" {
					bound[w] = true
				}
			}
		}
	}
	return bound
}

func hasDefaultFilter(expr string) bool {
	for _, part := range strings.Split(expr, "|")[1:] {
		name := strings.TrimSpace(part)
		name, _, _ = strings.Cut(name, ":")
		if name == "default" || name == "default_if_none" {
			return true
		}
	}
	return false
}

var keywords = map[string]bool{
	"and": true, "or": true, "not": true, "in": true, "is": true,
	"true": true, "false": true, "True": true, "False": true, "None": true, "nil": true,
}

// variablePaths returns the dotted variable paths in an expression, skipping
// string literals, numbers, keywords, filter names and names called as
// functions.
func variablePaths(expr string) [][]string {
	var paths [][]string
	i := 0
	afterPipe := false
	for i < len(expr) {
		c := expr[i]
		switch {
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(expr) && expr[j] != c {
				if expr[j] == '\\' {
					j++
				}
				j++
			}
			i = j + 1
		case c == '|':
			afterPipe = true
			i++
		case isIdentStart(c):
			j := i
			for j < len(expr) && (isIdentChar(expr[j]) || expr[j] == '.') {
				j++
			}
			word := strings.TrimRight(expr[i:j], ".")
			path := strings.Split(word, ".")
			rest := strings.TrimLeft(expr[j:], " \t")
			switch {
			case afterPipe:
				afterPipe = false // a filter's name
			case keywords[path[0]]:
			case strings.HasPrefix(rest, "("):
				// a function call: its value is not a variable path
			default:
				// Keep the identifier parts; a numeric index ends the path.
				for k, p := range path {
					if p == "" || !isIdentStart(p[0]) {
						path = path[:k]
						break
					}
				}
				paths = append(paths, path)
			}
			i = j
		case c == ':':
			afterPipe = false // a filter's argument follows
			i++
		default:
			if c >= '0' && c <= '9' {
				for i < len(expr) && (isIdentChar(expr[i]) || expr[i] == '.') {
					i++
				}
				continue
			}
			i++
		}
	}
	return paths
}

func isIdentStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentChar(c byte) bool  { return isIdentStart(c) || (c >= '0' && c <= '9') }

// defined reports whether path resolves in vars. Only maps are walked: past a
// value of another kind (a struct, a slice) the rest of the path is left to
// pongo2.
func defined(vars map[string]any, path []string) bool {
	v, ok := vars[path[0]]
	if !ok {
		return false
	}
	for _, key := range path[1:] {
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
			return true
		}
		got := rv.MapIndex(reflect.ValueOf(key).Convert(rv.Type().Key()))
		if !got.IsValid() {
			return false
		}
		v = got.Interface()
	}
	return true
}

// RenderList renders each item with vars. An error is a *runner.FieldError
// matching runner.ErrInvalidTask that names the item as field[i] (for
// example "commands[2]") and holds its text.
func RenderList(field string, items []string, vars map[string]any) ([]string, error) {
	out := make([]string, len(items))
	for i, item := range items {
		s, err := Render(item, vars)
		if err != nil {
			return nil, &runner.FieldError{Field: fmt.Sprintf("%s[%d]", field, i), Value: item, Problem: err.Error(), Err: runner.ErrInvalidTask}
		}
		out[i] = s
	}
	return out, nil
}
