package docker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lading-dev/lading/internal/jsontext"
	"github.com/lading-dev/lading/internal/suggest"
	"github.com/lading-dev/lading/runner"
)

// The JSON form of a Config is read property by property, not with
// encoding/json's struct decoding, whose names match in any case
// ("pullpolicy" is pullPolicy) and whose errors name Go types. Names match
// the json tags exactly, at every level (Kestra's spelling); an unknown name
// is refused with the nearest known one suggested; every error is a
// *runner.FieldError naming the property's path ("deviceRequests[0].count")
// and the value as written. encoding/json/v2 matches names exactly, but Go
// 1.26 still needs GOEXPERIMENT=jsonv2 for it, which a library cannot ask of
// the programs that import it.

// fieldDecoder is a value that reads its own JSON and says what is wrong
// with it without knowing its field's name; the decoder names the field.
type fieldDecoder interface {
	decodeJSON(raw []byte) (problem string)
}

// hiddenProperty says whether errors never quote the value of the property
// at path, nor anything inside it: they hold secrets.
func hiddenProperty(path string) bool { return path == "credentials" || path == "config" }

// maxShown bounds how much of a bad value an error quotes.
const maxShown = 100

// decodeObject decodes the JSON object data into the struct v, which must
// be addressable. path is the object's own path ("" at the top, "credentials",
// "deviceRequests[0]"); hidden says the object holds secrets, whose values
// are never quoted.
func decodeObject(data []byte, v reflect.Value, path string, hidden bool) error {
	data = bytes.TrimSpace(data)
	if string(data) == "null" {
		return nil
	}
	if len(data) == 0 || data[0] != '{' {
		return fieldError(path, data, hidden, "must be a JSON object")
	}
	var props map[string]json.RawMessage
	if err := json.Unmarshal(data, &props); err != nil {
		return fieldError(path, data, hidden, "must be an object")
	}
	fields := jsonFields(v.Type())
	for _, key := range slices.Sorted(maps.Keys(props)) {
		at := join(path, key)
		index, ok := fields.index[key]
		if !ok {
			problem := "unknown property"
			if near := suggest.Nearest(key, fields.names); near != "" {
				problem += "; did you mean " + near + "?"
				if strings.EqualFold(near, key) {
					problem += " (names are case-sensitive)"
				}
			} else if path != "" {
				problem += " (the properties are " + strings.Join(fields.names, ", ") + ")"
			}
			return &runner.FieldError{Field: at, Problem: problem, Err: runner.ErrInvalidConfig}
		}
		if err := decodeValue(props[key], v.FieldByIndex(index), at, hidden || hiddenProperty(at)); err != nil {
			return err
		}
	}
	return nil
}

// decodeValue decodes one property's value into v.
func decodeValue(raw []byte, v reflect.Value, path string, hidden bool) error {
	raw = bytes.TrimSpace(raw)
	if d, ok := v.Addr().Interface().(fieldDecoder); ok {
		if problem := d.decodeJSON(raw); problem != "" {
			return fieldError(path, raw, hidden, problem)
		}
		return nil
	}
	if u, ok := v.Addr().Interface().(json.Unmarshaler); ok && v.Kind() == reflect.Struct {
		// cpu.Config and memory.Config read themselves and name their
		// fields in their errors.
		if err := u.UnmarshalJSON(raw); err != nil {
			var fe *runner.FieldError
			if errors.As(err, &fe) {
				return err
			}
			return fieldError(path, raw, hidden, err.Error())
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		if string(raw) == "null" {
			v.SetZero()
			return nil
		}
		elem := reflect.New(v.Type().Elem())
		if err := decodeValue(raw, elem.Elem(), path, hidden); err != nil {
			return err
		}
		v.Set(elem)
		return nil
	case reflect.Struct:
		return decodeObject(raw, v, path, hidden)
	case reflect.Slice:
		if string(raw) == "null" {
			v.SetZero()
			return nil
		}
		var items []json.RawMessage
		if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &items) != nil {
			return fieldError(path, raw, hidden, "must be "+kindOf(v.Type()))
		}
		out := reflect.MakeSlice(v.Type(), len(items), len(items))
		for i, item := range items {
			at := fmt.Sprintf("%s[%d]", path, i)
			var err error
			if v.Type().Elem().Kind() == reflect.Struct {
				err = decodeObject(item, out.Index(i), at, hidden)
			} else {
				err = decodeValue(item, out.Index(i), at, hidden)
			}
			if err != nil {
				return err
			}
		}
		v.Set(out)
		return nil
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			break
		}
		if string(raw) == "null" {
			v.SetZero()
			return nil
		}
		var props map[string]json.RawMessage
		if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &props) != nil {
			return fieldError(path, raw, hidden, "must be "+kindOf(v.Type()))
		}
		out := reflect.MakeMapWithSize(v.Type(), len(props))
		for _, key := range slices.Sorted(maps.Keys(props)) {
			elem := reflect.New(v.Type().Elem()).Elem()
			if err := decodeValue(props[key], elem, join(path, key), hidden); err != nil {
				return err
			}
			out.SetMapIndex(reflect.ValueOf(key).Convert(v.Type().Key()), elem)
		}
		v.Set(out)
		return nil
	}
	if string(raw) == "null" {
		// As encoding/json: null leaves a scalar as it was.
		return nil
	}
	if problem := decodeScalar(raw, v); problem != "" {
		return fieldError(path, raw, hidden, problem)
	}
	return nil
}

