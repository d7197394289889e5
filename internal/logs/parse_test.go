package logs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/lading-dev/lading/internal/mask"
	"github.com/lading-dev/lading/runner"
)

// feedMasked is feed with a masker: it returns the log entries re-emitted
// (lines of Kind LineLog) and the result.
func feedMasked(t *testing.T, masker *mask.Masker, lines ...string) ([]runner.Line, *runner.Result) {
	t.Helper()
	var logged []runner.Line
	s := New(io.Discard, nil, func(l runner.Line) {
		if l.Kind == runner.LineLog {
			logged = append(logged, l)
		}
	}, masker)
	w := s.Writer(runner.Stdout)
	for _, l := range lines {
		_, err := w.Write([]byte(l + "\n"))
		require.NoError(t, err)
	}
	require.NoError(t, s.Close())
	res := &runner.Result{}
	s.Fill(res)
	return logged, res
}

func TestOutputNumbersKeepTheirType(t *testing.T) {
	_, res := feedMasked(t, nil, `::{"outputs":{"n":2,"neg":-3,"zero":0,"big":9007199254740993,"max":9223372036854775807,`+
		`"over":9223372036854775808,"huge":-123456789012345678901234567890,"f":1.5,"e":1e3,"E":2.5E-1,"inf":1e400,`+
		`"nested":{"a":[1,2.5,{"b":7,"c":[90071992547409930]}]},"s":"2","t":true}}::`)
	assert.Equal(t, map[string]any{
		"n": int64(2), "neg": int64(-3), "zero": int64(0),
		"big":  int64(9007199254740993),
		"max":  int64(9223372036854775807),
		"over": json.Number("9223372036854775808"),
		"huge": json.Number("-123456789012345678901234567890"),
		"f":    1.5, "e": float64(1000), "E": 0.25,
		"inf": json.Number("1e400"),
		"nested": map[string]any{"a": []any{int64(1), 2.5, map[string]any{
			"b": int64(7), "c": []any{int64(90071992547409930)}}}},
		"s": "2", "t": true,
	}, res.Outputs)
	assert.Empty(t, res.Warnings)
}

func TestMaskingEveryValueType(t *testing.T) {
	const num = "84213579"
	m := mask.New(num, "hunter2hunter2")
	logged, res := feedMasked(t, m,
		`::{"outputs":{"p":84213579,"q":184213579,"f":1.84213579e3,"arr":[84213579,{"deep":-84213579.5}],"ok":12,"84213579":1}}::`,
		`::{"metrics":[{"name":"rows","type":"counter","value":1,"tags":{"t":84213579,"u":"hunter2hunter2","hunter2hunter2":"k"}}]}::`,
		`::{"metrics":[{"name":"hunter2hunter2","type":"counter","value":2}]}::`,
		`::{"metrics":[{"name":"x","type":"hunter2hunter2","value":1}]}::`,
		`::{"metrics":[{"name":"n","type":"counter","value":84213579}]}::`,
		`::{"metrics":[{"name":"n","type":"counter","value":"x84213579"}]}::`,
		`::{"logs":[{"level":"hunter2hunter2","message":84213579}]}::`,
	)
	assert.Equal(t, map[string]any{
		"p": "****", "q": "1****", "f": "1.****e3",
		"arr":  []any{"****", map[string]any{"deep": "-****.5"}},
		"ok":   int64(12),
		"****": int64(1),
	}, res.Outputs)
	require.Len(t, res.Metrics, 2, "an entry whose value or type holds a secret is not handed back")
	assert.Equal(t, map[string]string{"t": "****", "u": "****", "****": "k"}, res.Metrics[0].Tags)
	assert.Equal(t, runner.Metric{Name: "****", Type: "counter", Value: 2}, res.Metrics[1])
	require.Len(t, logged, 1)
	assert.Equal(t, "****", logged[0].Text)
	assert.Equal(t, slog.LevelInfo, logged[0].Level, "a level that is not one of Kestra's is INFO")
	all := fmt.Sprint(res.Outputs, res.Metrics, res.Warnings, logged)
	assert.NotContains(t, all, num)
	assert.NotContains(t, all, "hunter2hunter2")
	assert.Len(t, res.Warnings, 4, "one per entry left out, one for the level: %q", res.Warnings)
}

