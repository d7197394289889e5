// Package mask hides secret values in what lading hands back: log lines,
// the bytes passed to Stdout and Stderr, outputs and error messages. Each
// occurrence becomes "****".
//
// # What is masked
//
// For every secret: the value itself; its standard and URL-safe base64
// encodings, padded or not, also inside a longer base64 text (at any of the
// three byte alignments, whose stable middle part is masked, as GitHub
// Actions does); its URL-encoded forms (query and path escaping); its
// JSON-escaped form; and, for a secret of several lines (a PEM key), each of
// its lines of 4 bytes or more, because lines are delivered one by one.
//
// Encoded forms are masked for secrets of 4 bytes or more; shorter secrets
// are masked only as they are, since their encodings are too short to tell
// apart from ordinary text.
//
// In values decoded from JSON ([Masker.Value]), numbers and booleans are
// masked by their text: a number whose text contains a secret becomes that
// text masked, a string.
//
// # What is not
//
// A secret the script transforms otherwise (reversed, hex-encoded,
// compressed, split into pieces printed apart, or cut by a line longer than
// the 1 MiB line limit) is not recognised.
package mask

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Mask replaces every secret.
const Mask = "****"

// minEncoded is the shortest secret whose encodings and line parts are
// masked.
const minEncoded = 4

// Masker masks a fixed set of secrets. A nil *Masker masks nothing. It is
// safe for concurrent use.
type Masker struct {
	replacer *strings.Replacer
	variants []string
}

// New returns a Masker for the secrets, or nil when there is none to mask
// (empty strings are ignored).
func New(secrets ...string) *Masker {
	seen := map[string]bool{}
	add := func(v string) {
		if v != "" {
			seen[v] = true
		}
	}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		add(s)
		if len(s) < minEncoded {
			continue
		}
		for _, form := range encodings(s) {
			add(form)
		}
		if strings.ContainsAny(s, "\r\n") {
			for _, line := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
				if len(line) >= minEncoded {
					add(line)
					for _, form := range encodings(line) {
						add(form)
					}
				}
			}
		}
	}
	if len(seen) == 0 {
		return nil
	}
	variants := make([]string, 0, len(seen))
	for v := range seen {
		variants = append(variants, v)
	}
	// Longest first, so a secret containing another is masked whole.
	sort.Slice(variants, func(i, j int) bool {
		if len(variants[i]) != len(variants[j]) {
			return len(variants[i]) > len(variants[j])
		}
		return variants[i] < variants[j]
	})
	pairs := make([]string, 0, 2*len(variants))
	for _, v := range variants {
		pairs = append(pairs, v, Mask)
	}
	return &Masker{replacer: strings.NewReplacer(pairs...), variants: variants}
}

// encodings returns the encoded forms of s that may appear in output.
func encodings(s string) []string {
	var out []string
	b := []byte(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		out = append(out, enc.EncodeToString(b))
	}
	// Inside a longer base64 text the secret starts at offset 0, 1 or 2 of
	// a 3-byte group; the characters that depend only on the secret are
	// the same whatever surrounds it.
	for shift := 1; shift <= 2; shift++ {
		padded := append(make([]byte, shift), b...)
		for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
			e := enc.EncodeToString(padded)
			start := (shift*8 + 5) / 6 // first character free of the prefix
			end := len(e)
			if rem := (shift + len(b)) % 3; rem != 0 {
				end-- // the last character depends on what follows
			}
			if end-start >= minEncoded {
				out = append(out, e[start:end])
			}
		}
	}
	if e := base64.RawStdEncoding.EncodeToString(b); len(b)%3 != 0 && len(e) > minEncoded {
		out = append(out, e[:len(e)-1]) // followed by more text, the tail changes
	}
	if e := base64.RawURLEncoding.EncodeToString(b); len(b)%3 != 0 && len(e) > minEncoded {
		out = append(out, e[:len(e)-1])
	}
	out = append(out, url.QueryEscape(s), url.PathEscape(s))
	if q := url.QueryEscape(s); q != strings.ToLower(q) {
		out = append(out, lowerHexEscapes(q))
	}
	if j, err := json.Marshal(s); err == nil {
		out = append(out, string(j[1:len(j)-1]))
	}
	return out
}

// lowerHexEscapes lower-cases the hex digits of %XX escapes.
func lowerHexEscapes(s string) string {
	b := []byte(s)
	for i := 0; i+2 < len(b); i++ {
		if b[i] == '%' {
			b[i+1] = toLower(b[i+1])
			b[i+2] = toLower(b[i+2])
		}
	}
	return string(b)
}

func toLower(c byte) byte {
	if c >= 'A' && c <= 'F' {
		return c + 'a' - 'A'
	}
	return c
}

// String returns s with every secret masked.
func (m *Masker) String(s string) string {
	if m == nil {
		return s
	}
	return m.replacer.Replace(s)
}

// WriteString writes s with every secret masked to w. With a w that is an
// io.StringWriter and reused, it allocates nothing, unlike [Masker.String]:
// it suits a hot loop.
func (m *Masker) WriteString(w io.Writer, s string) (int, error) {
	if m == nil {
		return io.WriteString(w, s)
	}
	return m.replacer.WriteString(w, s)
}

// Value returns a copy of v with every secret masked in it, whatever the
// JSON type, as decoded JSON holds values: strings; the keys and values of
// map[string]any and the elements of []any, at every depth; and numbers
// (int64, int, float64, json.Number) and booleans, whose text is masked: a
// number whose text contains a secret becomes that text masked, a string
// (84213579 with the secret 84213579 becomes "****"). A float64 is checked
// in its plain ('f') and shortest ('g') forms. Values of other types are
// returned as they are.
func (m *Masker) Value(v any) any {
	if m == nil {
		return v
	}
	switch x := v.(type) {
	case string:
		return m.String(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = m.Value(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[m.String(k)] = m.Value(e)
		}
		return out
	case json.Number:
		if t, ok := m.changed(string(x)); ok {
			return t
		}
	case int64:
		if t, ok := m.changed(strconv.FormatInt(x, 10)); ok {
			return t
		}
	case int:
		if t, ok := m.changed(strconv.Itoa(x)); ok {
			return t
		}
	case float64:
		for _, format := range []byte{'f', 'g'} {
			if t, ok := m.changed(strconv.FormatFloat(x, format, -1, 64)); ok {
				return t
			}
		}
	case bool:
		if t, ok := m.changed(strconv.FormatBool(x)); ok {
			return t
		}
	}
	return v
}

// changed returns text masked, and whether masking changed it.
func (m *Masker) changed(text string) (string, bool) {
	masked := m.String(text)
	return masked, masked != text
}

// Error returns err with its message masked; errors.Is and errors.As still
// see the original chain. It returns err itself when nothing is masked.
func (m *Masker) Error(err error) error {
	if m == nil || err == nil {
		return err
	}
	msg := err.Error()
	masked := m.String(msg)
	if masked == msg {
		return err
	}
	return &maskedError{msg: masked, err: err}
}

type maskedError struct {
	msg string
	err error
}

func (e *maskedError) Error() string { return e.msg }
func (e *maskedError) Unwrap() error { return e.err }