// decodeScalar decodes a scalar property's value into v as Kestra's
// Jackson mapper reads a rendered property: a string property also takes a
// number or a boolean, as its text (user: 1000 is "1000"); a boolean also
// takes the string "true" or "false", in any case, spaces around it
// allowed; a whole number also takes a string holding one. Anything else
// ("yes", "1" for a boolean, 1.5 or "1e2" for a whole number, "" for
// either) is refused: it returns the problem.
func decodeScalar(raw []byte, v reflect.Value) string {
	if len(raw) == 0 {
		return "must be " + kindOf(v.Type())
	}
	problem := decodeScalarValue(raw, v)
	if text, _ := jsontext.Read(raw); problem != "" && raw[0] == '"' && strings.TrimSpace(text) == "" {
		problem += ", not an empty string (a template that rendered to nothing?)"
	}
	return problem
}

// decodeScalarValue is decodeScalar for a non-empty raw.
func decodeScalarValue(raw []byte, v reflect.Value) string {
	text, kind := jsontext.Read(raw)
	quoted := raw[0] == '"'
	literal := string(raw)
	switch v.Kind() {
	case reflect.String:
		switch {
		case kind == jsontext.Scalar:
			v.SetString(text)
		case literal == "true" || literal == "false":
			v.SetString(literal)
		default:
			return "must be " + kindOf(v.Type())
		}
	case reflect.Bool:
		t := literal
		if quoted {
			t = strings.ToLower(strings.TrimSpace(text))
		}
		switch t {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			return "must be true or false"
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(text), 10, 64)
		if kind != jsontext.Scalar || err != nil || v.OverflowInt(n) {
			return "must be " + kindOf(v.Type())
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(strings.TrimSpace(text), 10, 64)
		if kind != jsontext.Scalar || err != nil || v.OverflowUint(n) {
			return "must be a non-negative whole number"
		}
		v.SetUint(n)
	default:
		fresh := reflect.New(v.Type())
		if err := json.Unmarshal(raw, fresh.Interface()); err != nil {
			return "must be " + kindOf(v.Type())
		}
		v.Set(fresh.Elem())
	}
	return ""
}

// kindOf describes the JSON a Go type takes, for errors.
func kindOf(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Pointer:
		return kindOf(t.Elem())
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Slice:
		inner := strings.TrimPrefix(strings.TrimPrefix(kindOf(t.Elem()), "a "), "an ")
		return "a list of " + inner + "s"
	case reflect.Map:
		return "an object whose values are " + strings.TrimPrefix(kindOf(t.Elem()), "a ") + "s"
	}
	return "a " + t.String()
}

