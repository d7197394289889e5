package template

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"github.com/flosch/pongo2/v6"

	"github.com/lading-dev/lading/runner"
)

// MaxSize is the default cap, in bytes, on one rendered string (a command,
// an env value, an output glob) and on every value a template computes on
// the way: 1 MiB. It is far above what a script line needs (Linux caps one
// argument at 128 KiB and a whole command line at about 2 MiB) and low
// enough that a hostile template cannot make the host program hold much
// more than a few times that while rendering.
const MaxSize = 1 << 20

// MaxFileSize is the cap, in bytes, on an input file rendered from a
// template (a runner.TemplateSource) and on every value computed while
// rendering it: 8 MiB, as [FileOptions] sets it. The template text itself,
// when it holds markup, stays capped at [MaxSize]: parsing is what costs
// (1 MiB of dense markup, {{x}} repeated, took 200 MiB of heap and seconds
// to render), while text without markup is returned as it is, unparsed,
// whatever its size. So a large file with a few {{ }} is rendered from a
// template of at most 1 MiB, or staged as a plain source.
const MaxFileSize = 8 << 20

// Options are the settings of a [Renderer]. The zero value is usable.
type Options struct {
	// Secrets are what secret('NAME') returns (the task's secrets). A name
	// that is not here is an error that names it.
	Secrets map[string]string
	// MaxSize caps one rendered string and every value computed while
	// rendering it, in bytes. Zero means [MaxSize]; negative means no cap.
	MaxSize int
	// MaxTemplateSize caps the length of a template that holds markup, in
	// bytes. Zero means the same cap as MaxSize; negative means no cap.
	MaxTemplateSize int
}

// FileOptions returns the options for rendering input files: the cap of
// [MaxFileSize] on the result, and of [MaxSize] on the template text.
func FileOptions(secrets map[string]string) Options {
	return Options{Secrets: secrets, MaxSize: MaxFileSize, MaxTemplateSize: MaxSize}
}

// Renderer renders templates with one set of variables. It is safe for
// concurrent use and can be reused.
type Renderer struct {
	vars    map[string]any // the variables, floats made numbers (see values.go)
	secrets map[string]string
	max     int
	maxText int // the cap on a template's text
}

// New returns a renderer of templates with vars. Vars are not modified;
// float64 values in them (also inside map[string]any and []any) render in
// their shortest form (1.5, 2, 1e+21), as JSON writes them.
func New(vars map[string]any, opts Options) *Renderer {
	max := opts.MaxSize
	if max == 0 {
		max = MaxSize
	}
	maxText := opts.MaxTemplateSize
	if maxText == 0 {
		maxText = max
	}
	return &Renderer{vars: convertVars(vars), secrets: opts.Secrets, max: max, maxText: maxText}
}

// UndefinedError reports a variable or a function a template uses but the
// variables do not define.
type UndefinedError struct {
	Name     string   // the variable as written, e.g. "inputs.fiel", or the function's name
	Defined  []string // the top-level names that are defined, sorted
	Function bool     // Name is called as a function
}

func (e *UndefinedError) Error() string {
	if e.Function {
		msg := fmt.Sprintf("undefined function %s() (template functions: %s)", e.Name, strings.Join(functionNames, ", "))
		if hint, ok := functionHints[e.Name]; ok {
			msg += ": " + hint
		}
		return msg
	}
	return fmt.Sprintf("undefined variable %q (defined: %s)", e.Name, strings.Join(e.Defined, ", "))
}

// Render renders s with vars, with no secrets, no deadline and the default
// cap, as New(vars, Options{}) does with context.Background(), except that
// an error is the problem itself, not a *runner.FieldError. Errors name the
// undefined variable or function, or the line and column of a syntax error.
func Render(s string, vars map[string]any) (string, error) {
	return New(vars, Options{}).render(context.Background(), s)
}

// RenderList renders each item with vars, with no secrets, no deadline and
// the default cap. An error is a *runner.FieldError matching
// runner.ErrInvalidTask that names the item as field[i] (for example
// "commands[2]") and holds its text.
func RenderList(field string, items []string, vars map[string]any) ([]string, error) {
	return New(vars, Options{}).RenderList(context.Background(), field, items)
}

// Render renders s. A string with no template markup is returned as it is,
// without parsing. An invalid template (undefined name, syntax error,
// refused tag, a result over the cap) is a *runner.FieldError matching
// runner.ErrInvalidTask that names field and holds s. When ctx is done
// before rendering ends, the error wraps context.Cause(ctx) instead.
func (r *Renderer) Render(ctx context.Context, field, s string) (string, error) {
	out, err := r.render(ctx, s)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.Cause(ctx)) {
			return "", fmt.Errorf("template: rendering %s: %w", field, err)
		}
		return "", &runner.FieldError{Field: field, Value: shorten(s), Problem: err.Error(), Err: runner.ErrInvalidTask}
	}
	return out, nil
}