func TestMetricsReadLeniently(t *testing.T) {
	_, res := feedMasked(t, nil,
		`::{"outputs":{"kept":true},"metrics":[`+
			`{"name":"a","type":"counter","value":"5"},`+
			`{"name":"b","type":"timer","value":"PT1.5S"},`+
			`{"name":"c","type":"timer","value":2},`+
			`{"name":"d","type":"timer","value":0.25},`+
			`{"name":"e","type":"timer","value":" 1.5 "},`+
			`{"name":"f","type":"timer","value":"P1DT1H2M3.5S"},`+
			`{"name":"g","type":"timer","value":"-pt1m"},`+
			`{"name":"h","type":"counter","value":1,"tags":{"n":3,"f":1.50,"b":false,"s":"x"}},`+
			`{"name":7,"type":"gauge","value":" -2.5e1 "},`+
			`{"name":"bad","type":"counter","value":"abc"},`+
			`{"name":"bad2","type":"timer","value":"1 hour"},`+
			`{"name":"bad3","type":"meter","value":1},`+
			`{"type":"counter","value":1},`+
			`{"name":"bad5","type":"counter"},`+
			`{"name":"bad6","type":"counter","value":1,"tags":{"o":{"x":1}}},`+
			`{"name":"bad7","type":"counter","value":"NaN"},`+
			`"not an object",`+
			`{"name":"last","type":"counter","value":1}`+
			`]}::`)
	assert.Equal(t, map[string]any{"kept": true}, res.Outputs, "outputs are kept whatever the metrics hold")
	assert.Equal(t, []runner.Metric{
		{Name: "a", Type: "counter", Value: 5},
		{Name: "b", Type: "timer", Value: 1.5},
		{Name: "c", Type: "timer", Value: 2},
		{Name: "d", Type: "timer", Value: 0.25},
		{Name: "e", Type: "timer", Value: 1.5},
		{Name: "f", Type: "timer", Value: 86400 + 3600 + 120 + 3.5},
		{Name: "g", Type: "timer", Value: -60},
		{Name: "h", Type: "counter", Value: 1, Tags: map[string]string{"n": "3", "f": "1.50", "b": "false", "s": "x"}},
		{Name: "7", Type: "gauge", Value: -25},
		{Name: "last", Type: "counter", Value: 1},
	}, res.Metrics)
	require.Len(t, res.Warnings, 8, "%q", res.Warnings)
	for i, want := range []string{
		`metrics[9] ("bad"): value "abc"`,
		`metrics[10] ("bad2"): value "1 hour"`,
		`metrics[11] ("bad3"): type "meter"`,
		`metrics[12]: no name`,
		`metrics[13] ("bad5"): no value`,
		`metrics[14] ("bad6"): tag "o"`,
		`metrics[15] ("bad7"): value "NaN"`,
		`metrics[16]: not an object`,
	} {
		assert.Contains(t, res.Warnings[i], want)
		assert.Contains(t, res.Warnings[i], "stdout")
	}
}

func TestEachPartReadOnItsOwn(t *testing.T) {
	logged, res := feedMasked(t, nil,
		`::{"outputs":[1],"metrics":[{"name":"a","type":"counter","value":1}],"logs":[{"message":"m"}]}::`,
		`::{"outputs":{"o":1},"metrics":{"name":"a"},"logs":"x"}::`,
		`::{"outputs":{"p":1},"logs":[{"level":"WARN","message":"w"},{"message":5},{"level":3,"message":"bad"},{"message":{"x":1}},{"level":null,"message":null},7]}::`,
		`::{"OUTPUTS":{"ignored":1},"other":1}::`,
	)
	assert.Equal(t, map[string]any{"o": int64(1), "p": int64(1)}, res.Outputs)
	assert.Equal(t, []runner.Metric{{Name: "a", Type: "counter", Value: 1}}, res.Metrics)
	var got []string
	for _, l := range logged {
		got = append(got, l.Level.String()+":"+l.Text)
	}
	assert.Equal(t, []string{"INFO:m", "WARN:w", "INFO:5", "INFO:"}, got)
	require.Len(t, res.Warnings, 6, "%q", res.Warnings)
	for i, want := range []string{`outputs: not an object`, `metrics: not an array`, `logs: not an array`,
		`logs[2]: level`, `logs[3]: message`, `logs[5]: not an object`} {
		assert.Contains(t, res.Warnings[i], want)
	}
}

