package pgdecode

import (
	"errors"
	"fmt"
)

var (
	// ErrSyntax reports text that is not a valid value of its type (in the
	// formats fixed by SessionParams).
	ErrSyntax = errors.New("invalid syntax")
	// ErrRange reports a value outside the range of its type (an int8
	// beyond 64 bits, a timestamp after 294276-12-31): text PostgreSQL
	// never sends. Every value PostgreSQL can store decodes; timestamps
	// after the int64 limit of event.Timestamp become text (see
	// docs/types.md).
	ErrRange = errors.New("value out of range")
)

// maxErrorInput is how much of a malformed value an error message quotes.
const maxErrorInput = 64

// DecodeError is returned by Types.Decode for malformed input. It wraps
// ErrSyntax or ErrRange.
type DecodeError struct {
	Type  string // type name, as Types.TypeName
	Input string // the input, cut to 64 bytes
	Err   error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("decoding %s value %q: %v", e.Type, e.Input, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

func newDecodeError(typ string, text []byte, err error) *DecodeError {
	in := text
	if len(in) > maxErrorInput {
		in = in[:maxErrorInput]
	}
	s := string(in)
	if len(text) > maxErrorInput {
		s += "..."
	}
	return &DecodeError{Type: typ, Input: s, Err: err}
}

// syntaxf returns an ErrSyntax with a detail.
func syntaxf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrSyntax}, args...)...)
}
