// Package field describes a problem with one field of a component's
// configuration (a source or a sink), so that internal/config can report it
// with the file, line and column the field was read from.
//
// Components cannot import internal/config (it imports them), so they return
// *Error values joined with errors.Join from their Validate methods, with paths
// relative to their own configuration ("tables[1]"); internal/config prefixes
// the path ("sources[0].postgres.tables[1]") and adds the position.
package field

import (
	"regexp"
	"strconv"
)

// Error is one problem with one configuration field.
type Error struct {
	// Path of the field relative to the component's configuration, e.g.
	// "tables[1]" or `keys["public.events"]`. Empty means the component itself.
	Path string
	// Value is the offending value as it may be shown to a user, shown only
	// when ShowValue is set. It must never hold a secret: callers do not set it
	// for passwords, tokens or connection strings, and mask the password of URLs.
	// internal/config replaces it by the ${...} expression when the value came
	// from interpolation.
	Value     string
	ShowValue bool
	// Msg says what is wrong and how to fix it ("what; how"). It never
	// contains the value.
	Msg string
}

// Error renders `path: "value": msg`.
func (e *Error) Error() string {
	s := e.Msg
	if e.ShowValue {
		s = strconv.Quote(e.Value) + ": " + s
	}
	if e.Path != "" {
		s = e.Path + ": " + s
	}
	return s
}

// New returns an *Error without a value.
func New(path, msg string) *Error { return &Error{Path: path, Msg: msg} }

// WithValue returns an *Error that shows value before msg. value must not be a
// secret.
func WithValue(path, value, msg string) *Error {
	return &Error{Path: path, Value: value, ShowValue: true, Msg: msg}
}

// Index returns the path of element i of the list at path: "tables[1]".
func Index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Key returns the path of the entry key of the map at path: "keys.orders", or
// `keys["public.orders"]` when the key holds other characters than letters,
// digits, '_' and '-'.
func Key(path, key string) string {
	if plainKey.MatchString(key) {
		return Join(path, key)
	}
	return path + "[" + strconv.Quote(key) + "]"
}

// Join returns parent.child, or child when parent is empty.
func Join(parent, child string) string {
	if parent == "" {
		return child
	}
	if child == "" {
		return parent
	}
	return parent + "." + child
}
