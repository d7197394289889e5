package logs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/lading-dev/lading/internal/isoduration"
	"github.com/lading-dev/lading/runner"
)

// MaxOutputsBytes bounds the outputs a run gathers: the sum, over the keys
// kept, of the key's length, the length of its value's JSON text as the
// script printed it, and 4 (the quotes, colon and comma of a JSON object).
// It is about the size of [runner.Result.Outputs] encoded as JSON.
//
// 1 MiB is the size of a message on the queues workflow engines pass task
// results through (Kafka's default max.message.bytes, which Kestra's Kafka
// backend uses, is 1 MB) and GitHub Actions' limit on a job's outputs (1 MB):
// outputs are for small values, files for data. It is also the longest
// line lading reads ([MaxLineBytes]), so one ::{...}:: line of outputs fits.
const MaxOutputsBytes = 1 << 20

// MaxOutputKeys bounds the number of output keys a run gathers. With
// [MaxOutputsBytes] it bounds the memory outputs take: a key costs about 100
// bytes of memory beside its text, so a megabyte of tiny values would
// otherwise take tens of megabytes.
const MaxOutputKeys = 10000

// maxWarnings is how many warnings about ::{...}:: lines a run keeps; the
// others are counted in one last warning.
const maxWarnings = 100

// maxMetrics is how many metric entries a run keeps; the others are counted
// in a warning.
const maxMetrics = 10000

// quoteMax is the most bytes of a key, name or value a warning quotes.
const quoteMax = 64

// output is one output value and what it counts towards MaxOutputsBytes.
type output struct {
	v    any
	size int
}

// warn records a warning about a ::{...}:: line, masked; past maxWarnings
// it only counts it.
func (s *Sink) warn(format string, args ...any) {
	if len(s.warns) >= maxWarnings+s.limitWarns {
		s.moreWarns++
		return
	}
	s.warns = append(s.warns, s.mask.String(fmt.Sprintf(format, args...)))
}

// limitWarn records a warning that a limit was reached. These are few (one
// per limit) and always kept.
func (s *Sink) limitWarn(format string, args ...any) {
	s.limitWarns++
	s.warns = append(s.warns, s.mask.String(fmt.Sprintf(format, args...)))
}

// quote returns s masked, cut to quoteMax bytes and quoted, for a warning.
// It masks before cutting so that no part of a secret is left.
func (s *Sink) quote(v string) string {
	v = s.mask.String(v)
	if len(v) > quoteMax {
		v = v[:quoteMax] + "..."
	}
	return strconv.Quote(v)
}

// shown is a JSON value as a warning shows it: a string quoted, anything
// else as its JSON text, masked and cut.
func (s *Sink) shown(raw json.RawMessage) string {
	var str string
	if len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, &str) == nil {
		return s.quote(str)
	}
	q := s.quote(string(raw))
	return q[1 : len(q)-1]
}

// parse reads the JSON of a ::{...}:: line. Each part (outputs, metrics,
// logs) is read on its own, and within metrics and logs each entry: what
// cannot be read becomes a warning naming it, and the rest is kept.
func (s *Sink) parse(stream runner.Stream, body []byte) {
	var parts map[string]json.RawMessage
	if err := json.Unmarshal(body, &parts); err != nil {
		s.warn("%s: ignored a ::{...}:: line that is not a JSON object: %v", stream, err)
		return
	}
	if raw, ok := parts["outputs"]; ok && !isNull(raw) {
		s.parseOutputs(stream, raw)
	}
	if raw, ok := parts["metrics"]; ok && !isNull(raw) {
		s.parseMetrics(stream, raw)
	}
	if raw, ok := parts["logs"]; ok && !isNull(raw) {
		s.parseLogs(stream, raw)
	}
}

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

// parseOutputs merges an outputs object, key by key in the order written,
// until MaxOutputsBytes or MaxOutputKeys: the key that does not fit and
// every later one are dropped. Each value is decoded once, numbers as
// json.Number first.
func (s *Sink) parseOutputs(stream runner.Stream, raw json.RawMessage) {
	if raw[0] != '{' {
		s.warn("%s: outputs: not an object; ignored", stream)
		return
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // the '{'
		s.warn("%s: outputs: %v; ignored", stream, err)
		return
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			s.warn("%s: outputs: %v; the rest ignored", stream, err)
			return
		}
		key, _ := tok.(string) // object keys are strings
		if s.outputsFull {
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return
			}
			s.outputsDropped++
			continue
		}
		start := dec.InputOffset() // before the colon
		var v any
		if err := dec.Decode(&v); err != nil {
			s.warn("%s: outputs: key %s: %v; the rest ignored", stream, s.quote(key), err)
			return
		}
		// The key, its quotes, the colon, the value as printed, a comma.
		s.setOutput(stream, key, v, len(key)+int(dec.InputOffset()-start)+3)
	}
}

