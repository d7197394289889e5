// Package logs turns a task's raw output streams into lines: it splits them,
// counts them, passes them on to the task's writers and line callback, and
// reads Kestra-style ::{...}:: lines into outputs, metrics and log entries.
//
// Every runner feeds the bytes it receives from the engine into a [Sink]; the
// stream framing of the engine (Docker's 8-byte headers, 16 KiB partial
// messages, chunks of any size) never shows in the lines, because the Sink
// splits on the bytes themselves.
//
// # ::{...}:: lines
//
// The JSON of such a line is read part by part (outputs, metrics, logs) and
// each metric and log entry on its own, leniently, as Kestra's Jackson
// mapper reads them: what cannot be read becomes a warning naming it, and
// the rest of the line is kept. Output numbers keep their type (int64,
// json.Number, float64). What is gathered is bounded ([MaxOutputKeys],
// [MaxOutputsBytes], 10,000 metrics, 100 warnings then a count), and masked
// whatever its JSON type. The documentation of [runner.Result] says all
// this to users.
//
// # Kinds and levels
//
// Each line gets the [runner.LineKind] and level Kestra would give it
// (PluginUtilsService.parseOut and DefaultLogConsumer): a ::{...}:: line
// is LineProtocol, a log entry LineLog at its SLF4J level, a line that is
// exactly ##kestra:log:debug## or ##kestra:log:info## LineMarker, which
// switches the level of the text lines after it, on both streams, to DEBUG
// or back to INFO (stdout) and ERROR (stderr). Lines are classified before
// they are masked. Unlike Kestra, the Sink passes every line on and counts
// it; the doc of [runner.Line] says so to users.
package logs

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/lading-dev/lading/internal/mask"
	"github.com/lading-dev/lading/runner"
)

// MaxLineBytes bounds the memory one unterminated line may hold. A line longer
// than this is delivered in pieces of MaxLineBytes, each counted as a line.
const MaxLineBytes = 1 << 20

// Sink receives a run's output. It is safe for concurrent use: the writers of
// both streams may be driven from different goroutines; their lines are
// handled one at a time.
type Sink struct {
	mu      sync.Mutex
	onLine  func(runner.Line)
	mask    *mask.Masker
	now     func() time.Time
	streams [2]streamWriter
	debug   bool // a ##kestra:log:debug## line was the last marker: text is DEBUG

	outputs        map[string]output
	outputsSize    int  // what the outputs kept count towards MaxOutputsBytes
	outputsFull    bool // a key did not fit: it and every later one are dropped
	outputsDropped int
	metrics        []runner.Metric
	metricsDropped int
	warns          []string
	limitWarns     int // warnings in warns about a limit reached, beyond maxWarnings
	moreWarns      int // warnings not kept
}

// New returns a Sink that passes lines on to stdout, stderr and onLine; any of
// them may be nil. With a non-nil masker, secrets are masked in everything
// the Sink passes on or gathers.
func New(stdout, stderr io.Writer, onLine func(runner.Line), masker *mask.Masker) *Sink {
	s := &Sink{onLine: onLine, mask: masker, now: time.Now, outputs: map[string]output{}}
	s.streams[0] = streamWriter{sink: s, stream: runner.Stdout, out: stdout}
	s.streams[1] = streamWriter{sink: s, stream: runner.Stderr, out: stderr}
	return s
}

// Writer returns the io.Writer that takes the raw bytes of one stream.
func (s *Sink) Writer(stream runner.Stream) io.Writer {
	if stream == runner.Stderr {
		return &s.streams[1]
	}
	return &s.streams[0]
}

// Close delivers a last line that had no terminator on each stream. It
// returns the first error a writer returned, if any.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var first error
	for i := range s.streams {
		w := &s.streams[i]
		if len(w.buf) > 0 {
			w.emit(w.buf, w.buf)
			w.buf = w.buf[:0]
		}
		if first == nil {
			first = w.err
		}
	}
	return first
}

// Fill copies what the sink gathered into res, every string, number and key
// of it masked. Call it once, after Close.
func (s *Sink) Fill(res *runner.Result) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res.Outputs = make(map[string]any, len(s.outputs))
	for k, o := range s.outputs {
		res.Outputs[s.mask.String(k)] = s.mask.Value(o.v)
	}
	res.Metrics = s.metrics
	if s.mask != nil {
		for i, m := range s.metrics {
			m.Name = s.mask.String(m.Name)
			m.Type = s.mask.String(m.Type)
			if m.Tags != nil {
				tags := make(map[string]string, len(m.Tags))
				for k, v := range m.Tags {
					tags[s.mask.String(k)] = s.mask.String(v)
				}
				m.Tags = tags
			}
			res.Metrics[i] = m
		}
	}
	res.Warnings = append(res.Warnings, s.warns...) // masked when made
	if s.moreWarns > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d more warnings about ::{...}:: lines not shown", s.moreWarns))
	}
	if s.outputsDropped > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d output values dropped in all by the outputs limit", s.outputsDropped))
	}
	if s.metricsDropped > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d metrics dropped in all by the metrics limit", s.metricsDropped))
	}
	res.StdoutLines = s.streams[0].lines
	res.StderrLines = s.streams[1].lines
}

type streamWriter struct {
	sink      *Sink
	stream    runner.Stream
	out       io.Writer
	err       error // first error of out; later writes to out are skipped
	buf       []byte
	pendingCR bool // the last byte seen was '\r': a '\n' right after it belongs to it
	lines     int
	masked    appender // scratch for the masked line, reused
}

