package docker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
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
		if v.Type().Elem().Kind() == reflect.Struct {
			elem := reflect.New(v.Type().Elem())
			if err := decodeObject(raw, elem.Elem(), path, hidden); err != nil {
				return err
			}
			v.Set(elem)
			return nil
		}
	case reflect.Struct:
		return decodeObject(raw, v, path, hidden)
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct {
			if string(raw) == "null" {
				v.SetZero()
				return nil
			}
			var items []json.RawMessage
			if err := json.Unmarshal(raw, &items); err != nil {
				return fieldError(path, raw, hidden, "must be a list of objects")
			}
			out := reflect.MakeSlice(v.Type(), len(items), len(items))
			for i, item := range items {
				if err := decodeObject(item, out.Index(i), fmt.Sprintf("%s[%d]", path, i), hidden); err != nil {
					return err
				}
			}
			v.Set(out)
			return nil
		}
	}
	if string(raw) == "null" {
		// As encoding/json: null empties a list, an object or a pointer
		// and leaves anything else as it was.
		switch v.Kind() {
		case reflect.Slice, reflect.Map, reflect.Pointer:
			v.SetZero()
		}
		return nil
	}
	fresh := reflect.New(v.Type())
	if err := json.Unmarshal(raw, fresh.Interface()); err != nil {
		return fieldError(path, raw, hidden, "must be "+kindOf(v.Type()))
	}
	v.Set(fresh.Elem())
	return nil
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