// RenderList renders each item as [Renderer.Render] does, naming the item
// as field[i] (for example "commands[2]").
func (r *Renderer) RenderList(ctx context.Context, field string, items []string) ([]string, error) {
	out := make([]string, len(items))
	for i, item := range items {
		s, err := r.Render(ctx, fmt.Sprintf("%s[%d]", field, i), item)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

// shorten keeps an error's quote of a template readable.
func shorten(s string) string {
	const keep = 200
	if len(s) <= keep {
		return s
	}
	return s[:keep] + fmt.Sprintf("... (%d bytes)", len(s))
}

// refusedTags are pongo2's tags a workflow author's template may not use:
// those that read files (include, import, extends, ssi), the one that
// exists to generate text (lorem), and those that render their body into a
// buffer of their own, out of reach of the cap (macro, filter, ifchanged,
// spaceless, block); a macro can also call itself until the host's stack
// is exhausted.
var refusedTags = []string{"include", "import", "extends", "ssi", "lorem", "macro", "filter", "ifchanged", "spaceless", "block"}

// Autoescaping is turned off by wrapping every template in this tag, the
// only per-template switch pongo2 has (pongo2.SetAutoescape is global).
const (
	escapeOff    = "{% autoescape off %}"
	escapeOffEnd = "{% endautoescape %}"
)

func (r *Renderer) render(ctx context.Context, s string) (out string, err error) {
	if !strings.Contains(s, "{{") && !strings.Contains(s, "{%") && !strings.Contains(s, "{#") {
		return s, nil
	}
	if err := ctx.Err(); err != nil {
		return "", context.Cause(ctx)
	}
	if r.maxText >= 0 && len(s) > r.maxText {
		return "", fmt.Errorf("the template is %d bytes, over the cap of %d", len(s), r.maxText)
	}
	if err := checkNesting(s); err != nil {
		return "", err
	}
	// The shell's ${#name} (a length) would open a template comment: keep
	// it literal.
	s = strings.ReplaceAll(s, "${#", `${{ "{#" }}`)
	registerFilters()
	set := pongo2.NewSet("lading", refuseLoader{})
	for _, tag := range refusedTags {
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
	tpl, err := set.FromString(escapeOff + s + escapeOffEnd)
	if err != nil {
		return "", explain(err, s)
	}
	pctx := r.context()
	for k := range pctx {
		if !validName.MatchString(k) {
			// pongo2's own error would quote the value.
			return "", fmt.Errorf("variable %q: a template variable's name is made of letters, digits and _", k)
		}
	}
	if err := check(tpl, pctx); err != nil {
		return "", err
	}
	b := &budget{ctx: ctx, max: r.max}
	instrument(tpl, b)
	execErr := tpl.ExecuteWriterUnbuffered(pctx, b)
	if b.err != nil {
		return "", b.err
	}
	if execErr != nil {
		return "", explain(execErr, s)
	}
	return b.buf.String(), nil
}

// context returns the variables and lading's functions; a variable of the
// same name as a function hides it.
func (r *Renderer) context() pongo2.Context {
	c := make(pongo2.Context, len(r.vars)+1)
	c["secret"] = r.secret
	for k, v := range r.vars {
		c[k] = v
	}
	return c
}

// secret is the template function secret('NAME').
func (r *Renderer) secret(name string) (string, error) {
	v, ok := r.secrets[name]
	if !ok {
		names := make([]string, 0, len(r.secrets))
		for k := range r.secrets {
			names = append(names, k)
		}
		sort.Strings(names)
		if len(names) == 0 {
			return "", fmt.Errorf("secret(%q): the task has no secrets (Task.Secrets)", name)
		}
		return "", fmt.Errorf("secret(%q): not one of the task's secrets (%s)", name, strings.Join(names, ", "))
	}
	return v, nil
}

// refuseLoader is the loader of the sandboxed set: templates cannot load
// other templates or files.
type refuseLoader struct{}

func (refuseLoader) Abs(base, name string) string { return name }
func (refuseLoader) Get(path string) (io.Reader, error) {
	return nil, errors.New("templates cannot read files")
}

// maxNesting bounds the nesting of brackets in a tag: pongo2's parser
// recurses once per level, and a deep enough nesting would exhaust the
// host's stack, which no recover catches.
const maxNesting = 64

// blockTags are the tags that open a block closed by an end tag.
var blockTags = map[string]bool{"if": true, "for": true, "with": true, "ifequal": true, "ifnotequal": true, "autoescape": true}

// checkNesting refuses tags whose brackets nest deeper than maxNesting, and
// blocks ({% if %}, {% for %}, ...) nested deeper than that.
func checkNesting(s string) error {
	depth := 0
	for _, tag := range tagBodies(s, "{%", "%}") {
		words := strings.Fields(strings.Trim(tag, "-"))
		if len(words) == 0 {
			continue
		}
		switch {
		case blockTags[words[0]]:
			depth++
			if depth > maxNesting {
				return fmt.Errorf("blocks nest deeper than %d levels", maxNesting)
			}
		case strings.HasPrefix(words[0], "end"):
			depth--
		}
	}
	for _, open := range []string{"{{", "{%"} {
		closer := map[string]string{"{{": "}}", "{%": "%}"}[open]
		rest := s
		for {
			i := strings.Index(rest, open)
			if i < 0 {
				break
			}
			rest = rest[i+2:]
			j := strings.Index(rest, closer)
			if j < 0 {
				j = len(rest)
			}
			depth := 0
			for _, c := range rest[:j] {
				switch c {
				case '(', '[':
					depth++
					if depth > maxNesting {
						return fmt.Errorf("brackets nest deeper than %d levels", maxNesting)
					}
				case ')', ']':
					depth--
				}
			}
			rest = rest[j:]
		}
	}
	return nil
}

// tagBodies returns the text between each open and close delimiter pair.
func tagBodies(s, open, close string) []string {
	var out []string
	for {
		i := strings.Index(s, open)
		if i < 0 {
			return out
		}
		s = s[i+len(open):]
		j := strings.Index(s, close)
		if j < 0 {
			return out // the parser reports the unclosed tag
		}
		out = append(out, s[:j])
		s = s[j+len(close):]
	}
}

// explain turns a pongo2 error into a message that gives the position in s
// and, for Pebble syntax that pongo2 does not have, what to write instead.
func explain(err error, s string) error {
	var pe *pongo2.Error
	if !errors.As(err, &pe) {
		return err
	}
	msg := pe.OrigError.Error()
	if strings.Contains(msg, "'endautoescape'") && !strings.Contains(s, "endautoescape") {
		// pongo2 met lading's closing tag while a block was still open.
		return errors.New("a block ({% if %}, {% for %}, {% with %}, ...) is not closed: its end tag is missing")
	}
	line, col := pe.Line, pe.Column
	if line == 1 {
		col -= len(escapeOff)
	}
	near := ""
	if pe.Token != nil {
		near = pe.Token.Val
	}
	if hint := pebbleHint(msg, near, s, line, col); hint != "" {
		msg += "; " + hint
	}
	if line > 0 {
		return fmt.Errorf("line %d column %d: %s", line, col, msg)
	}
	return errors.New(msg)
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9_]+$`)

var tagNotFound = regexp.MustCompile(`^Tag '(\w+)' not found`)

// pebbleHint says what to write in place of Pebble syntax pongo2 rejects.
func pebbleHint(msg, near, s string, line, col int) string {
	switch {
	case strings.HasPrefix(near, "~"):
		return "Pebble's ~ concatenation is written + here ({{ a + b }}; with two numbers + adds, so write {{ a }}{{ b }} for those)"
	case strings.HasPrefix(near, "??"):
		return "Pebble's ?? is written with the default filter here: {{ x|default:'fallback' }}"
	case near == "is":
		return "Pebble's tests (x is defined, x is null) are not supported: write {% if x %} or {{ x|default:'fallback' }}"
	case near == "(" && filterBefore(s, line, col):
		return "filter arguments are written name:arg here, not name(arg): {{ x|default:'fallback' }}"
	case strings.Contains(msg, "sandbox restriction"):
		return "the include, import, extends, ssi, lorem, macro, filter, ifchanged, spaceless and block tags are refused in lading's templates"
	}
	if m := tagNotFound.FindStringSubmatch(msg); m != nil && m[1] == "raw" {
		return "Pebble's {% raw %}...{% endraw %} is written {% verbatim %}...{% endverbatim %} here"
	}
	return ""
}

var filterCallBefore = regexp.MustCompile(`\|\s*\w+\s*$`)

// filterBefore reports whether a filter name precedes the given position
// (1-based line and column) of s.
func filterBefore(s string, line, col int) bool {
	lines := strings.Split(s, "\n")
	if line < 1 || line > len(lines) || col < 1 || col-1 > len(lines[line-1]) {
		return false
	}
	return filterCallBefore.MatchString(lines[line-1][:col-1])
}