// setOutput keeps v under key unless a limit is reached; size is what it
// counts towards MaxOutputsBytes.
func (s *Sink) setOutput(stream runner.Stream, key string, v any, size int) {
	total := s.outputsSize + size
	old, replaced := s.outputs[key]
	if replaced {
		total -= old.size
	}
	limit := ""
	switch {
	case total > MaxOutputsBytes:
		limit = "1 MiB"
	case !replaced && len(s.outputs) >= MaxOutputKeys:
		limit = fmt.Sprintf("%d keys", MaxOutputKeys)
	}
	if limit != "" {
		s.outputsFull = true
		s.outputsDropped++
		s.limitWarn("%s: outputs reached their limit of %s at key %s: it and every output after it are dropped", stream, limit, s.quote(key))
		return
	}
	s.outputs[key] = output{v: s.numbers(v), size: size}
	s.outputsSize = total
}

// numbers replaces, in place at every depth, each json.Number by an int64
// when it is an integer that fits, the json.Number itself (its exact text)
// when it is an integer that does not or a number beyond float64, and a
// float64 otherwise. A number whose text contains a secret becomes that
// text masked, a string.
func (s *Sink) numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		return s.number(string(x))
	case []any:
		for i, e := range x {
			x[i] = s.numbers(e)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = s.numbers(e)
		}
	}
	return v
}

func (s *Sink) number(text string) any {
	if masked := s.mask.String(text); masked != text {
		return masked
	}
	if !strings.ContainsAny(text, ".eE") {
		if i, err := strconv.ParseInt(text, 10, 64); err == nil {
			return i
		}
		return json.Number(text)
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return json.Number(text) // beyond float64
	}
	return f
}

// entries splits the JSON array raw of a ::{...}:: line's part what into
// its entries; anything else is a warning, and ok is false.
func (s *Sink) entries(stream runner.Stream, what string, raw json.RawMessage) (entries []json.RawMessage, ok bool) {
	if raw[0] != '[' || json.Unmarshal(raw, &entries) != nil {
		s.warn("%s: %s: not an array; ignored", stream, what)
		return nil, false
	}
	return entries, true
}

// parseMetrics reads a metrics array entry by entry.
func (s *Sink) parseMetrics(stream runner.Stream, raw json.RawMessage) {
	entries, ok := s.entries(stream, "metrics", raw)
	if !ok {
		return
	}
	for i, e := range entries {
		m, problem := s.readMetric(e)
		if problem != "" {
			name := ""
			if m.Name != "" {
				name = " (" + s.quote(m.Name) + ")"
			}
			s.warn("%s: metrics[%d]%s: %s; entry ignored", stream, i, name, problem)
			continue
		}
		if len(s.metrics) >= maxMetrics {
			if s.metricsDropped == 0 {
				s.limitWarn("%s: metrics reached their limit of %d entries at metrics[%d] (%s): it and every later one are dropped", stream, maxMetrics, i, s.quote(m.Name))
			}
			s.metricsDropped++
			continue
		}
		s.metrics = append(s.metrics, m)
	}
}

// readMetric reads one metric entry as Kestra's Jackson mapper does, and
// leniently: a name or tag value that is a number or a boolean is taken as
// its text; a counter's or gauge's value may be a number or a string
// holding one; a timer's value may be a number of seconds, a string
// holding one, or an ISO-8601 duration ("PT1.5S"). It returns what it read
// (the name, at least, once read) and the problem that makes the entry
// unreadable, if any.
func (s *Sink) readMetric(raw json.RawMessage) (runner.Metric, string) {
	var m runner.Metric
	var f map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &f) != nil {
		return m, "not an object"
	}
	if v, ok := f["name"]; ok && !isNull(v) {
		name, ok := scalarText(v)
		if !ok {
			return m, "name is not a string"
		}
		m.Name = name
	}
	if m.Name == "" {
		return m, "no name"
	}
	var typ string
	if v, ok := f["type"]; !ok || isNull(v) {
		return m, "no type"
	} else if json.Unmarshal(v, &typ) != nil || (typ != "counter" && typ != "timer" && typ != "gauge") {
		return m, fmt.Sprintf("type %s is not counter, timer or gauge", s.shown(v))
	}
	m.Type = typ
	v, ok := f["value"]
	if !ok || isNull(v) {
		return m, "no value"
	}
	var value float64
	if typ == "timer" {
		if value, ok = timerSeconds(v); !ok {
			return m, fmt.Sprintf("value %s is not a duration (seconds, or ISO-8601 like PT1.5S)", s.shown(v))
		}
	} else if value, ok = numberValue(v); !ok {
		return m, fmt.Sprintf("value %s is not a number", s.shown(v))
	}
	// Value is a float64, which cannot be masked: an entry whose value, as
	// printed or as a number, contains a secret is left out.
	for _, text := range []string{string(v), strconv.FormatFloat(value, 'f', -1, 64)} {
		if s.mask.String(text) != text {
			return m, "value holds a secret"
		}
	}
	m.Value = value
	if v, ok := f["tags"]; ok && !isNull(v) {
		var tags map[string]json.RawMessage
		if v[0] != '{' || json.Unmarshal(v, &tags) != nil {
			return m, "tags is not an object"
		}
		m.Tags = make(map[string]string, len(tags))
		keys := make([]string, 0, len(tags))
		for k := range tags {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			text, ok := scalarText(tags[k])
			if !ok {
				return m, fmt.Sprintf("tag %s is not a string, number or boolean", s.quote(k))
			}
			m.Tags[k] = text
		}
	}
	return m, ""
}