// appender is an io.Writer and io.StringWriter that appends to its slice.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error)       { a.b = append(a.b, p...); return len(p), nil }
func (a *appender) WriteString(s string) (int, error) { a.b = append(a.b, s...); return len(s), nil }

// Write splits p into lines. It never fails: an error of the task's writer is
// kept for Close, so the engine's stream is always drained.
func (w *streamWriter) Write(p []byte) (int, error) {
	n := len(p)
	w.sink.mu.Lock()
	defer w.sink.mu.Unlock()
	if w.pendingCR && len(p) > 0 {
		w.pendingCR = false
		if p[0] == '\n' {
			w.pass(p[:1])
			p = p[1:]
		}
	}
	for len(p) > 0 {
		end, term := lineEnd(p)
		if end < 0 {
			w.buffer(p)
			break
		}
		if term == 1 && p[end] == '\r' && end+1 == len(p) {
			w.pendingCR = true
		}
		full := p[:end+term]
		if len(w.buf) > 0 {
			w.buf = append(w.buf, full...)
			w.emit(w.buf[:len(w.buf)-term], w.buf)
			w.buf = w.buf[:0]
		} else {
			w.emit(p[:end], full)
		}
		p = p[end+term:]
	}
	return n, nil
}

// lineEnd finds the first terminator in p: its index and length (2 for
// "\r\n", else 1), or -1.
func lineEnd(p []byte) (int, int) {
	nl := bytes.IndexByte(p, '\n')
	scope := p
	if nl >= 0 {
		scope = p[:nl]
	}
	if cr := bytes.IndexByte(scope, '\r'); cr >= 0 {
		if cr+1 == nl {
			return cr, 2
		}
		return cr, 1
	}
	return nl, 1
}

// buffer keeps an unterminated tail, emitting it in pieces once it passes
// MaxLineBytes.
func (w *streamWriter) buffer(p []byte) {
	for len(w.buf)+len(p) > MaxLineBytes {
		take := MaxLineBytes - len(w.buf)
		w.buf = append(w.buf, p[:take]...)
		w.emit(w.buf, w.buf)
		w.buf = w.buf[:0]
		p = p[take:]
	}
	w.buf = append(w.buf, p...)
}

// emit handles one line: line is its text, raw (which starts with line) the
// bytes to pass on. The line is classified (::{...}:: line, level marker,
// text) and given its level from its unmasked text.
func (w *streamWriter) emit(line, raw []byte) {
	w.lines++
	s := w.sink
	body, protocol := marker(line)
	kind := runner.LineText
	switch {
	case protocol:
		kind = runner.LineProtocol
	case string(line) == debugMarker || string(line) == infoMarker:
		kind = runner.LineMarker
	}
	level := s.textLevel(w.stream)
	if kind == runner.LineMarker {
		s.debug = string(line) == debugMarker
	}
	var text string // line as a string, made once
	if s.mask != nil {
		// Secrets are masked line by line: a secret split across writes or
		// frames is whole here. Outputs are parsed from the unmasked line
		// and masked when gathered, so the JSON stays valid.
		rawText := string(raw)
		w.masked.b = w.masked.b[:0]
		_, _ = s.mask.WriteString(&w.masked, rawText) // an appender never fails
		if !bytes.Equal(w.masked.b, raw) {
			w.pass(w.masked.b)
			if s.onLine != nil {
				s.onLine(runner.Line{Stream: w.stream, Text: s.mask.String(string(line)), Time: s.now(), Kind: kind, Level: level})
			}
			if protocol {
				s.parse(w.stream, body)
			}
			return
		}
		text = rawText[:len(line)] // no secret in raw: none in line
	}
	w.pass(raw)
	if s.onLine != nil {
		if s.mask == nil {
			text = string(line)
		}
		s.onLine(runner.Line{Stream: w.stream, Text: text, Time: s.now(), Kind: kind, Level: level})
	}
	if protocol {
		s.parse(w.stream, body)
	}
}

// The lines that switch the level of text lines, as Kestra's
// DefaultLogConsumer reads them: exactly these, on either stream.
const (
	debugMarker = "##kestra:log:debug##"
	infoMarker  = "##kestra:log:info##"
)

// textLevel is the level Kestra logs a text line of stream at now: DEBUG
// after a debug marker, else INFO for stdout and ERROR for stderr. Kestra's
// debug mode is one flag for both streams; its tests check stdout lines in
// it, and lading gives stderr lines DEBUG there too.
func (s *Sink) textLevel(stream runner.Stream) slog.Level {
	switch {
	case s.debug:
		return slog.LevelDebug
	case stream == runner.Stderr:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (w *streamWriter) pass(raw []byte) {
	if w.out == nil || w.err != nil {
		return
	}
	if _, err := w.out.Write(raw); err != nil {
		w.err = fmt.Errorf("write %s: %w", w.stream, err)
	}
}

// marker reports whether line is a ::{...}:: line and returns the JSON in it.
func marker(line []byte) ([]byte, bool) {
	if len(line) < 6 || (line[0] != ':' && line[0] != ' ' && line[0] != '\t') {
		return nil, false
	}
	t := bytes.TrimSpace(line)
	if len(t) < 6 || !bytes.HasPrefix(t, []byte("::{")) || !bytes.HasSuffix(t, []byte("}::")) {
		return nil, false
	}
	return t[2 : len(t)-2], true
}
