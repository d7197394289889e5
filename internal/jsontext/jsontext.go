// Package jsontext reads a JSON value as text, for the configuration types
// that accept a number or a string ("1.5", "512Mb") and quote the value as
// written in their errors.
package jsontext

import (
	"bytes"
	"encoding/json"
)

// Kind is what a JSON value is, as far as [Read] cares.
type Kind int

const (
	Null   Kind = iota // null
	Scalar             // a string or a number
	Other              // anything else: true, false, an object, an array, malformed JSON
)

// Read returns a JSON string's contents or a number's text, and the value's
// kind. For other values the text is the JSON itself, for messages.
func Read(data []byte) (string, Kind) {
	data = bytes.TrimSpace(data)
	switch {
	case string(data) == "null":
		return "null", Null
	case len(data) > 0 && data[0] == '"':
		var s string
		if err := json.Unmarshal(data, &s); err != nil {
			return string(data), Other
		}
		return s, Scalar
	case len(data) > 0 && (data[0] == '-' || '0' <= data[0] && data[0] <= '9'):
		return string(data), Scalar
	}
	return string(data), Other
}
