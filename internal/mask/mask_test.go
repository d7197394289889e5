package mask

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

const secret = "s3cr3t/Pa ss+wörd?&"

func TestForms(t *testing.T) {
	m := New(secret)
	enc := func(e *base64.Encoding) string { return e.EncodeToString([]byte(secret)) }
	jsonForm, _ := json.Marshal(secret)
	forms := map[string]string{
		"raw":               "token=" + secret + ";",
		"base64":            "x " + enc(base64.StdEncoding) + " y",
		"base64url":         enc(base64.URLEncoding),
		"base64 unpadded":   enc(base64.RawStdEncoding),
		"base64url raw":     enc(base64.RawURLEncoding),
		"query escaped":     "?p=" + url.QueryEscape(secret),
		"path escaped":      "/x/" + url.PathEscape(secret),
		"json escaped":      `{"p":` + string(jsonForm) + `}`,
		"basic auth header": "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+secret)),
		"embedded offset 1": base64.StdEncoding.EncodeToString([]byte("a" + secret + "zz")),
		"embedded offset 2": base64.StdEncoding.EncodeToString([]byte("ab" + secret + "z")),
		"embedded offset 0": base64.StdEncoding.EncodeToString([]byte("abc" + secret + "z")),
	}
	for name, text := range forms {
		t.Run(name, func(t *testing.T) {
			got := m.String(text)
			assert.Contains(t, got, Mask)
			assert.NotContains(t, got, secret)
			// No run of the secret's base64 long enough to decode it is left.
			for _, e := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
				assert.NotContains(t, got, e.EncodeToString([]byte(secret))[1:len(secret)])
			}
		})
	}
}

func TestMultiLineSecret(t *testing.T) {
	key := "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\r\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n-----END KEY-----"
	m := New(key)
	assert.Equal(t, "before **** after", m.String("before "+key+" after"))
	for _, line := range strings.Split(strings.ReplaceAll(key, "\r", ""), "\n") {
		assert.Equal(t, Mask, m.String(line), "each line of a multi-line secret alone")
	}
}

func TestOverlaps(t *testing.T) {
	m := New("abcd", "abcdefgh", "xyzw")
	assert.Equal(t, "****|****|****", m.String("abcdefgh|abcd|xyzw"))
	assert.Equal(t, "********", m.String("abcdxyzw"), "adjacent secrets")
	assert.Equal(t, "****ab", m.String("abcdab"))
}

func TestShortAndEmpty(t *testing.T) {
	assert.Nil(t, New("", ""))
	var m *Masker
	assert.Equal(t, "text", m.String("text"))
	short := New("ab")
	assert.Equal(t, "x****y", short.String("xaby"))
	assert.Equal(t, base64.StdEncoding.EncodeToString([]byte("ab")), short.String(base64.StdEncoding.EncodeToString([]byte("ab"))), "encodings of short secrets are left alone")
}

func TestUnchangedWithoutSecrets(t *testing.T) {
	m := New(secret)
	for _, s := range []string{"", "plain text", "s3cr3t", "Pa ss"} {
		assert.Equal(t, s, m.String(s))
	}
}

func TestValueAndError(t *testing.T) {
	m := New("hunter2")
	v := m.Value(map[string]any{"k": "pw=hunter2", "hunter2": []any{"hunter2", 3.0, nil}})
	assert.Equal(t, map[string]any{"k": "pw=****", "****": []any{"****", 3.0, nil}}, v)

	base := errors.New("boom")
	err := m.Error(fmt.Errorf("login hunter2 failed: %w", base))
	assert.Equal(t, "login **** failed: boom", err.Error())
	assert.ErrorIs(t, err, base)
	plain := errors.New("nothing secret")
	assert.Same(t, plain, m.Error(plain))
}

func FuzzString(f *testing.F) {
	f.Add("prefix", "s3cret-value", "suffix")
	f.Fuzz(func(t *testing.T, before, s, after string) {
		m := New(s)
		if m == nil {
			return
		}
		got := m.String(before + s + after)
		if strings.Contains(got, s) && !strings.Contains(Mask, s) {
			t.Fatalf("secret %q left in %q", s, got)
		}
	})
}

func BenchmarkString(b *testing.B) {
	line := strings.Repeat("log line with some ordinary words 1234567890 ", 3)[:99]
	for _, c := range []struct {
		name string
		m    *Masker
	}{{"3 secrets", New("hunter2hunter2", "ghp_0123456789abcdef", "p@ss word")}, {"none", nil}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				_ = c.m.String(line)
			}
		})
	}
}

func TestWriteStringMatchesString(t *testing.T) {
	m := New("hunter2hunter2", "p@ss word")
	for _, s := range []string{"", "nothing here", "a hunter2hunter2 b", "p@ss word\n", "aGFsZg==", "x" + base64.StdEncoding.EncodeToString([]byte("hunter2hunter2"))} {
		var b strings.Builder
		n, err := m.WriteString(&b, s)
		if err != nil || n != b.Len() || b.String() != m.String(s) {
			t.Errorf("WriteString(%q) = %q (%d, %v), String = %q", s, b.String(), n, err, m.String(s))
		}
	}
	var nilMasker *Masker
	var b strings.Builder
	if _, _ = nilMasker.WriteString(&b, "as is"); b.String() != "as is" {
		t.Errorf("a nil Masker wrote %q", b.String())
	}
}

func TestValueMasksNumbersByTheirText(t *testing.T) {
	m := New("84213579", "1.5e+300")
	tests := []struct {
		name string
		in   any
		want any
	}{
		{"int64 equal", int64(84213579), "****"},
		{"int64 containing", int64(-1842135790), "-1****0"},
		{"int64 without", int64(8421357), int64(8421357)},
		{"int", 84213579, "****"},
		{"json.Number", json.Number("184213579000000000000000"), "1****000000000000000"},
		{"json.Number without", json.Number("1.5"), json.Number("1.5")},
		{"float64 plain form", 84213579.25, "****.25"},
		{"float64 large", 8.4213579e30, "****00000000000000000000000"},
		{"float64 shortest form", 1.5e300, "****"},
		{"float64 without", 1.5, 1.5},
		{"bool without", true, true},
		{"nested", map[string]any{"a": []any{int64(84213579), map[string]any{"84213579": 2.5}}},
			map[string]any{"a": []any{"****", map[string]any{"****": 2.5}}}},
		{"other types untouched", map[string]string{"k": "84213579"}, map[string]string{"k": "84213579"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, m.Value(tt.in))
		})
	}
	var none *Masker
	assert.Equal(t, int64(84213579), none.Value(int64(84213579)))
}