// fieldError reports a bad value, quoting it as written unless hidden.
func fieldError(path string, raw []byte, hidden bool, problem string) error {
	if path == "" {
		return fmt.Errorf("%w: a taskRunner block %s", runner.ErrInvalidConfig, problem)
	}
	value := ""
	if !hidden {
		value, _ = jsontext.Read(raw)
		if len(value) > maxShown {
			cut := maxShown
			for cut > 0 && !utf8.RuneStart(value[cut]) {
				cut--
			}
			value = value[:cut] + "..."
		}
	}
	return &runner.FieldError{Field: path, Value: value, Problem: problem, Err: runner.ErrInvalidConfig}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// structFields are a struct type's JSON property names, with embedded
// structs' fields promoted.
type structFields struct {
	index map[string][]int
	names []string // sorted
}

// jsonFields lists t's properties. Configs are parsed seldom, so nothing is
// cached.
func jsonFields(t reflect.Type) *structFields {
	f := &structFields{index: map[string][]int{}}
	var walk func(t reflect.Type, prefix []int)
	walk = func(t reflect.Type, prefix []int) {
		for i := range t.NumField() {
			sf := t.Field(i)
			tag, hasTag := sf.Tag.Lookup("json")
			name, _, _ := strings.Cut(tag, ",")
			index := append(slices.Clone(prefix), i)
			if sf.Anonymous && !hasTag && sf.Type.Kind() == reflect.Struct {
				walk(sf.Type, index)
				continue
			}
			if !sf.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			f.index[name] = index
			f.names = append(f.names, name)
		}
	}
	walk(t, nil)
	slices.Sort(f.names)
	return f
}

// maxDepth bounds how deep a block given as a map may nest: a taskRunner
// block is four levels deep at most, and a map that holds itself would
// never end.
const maxDepth = 32

// durationTypes are written as their Go form, not as a number of
// nanoseconds, which a duration property would read as seconds.
var durationTypes = []reflect.Type{reflect.TypeFor[time.Duration](), reflect.TypeFor[Duration]()}

// blockJSON writes a block decoded from a document (see
// [ParseConfigMapAllowing]) as JSON.
func blockJSON(block map[string]any) ([]byte, error) {
	return appendDocument(nil, reflect.ValueOf(block), "", 0)
}

// appendDocument appends the JSON of v, the value at path of a block.
func appendDocument(b []byte, v reflect.Value, path string, depth int) ([]byte, error) {
	if depth > maxDepth {
		return nil, documentError(path, "", fmt.Sprintf("is nested too deep (more than %d levels)", maxDepth))
	}
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) {
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		return append(b, "null"...), nil
	}
	if slices.Contains(durationTypes, v.Type()) {
		return strconv.AppendQuote(b, time.Duration(v.Int()).String()), nil
	}
	if n, ok := v.Interface().(json.Number); ok {
		if !json.Valid([]byte(n)) || n == "" || (n[0] != '-' && (n[0] < '0' || n[0] > '9')) {
			return nil, documentError(path, string(n), "is a json.Number that is not a number")
		}
		return append(b, n...), nil
	}
	switch v.Kind() {
	case reflect.Bool:
		return strconv.AppendBool(b, v.Bool()), nil
	case reflect.String:
		text, _ := json.Marshal(v.String()) // a string always marshals
		return append(b, text...), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(b, v.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.AppendUint(b, v.Uint(), 10), nil
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, documentError(path, strconv.FormatFloat(f, 'g', -1, 64), "must be a finite number")
		}
		text, _ := json.Marshal(v.Interface()) // a finite float always marshals
		return append(b, text...), nil
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i := range v.Len() {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendDocument(b, v.Index(i), fmt.Sprintf("%s[%d]", path, i), depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case reflect.Map:
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		keys := make(map[string]reflect.Value, v.Len())
		for it := v.MapRange(); it.Next(); {
			key, ok := keyText(it.Key())
			if !ok {
				return nil, documentError(path, "", fmt.Sprintf("has a key of Go type %s, which a document's keys cannot be", keyType(it.Key())))
			}
			if _, dup := keys[key]; dup {
				return nil, documentError(join(path, key), "", "is given twice (a key and a number or boolean key of the same text)")
			}
			keys[key] = it.Value()
		}
		b = append(b, '{')
		for i, key := range slices.Sorted(maps.Keys(keys)) {
			if i > 0 {
				b = append(b, ',')
			}
			text, _ := json.Marshal(key) // a string always marshals
			b = append(append(b, text...), ':')
			var err error
			if b, err = appendDocument(b, keys[key], join(path, key), depth+1); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	}
	return nil, documentError(path, "", fmt.Sprintf("holds a Go value of type %s, which a YAML or JSON document does not hold", v.Type()))
}

// keyText returns a map key as the text of a JSON object's key: a string,
// or a number's or boolean's text.
func keyText(k reflect.Value) (string, bool) {
	for k.Kind() == reflect.Interface && !k.IsNil() {
		k = k.Elem()
	}
	switch k.Kind() {
	case reflect.String:
		return k.String(), true
	case reflect.Bool:
		return strconv.FormatBool(k.Bool()), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(k.Uint(), 10), true
	case reflect.Float32, reflect.Float64:
		if f := k.Float(); !math.IsNaN(f) && !math.IsInf(f, 0) {
			return strconv.FormatFloat(f, 'g', -1, 64), true
		}
	}
	return "", false
}

// keyType names the type of a map key that keyText refused.
func keyType(k reflect.Value) string {
	for k.Kind() == reflect.Interface {
		if k.IsNil() {
			return "nil"
		}
		k = k.Elem()
	}
	return k.Type().String()
}

// documentError reports a value of a block given as a map that has no JSON
// form, quoting value unless the property holds secrets.
func documentError(path, value, problem string) error {
	if path == "" {
		return fmt.Errorf("%w: a taskRunner block %s", runner.ErrInvalidConfig, problem)
	}
	top, _, _ := strings.Cut(path, ".")
	top, _, _ = strings.Cut(top, "[")
	if hiddenProperty(top) {
		value = ""
	}
	return &runner.FieldError{Field: path, Value: value, Problem: problem, Err: runner.ErrInvalidConfig}
}