func TestWarningsCapped(t *testing.T) {
	const size = 16 << 20
	line := "::{x}::\n"
	chunk := []byte(strings.Repeat(line, 32<<10/len(line)))
	s := New(nil, nil, nil, nil)
	w := s.Writer(runner.Stdout)
	for n := 0; n < size; n += len(chunk) {
		_, _ = w.Write(chunk)
	}
	require.NoError(t, s.Close())
	res := &runner.Result{}
	s.Fill(res)
	require.Len(t, res.Warnings, maxWarnings+1)
	assert.Contains(t, res.Warnings[0], "not a JSON object")
	lines := size / len(line)
	assert.Equal(t, fmt.Sprintf("%d more warnings about ::{...}:: lines not shown", lines-maxWarnings), res.Warnings[maxWarnings])
	assert.Equal(t, lines, res.StdoutLines, "every line is still counted")
}

func TestOutputsCapped(t *testing.T) {
	value := strings.Repeat("v", 200)
	tests := []struct {
		name   string
		line   func(i int) string
		keys   int
		limit  string
		maxLen int // of Result.Outputs as JSON
	}{
		{"keys", func(i int) string { return fmt.Sprintf(`::{"outputs":{"k%07d":%d}}::`, i, i) }, 1_000_000, "10000 keys", MaxOutputsBytes},
		{"bytes", func(i int) string { return fmt.Sprintf(`::{"outputs":{"k%07d":"%s"}}::`, i, value) }, 10_000, "1 MiB", MaxOutputsBytes},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out newlines
			var lines int
			s := New(&out, nil, func(runner.Line) { lines++ }, nil)
			w := s.Writer(runner.Stdout)
			for i := range tt.keys {
				_, _ = io.WriteString(w, tt.line(i)+"\n")
			}
			// A key already kept is not replaced once a limit is reached.
			_, _ = w.Write([]byte(`::{"outputs":{"k0000000":"late"}}::` + "\n"))
			require.NoError(t, s.Close())
			res := &runner.Result{}
			s.Fill(res)
			encoded, err := json.Marshal(res.Outputs)
			require.NoError(t, err)
			assert.LessOrEqual(t, len(encoded), tt.maxLen)
			assert.LessOrEqual(t, len(res.Outputs), MaxOutputKeys)
			assert.Greater(t, len(encoded), MaxOutputsBytes/100, "outputs up to the limit are kept")
			assert.NotEqual(t, "late", res.Outputs["k0000000"])
			kept := len(res.Outputs)
			for i := range kept {
				if _, ok := res.Outputs[fmt.Sprintf("k%07d", i)]; !ok {
					t.Fatalf("key %d of the %d before the limit is missing", i, kept)
				}
			}
			require.Len(t, res.Warnings, 2, "%q", res.Warnings)
			assert.Equal(t, fmt.Sprintf(`stdout: outputs reached their limit of %s at key "k%07d": it and every output after it are dropped`, tt.limit, kept), res.Warnings[0])
			assert.Equal(t, fmt.Sprintf("%d output values dropped in all by the outputs limit", tt.keys-kept+1), res.Warnings[1])
			assert.Equal(t, tt.keys+1, lines, "every line still reaches OnLine")
			assert.Equal(t, tt.keys+1, int(out), "and Stdout")
		})
	}
	t.Run("replacing a key counts once", func(t *testing.T) {
		_, res := feedMasked(t, nil, strings.Repeat(`::{"outputs":{"k":"`+strings.Repeat("x", 1000)+`"}}::`+"\n", 3000))
		assert.Empty(t, res.Warnings)
		assert.Len(t, res.Outputs, 1)
	})
}

// newlines counts the newlines written to it.
type newlines int

func (n *newlines) Write(p []byte) (int, error) {
	*n += newlines(bytes.Count(p, []byte("\n")))
	return len(p), nil
}

func TestMetricsCapped(t *testing.T) {
	s := New(nil, nil, nil, nil)
	w := s.Writer(runner.Stdout)
	for range maxMetrics + 5 {
		_, _ = w.Write([]byte(`::{"metrics":[{"name":"m","type":"counter","value":1}]}::` + "\n"))
	}
	require.NoError(t, s.Close())
	res := &runner.Result{}
	s.Fill(res)
	assert.Len(t, res.Metrics, maxMetrics)
	require.Len(t, res.Warnings, 2)
	assert.Contains(t, res.Warnings[0], "metrics reached their limit")
	assert.Equal(t, "5 metrics dropped in all by the metrics limit", res.Warnings[1])
}

