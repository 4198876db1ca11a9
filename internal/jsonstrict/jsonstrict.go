// Package jsonstrict owns the strict reading of the JSON files the
// launcher writes for the sidecars and the sidecars write for the host:
// one value, no field the type does not know, nothing after it.
package jsonstrict

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// ErrTrailing is returned when data holds more than one JSON value.
var ErrTrailing = errors.New("trailing data after the JSON value")

// Decode decodes the one JSON value in data into v. An unknown field is
// an error (a typo is never a setting silently ignored), and so is
// anything but white space after the value, a stray "}" included.
func Decode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	// Token, not More: More reports false before a "]" or "}", which
	// would let `{...}}` through.
	if _, err := dec.Token(); err != io.EOF {
		return ErrTrailing
	}
	return nil
}