// scalarText returns a JSON string's value, or the text of a number or
// boolean, as Jackson coerces a scalar to a String.
func scalarText(raw json.RawMessage) (string, bool) {
	switch raw[0] {
	case '"':
		var str string
		err := json.Unmarshal(raw, &str)
		return str, err == nil
	case 't', 'f', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return string(raw), true
	}
	return "", false
}

// numberValue reads a JSON number, or a string holding one (surrounding
// spaces allowed), as a finite float64.
func numberValue(raw json.RawMessage) (float64, bool) {
	text := string(raw)
	if raw[0] == '"' {
		if json.Unmarshal(raw, &text) != nil {
			return 0, false
		}
		text = strings.TrimSpace(text)
	} else if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return 0, false
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return f, true
}

// timerSeconds reads a timer's value in seconds as Kestra's Duration
// deserializer does: a JSON number is seconds; a string is trimmed, then
// read as seconds when it holds only a sign, digits and dots, else as an
// ISO-8601 duration (as java.time.Duration.parse reads it) or Go duration.
func timerSeconds(raw json.RawMessage) (float64, bool) {
	if raw[0] != '"' {
		return numberValue(raw)
	}
	var text string
	if json.Unmarshal(raw, &text) != nil {
		return 0, false
	}
	text = strings.TrimSpace(text)
	if isDecimal(text) {
		f, err := strconv.ParseFloat(text, 64)
		return f, err == nil && !math.IsInf(f, 0)
	}
	d, err := isoduration.Parse(text) // also Go's form, "1m30s"
	return d.Seconds(), err == nil
}

// isDecimal reports whether s is an optional sign then digits and dots, the
// strings Kestra reads as seconds.
func isDecimal(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	return s != "" && strings.Trim(s, "0123456789.") == ""
}

// parseLogs reads a logs array entry by entry and passes each entry on as a
// line of kind LineLog with its level (INFO when it has none or one that
// is not Kestra's).
func (s *Sink) parseLogs(stream runner.Stream, raw json.RawMessage) {
	entries, ok := s.entries(stream, "logs", raw)
	if !ok {
		return
	}
	for i, e := range entries {
		var f map[string]json.RawMessage
		if e[0] != '{' || json.Unmarshal(e, &f) != nil {
			s.warn("%s: logs[%d]: not an object; entry ignored", stream, i)
			continue
		}
		level := slog.LevelInfo
		var unknown string // a level that is not one of Kestra's
		if v, ok := f["level"]; ok && !isNull(v) {
			var l string
			if json.Unmarshal(v, &l) != nil {
				s.warn("%s: logs[%d]: level %s is not a string; entry ignored", stream, i, s.shown(v))
				continue
			}
			if known, ok := kestraLevel(l); ok {
				level = known
			} else if l != "" {
				unknown = l
			}
		}
		var message string
		if v, ok := f["message"]; ok && !isNull(v) {
			text, ok := scalarText(v)
			if !ok {
				s.warn("%s: logs[%d]: message is not a string; entry ignored", stream, i)
				continue
			}
			message = text
		}
		if unknown != "" {
			s.warn("%s: logs[%d]: level %s is not one of TRACE, DEBUG, INFO, WARN, ERROR; logged at INFO", stream, i, s.quote(unknown))
		}
		if s.onLine != nil {
			s.onLine(runner.Line{Stream: stream, Text: s.mask.String(message), Time: s.now(), Kind: runner.LineLog, Level: level})
		}
	}
}

// kestraLevel reads the level of a log entry: one of SLF4J's levels, which
// Kestra's entries hold, in any case and with spaces around it allowed.
func kestraLevel(name string) (slog.Level, bool) {
	switch strings.ToUpper(strings.TrimSpace(name)) {
	case "TRACE":
		return runner.LevelTrace, true
	case "DEBUG":
		return slog.LevelDebug, true
	case "INFO":
		return slog.LevelInfo, true
	case "WARN":
		return slog.LevelWarn, true
	case "ERROR":
		return slog.LevelError, true
	}
	return 0, false
}
