package pgdecode

import (
	"fmt"

	"github.com/tidegate/tidegate/event"
)

// decodeComposite parses record_out text into a document with the type's
// attribute names:
//
//	(1,"a b",,"","q""\\")  ->  {"a":1,"b":"a b","c":null,"d":"","e":"q\"\\"}
//
// An empty field is NULL; "" is the empty string; inside quotes "" is a
// quote; a backslash escapes the next character anywhere (record_in rules).
func (t *Types) decodeComposite(ti *typeInfo, s []byte, depth int) (*event.Value, error) {
	if depth >= maxDepth {
		return nil, fmt.Errorf("%w: types nested deeper than %d", ErrSyntax, maxDepth)
	}
	if len(s) < 2 || s[0] != '(' {
		return nil, syntaxf("want '(' to start a record")
	}
	n := len(ti.fieldNames)
	if n == 0 && string(s) == "()" {
		return newDocument(nil, nil), nil // CREATE TYPE t AS ()
	}
	vals := make([]*event.Value, n)
	var buf []byte
	i := 1
	for k := 0; ; k++ {
		buf = buf[:0]
		empty, inq := true, false
		for {
			if i >= len(s) {
				return nil, syntaxf("unterminated record")
			}
			c := s[i]
			if !inq && (c == ',' || c == ')') {
				break
			}
			empty = false
			switch {
			case c == '\\':
				i++
				if i >= len(s) {
					return nil, syntaxf("unterminated escape")
				}
				buf = append(buf, s[i])
			case c == '"' && inq && i+1 < len(s) && s[i+1] == '"':
				buf = append(buf, '"')
				i++
			case c == '"':
				inq = !inq
			default:
				buf = append(buf, c)
			}
			i++
		}
		if k >= n {
			return nil, fmt.Errorf("%w: record has more than the %d attributes of %s (type changed? Forget and Load it again)", ErrSyntax, n, ti.label)
		}
		if !empty {
			v, err := t.decode(nil, t.lookup(ti.fieldTypes[k]), buf, depth+1)
			if err != nil {
				return nil, fmt.Errorf("attribute %s: %w", ti.fieldNames[k], newDecodeError(label(t.lookup(ti.fieldTypes[k])), buf, err))
			}
			vals[k] = v
		} else {
			vals[k] = event.Null()
		}
		i++
		if s[i-1] == ')' {
			if k+1 != n {
				return nil, fmt.Errorf("%w: record has %d attributes, %s has %d (type changed? Forget and Load it again)", ErrSyntax, k+1, ti.label, n)
			}
			break
		}
	}
	for ; i < len(s); i++ {
		if !isSpace(s[i]) {
			return nil, syntaxf("unexpected %q after record", s[i])
		}
	}
	return newDocument(ti.fieldNames, vals), nil
}

// decodeHstore parses hstore_out text into a document of text values:
//
//	"a"=>"1", "b c"=>NULL, ""=>"\"q\""
//
// Unquoted keys and values (accepted by hstore_in) are read too.
func decodeHstore(s []byte) (*event.Value, error) {
	var names []string
	var vals []*event.Value
	i := 0
	skip := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	for {
		skip()
		if i >= len(s) {
			break
		}
		key, quoted, err := hstoreToken(s, &i)
		if err != nil {
			return nil, err
		}
		if !quoted && isNULL(key) {
			return nil, syntaxf("NULL hstore key")
		}
		skip()
		if i+1 >= len(s) || s[i] != '=' || s[i+1] != '>' {
			return nil, syntaxf("want => at offset %d", i)
		}
		i += 2
		skip()
		val, quoted, err := hstoreToken(s, &i)
		if err != nil {
			return nil, err
		}
		names = append(names, string(key))
		if !quoted && isNULL(val) {
			vals = append(vals, event.Null())
		} else {
			vals = append(vals, newText(string(val)))
		}
		skip()
		if i < len(s) {
			if s[i] != ',' {
				return nil, syntaxf("want ',' at offset %d", i)
			}
			i++
		}
	}
	return newDocument(names, vals), nil
}

// hstoreToken reads a quoted or bare hstore token at *i.
func hstoreToken(s []byte, i *int) (tok []byte, quoted bool, err error) {
	if *i < len(s) && s[*i] == '"' {
		*i++
		var buf []byte
		for *i < len(s) {
			c := s[*i]
			switch c {
			case '\\':
				*i++
				if *i >= len(s) {
					return nil, false, syntaxf("unterminated escape")
				}
				buf = append(buf, s[*i])
			case '"':
				*i++
				if buf == nil {
					buf = []byte{}
				}
				return buf, true, nil
			default:
				buf = append(buf, c)
			}
			*i++
		}
		return nil, false, syntaxf("unterminated quoted hstore token")
	}
	start := *i
	for *i < len(s) && !isSpace(s[*i]) && s[*i] != ',' && s[*i] != '=' && s[*i] != '"' {
		if s[*i] == '\\' {
			return nil, false, syntaxf("escape in unquoted hstore token")
		}
		*i++
	}
	if *i == start {
		return nil, false, syntaxf("empty hstore token at offset %d", start)
	}
	return s[start:*i], false, nil
}