func TestTimerSeconds(t *testing.T) {
	tests := []struct {
		in   string // JSON
		want float64
		ok   bool
	}{
		{`2`, 2, true},
		{`0.25`, 0.25, true},
		{`-1`, -1, true},
		{`"1.5"`, 1.5, true},
		{`" +3 "`, 3, true},
		{`"PT1.5S"`, 1.5, true},
		{`"PT0S"`, 0, true},
		{`"P2D"`, 172800, true},
		{`"PT-1.5S"`, -1.5, true},
		{`"-PT-1M"`, 60, true},
		{`"pt10m"`, 600, true},
		{`"PT1,25S"`, 1.25, true},
		{`"PT1H-2M"`, 3480, true},
		{`"1m30s"`, 90, true},
		{`"PT.5S"`, 0, false},
		{`"PT"`, 0, false},
		{`"P"`, 0, false},
		{`"P1Y"`, 0, false},
		{`"PT1.1234567891S"`, 0, false},
		{`"1.2.3"`, 0, false},
		{`"-"`, 0, false},
		{`""`, 0, false},
		{`"P999999999D"`, 0, false},
		{`true`, 0, false},
		{`1e400`, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := timerSeconds(json.RawMessage(tt.in))
			assert.Equal(t, tt.ok, ok)
			assert.InDelta(t, tt.want, got, 1e-9)
		})
	}
}

func FuzzMarker(f *testing.F) {
	for _, s := range []string{
		`::{"outputs":{"a":1,"b":[1.5,{"c":"x"}],"n":null}}::`,
		`::{"metrics":[{"name":"a","type":"timer","value":"PT1.5S","tags":{"t":1}}]}::`,
		`::{"logs":[{"level":"WARN","message":"m"},{"message":5}]}::`,
		`::{"outputs":[1],"metrics":{},"logs":"x"}::`,
		`::{x}::`,
		`::{"outputs":{"p":84213579}}::`,
	} {
		f.Add(s)
	}
	m := mask.New("84213579", "secret-value")
	f.Fuzz(func(t *testing.T, line string) {
		var texts []string
		s := New(io.Discard, nil, func(l runner.Line) { texts = append(texts, l.Text, l.Level.String(), l.Kind.String()) }, m)
		_, _ = s.Writer(runner.Stdout).Write([]byte(line + "\n"))
		_ = s.Close()
		res := &runner.Result{}
		s.Fill(res)
		all := fmt.Sprint(res.Outputs, res.Metrics, res.Warnings, texts)
		for _, secret := range []string{"84213579", "secret-value"} {
			if strings.Contains(all, secret) {
				t.Fatalf("secret %q handed back for %q: %s", secret, line, all)
			}
		}
		if len(res.Warnings) > maxWarnings+3 {
			t.Fatalf("%d warnings for one line", len(res.Warnings))
		}
		if _, err := json.Marshal(res); err != nil {
			t.Fatalf("result does not encode: %v", err)
		}
		walk(t, res.Outputs)
	})
}

// walk fails on a value of a type outputs never hold.
func walk(t *testing.T, v any) {
	switch x := v.(type) {
	case nil, string, bool, int64, float64, json.Number:
	case []any:
		for _, e := range x {
			walk(t, e)
		}
	case map[string]any:
		for _, e := range x {
			walk(t, e)
		}
	default:
		t.Fatalf("output value of type %T", v)
	}
}

// BenchmarkMarker is one ::{...}:: line of outputs, a metric and a log
// entry, read and gathered, with three secrets masked.
func BenchmarkMarker(b *testing.B) {
	line := []byte(`::{"outputs":{"rows":1200,"status":"ok","ratio":0.75,"files":["a.csv","b.csv"]},` +
		`"metrics":[{"name":"rows","type":"counter","value":1200,"tags":{"table":"t"}}],` +
		`"logs":[{"level":"INFO","message":"done"}]}::` + "\n")
	b.SetBytes(int64(len(line)))
	s := New(io.Discard, nil, func(runner.Line) {}, mask.New("hunter2hunter2", "ghp_0123456789abcdef", "p@ss word"))
	w := s.Writer(runner.Stdout)
	for b.Loop() {
		_, _ = w.Write(line)
		s.metrics = s.metrics[:0] // stay under the metrics limit
	}
}
