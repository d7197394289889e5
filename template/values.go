package template

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"sync"

	"github.com/flosch/pongo2/v6"
)

// functionNames are the template functions lading offers.
var functionNames = []string{"secret"}

// functionHints say what to write instead of Kestra's functions that
// lading does not offer.
var functionHints = map[string]string{
	"now":         "templates render before the container starts; pass the time in Vars, or let the script ask: $(date -u +%Y-%m-%dT%H:%M:%SZ)",
	"read":        "templates cannot read files; give the file in InputFiles and read it in the script",
	"fromJson":    "decode JSON in the host program and pass the value in Vars",
	"json":        "json is a filter here: {{ x|json }}",
	"toJson":      "toJson is a filter here: {{ x|toJson }}",
	"kv":          "read the value in the host program and pass it in Vars",
	"render":      "templates are rendered once; pass the rendered value in Vars",
	"range":       "loop over a list from Vars: {% for x in inputs.list %}",
	"fileExists":  "test it in the script: [ -e file ]",
	"isFileEmpty": "test it in the script: [ -s file ]",
}

// number is a float64 of the variables. pongo2 prints floats with %f
// (2.000000); a number prints in the shortest form that reads back to the
// same float64, as encoding/json writes it: 2, 1.5, 1e+21.
type number float64

func (n number) String() string {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.FormatFloat(f, 'g', -1, 64)
	}
	b, _ := json.Marshal(f)
	return string(b)
}

// MarshalJSON writes the number as encoding/json writes a float64.
func (n number) MarshalJSON() ([]byte, error) { return json.Marshal(float64(n)) }

// boolean is a bool of the variables: it prints true and false, as JSON and
// Pebble write them (pongo2 writes True and False).
type boolean bool

func (b boolean) String() string { return strconv.FormatBool(bool(b)) }

// convertVars returns vars with every float64 and float32 (also inside
// map[string]any and []any) made a number, and every bool a boolean. Other
// values are shared, not copied: int64 and json.Number already render as
// written.
func convertVars(vars map[string]any) map[string]any {
	out := make(map[string]any, len(vars))
	for k, v := range vars {
		out[k] = convertValue(v)
	}
	return out
}

func convertValue(v any) any {
	switch v := v.(type) {
	case float64:
		return number(v)
	case float32:
		return number(v)
	case bool:
		return boolean(v)
	case map[string]any:
		return convertVars(v)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = convertValue(e)
		}
		return out
	}
	return v
}

// filterJSON is the json filter (Kestra's toJson): the value as compact
// JSON, <, > and & as they are.
func filterJSON(in, _ *pongo2.Value) (*pongo2.Value, *pongo2.Error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(in.Interface()); err != nil {
		return nil, &pongo2.Error{Sender: "filter:json", OrigError: fmt.Errorf("json: %w", err)}
	}
	return pongo2.AsValue(string(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))), nil
}

// lading's filters are registered in pongo2's filter table, which is global,
// once, by the first render. A program that registered a filter of the same
// name before keeps its own, and templates that use the name fail (see
// check.go).
var (
	registerOnce sync.Once
	foreign      map[string]bool // filter names another package registered first
)

var ladingFilters = map[string]pongo2.FilterFunction{"json": filterJSON, "toJson": filterJSON}

func registerFilters() {
	registerOnce.Do(func() {
		foreign = map[string]bool{}
		for name, fn := range ladingFilters {
			if pongo2.FilterExists(name) {
				foreign[name] = true
				continue
			}
			if err := pongo2.RegisterFilter(name, fn); err != nil {
				foreign[name] = true
			}
		}
	})
}
