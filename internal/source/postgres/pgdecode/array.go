package pgdecode

import (
	"bytes"
	"fmt"

	"github.com/tidegate/tidegate/event"
)

// maxArrayDims is PostgreSQL's MAXDIM.
const maxArrayDims = 6

// decodeArray parses array_out text into a list (nested lists for
// multi-dimensional arrays):
//
//	{1,2,NULL}  {{1,2},{3,4}}  {}  [0:1]={1,2}  {"a b","x\"y",NULL,"NULL"}
//	{(3,4),(1,2);(1,1),(0,0)}   (box uses ';' as its typdelim)
//
// Bounds decorations are dropped. Unquoted NULL is SQL NULL; quoted "NULL"
// is the text. Elements are decoded by the element type's parser.
func (t *Types) decodeArray(ti *typeInfo, s []byte, depth int) (*event.Value, error) {
	if depth >= maxDepth {
		return nil, fmt.Errorf("%w: types nested deeper than %d", ErrSyntax, maxDepth)
	}
	elem := t.lookup(ti.elem)
	p := arrayParser{t: t, s: s, elem: elem, delim: ',', depth: depth + 1}
	if elem != nil {
		p.delim = elem.delim
	}
	if len(s) > 0 && s[0] == '[' {
		i := bytes.IndexByte(s, '=')
		if i < 0 || s[i-1] != ']' {
			return nil, syntaxf("malformed array bounds")
		}
		p.i = i + 1
	}
	// Elements that need one allocation each share slabs instead.
	if r := t.resolve(elem); r != nil && (r.kind == kindInt || r.kind == kindFloat8 || r.kind == kindFloat4) {
		p.slabKind = r.kind
	}
	p.estimate = bytes.Count(s[p.i:], []byte{p.delim}) + 1
	v, err := p.level(0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.i != len(p.s) {
		return nil, syntaxf("unexpected %q after array", p.s[p.i])
	}
	return v, nil
}

type arrayParser struct {
	t     *Types
	s     []byte
	i     int
	elem  *typeInfo
	delim byte
	depth int
	n     int    // elements so far (for errors)
	buf   []byte // unescaped element text; decoders do not retain it

	estimate int  // upper bound of the element count
	slabKind kind // kindInt/kindFloat*: element boxes come from slabs
	ints     []intBox
	floats   []floatBox
}

func (p *arrayParser) skipSpace() {
	for p.i < len(p.s) && isSpace(p.s[p.i]) {
		p.i++
	}
}

// level parses "{...}" at dimension dim.
func (p *arrayParser) level(dim int) (*event.Value, error) {
	if dim >= maxArrayDims {
		return nil, syntaxf("more than %d array dimensions", maxArrayDims)
	}
	p.skipSpace()
	if p.i >= len(p.s) || p.s[p.i] != '{' {
		return nil, syntaxf("want '{' at offset %d", p.i)
	}
	p.i++
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return newList(nil), nil
	}
	var vals []*event.Value
	if dim == 0 && p.i < len(p.s) && p.s[p.i] != '{' {
		vals = make([]*event.Value, 0, p.estimate)
	}
	for {
		p.skipSpace()
		var v *event.Value
		var err error
		if p.i < len(p.s) && p.s[p.i] == '{' {
			v, err = p.level(dim + 1)
		} else {
			v, err = p.element()
		}
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
		p.skipSpace()
		if p.i >= len(p.s) {
			return nil, syntaxf("unterminated array")
		}
		switch c := p.s[p.i]; c {
		case p.delim:
			p.i++
		case '}':
			p.i++
			return newList(vals), nil
		default:
			return nil, syntaxf("want %q or '}' at offset %d, got %q", p.delim, p.i, c)
		}
	}
}

// element parses one element (quoted or not) and decodes it.
func (p *arrayParser) element() (*event.Value, error) {
	p.n++
	var text []byte
	if p.i < len(p.s) && p.s[p.i] == '"' {
		var err error
		if text, err = p.quoted(); err != nil {
			return nil, err
		}
	} else {
		start := p.i
		escaped := false
		for p.i < len(p.s) {
			c := p.s[p.i]
			if c == p.delim || c == '}' {
				break
			}
			switch c {
			case '\\':
				escaped = true
				p.i++
			case '{', '"':
				return nil, syntaxf("unexpected %q in unquoted array element", c)
			}
			p.i++
		}
		if p.i > len(p.s) {
			return nil, syntaxf("unterminated escape")
		}
		text = p.s[start:p.i]
		for len(text) > 0 && isSpace(text[len(text)-1]) {
			text = text[:len(text)-1]
		}
		if len(text) == 0 {
			return nil, syntaxf("empty unquoted array element")
		}
		if !escaped && len(text) == 4 && isNULL(text) {
			return event.Null(), nil
		}
		if escaped {
			text = p.unescape(text)
		}
	}
	v, err := p.decode(text)
	if err != nil {
		return nil, fmt.Errorf("element %d: %w", p.n, newDecodeError(label(p.elem), text, err))
	}
	return v, nil
}

// decode decodes one element, from a slab for numeric elements.
func (p *arrayParser) decode(text []byte) (*event.Value, error) {
	switch p.slabKind {
	case kindInt:
		n, err := parseInt(text, 64)
		if err != nil {
			return nil, err
		}
		if len(p.ints) == 0 {
			p.ints = make([]intBox, p.estimate)
		}
		v := p.ints[0].set(n)
		p.ints = p.ints[1:]
		return v, nil
	case kindFloat8, kindFloat4:
		var f float64
		var err error
		if p.slabKind == kindFloat8 {
			f, err = parseFloat8(text)
		} else {
			f, err = parseFloat4(text)
		}
		if err != nil {
			return nil, err
		}
		if len(p.floats) == 0 {
			p.floats = make([]floatBox, p.estimate)
		}
		v := p.floats[0].set(f)
		p.floats = p.floats[1:]
		return v, nil
	}
	return p.t.decode(nil, p.elem, text, p.depth)
}

// quoted parses a double-quoted element with backslash escapes and returns
// its content (a sub-slice of the input when it has no escapes).
func (p *arrayParser) quoted() ([]byte, error) {
	p.i++ // opening quote
	start := p.i
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case '"':
			text := p.s[start:p.i]
			p.i++
			return text, nil
		case '\\':
			buf := append(p.buf[:0], p.s[start:p.i]...)
			for p.i < len(p.s) {
				c := p.s[p.i]
				switch c {
				case '\\':
					p.i++
					if p.i >= len(p.s) {
						return nil, syntaxf("unterminated escape")
					}
					buf = append(buf, p.s[p.i])
				case '"':
					p.i++
					p.buf = buf
					return buf, nil
				default:
					buf = append(buf, c)
				}
				p.i++
			}
			return nil, syntaxf("unterminated quoted array element")
		}
		p.i++
	}
	return nil, syntaxf("unterminated quoted array element")
}

// unescape removes backslash escapes from an unquoted element.
func (p *arrayParser) unescape(s []byte) []byte {
	buf := p.buf[:0]
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		buf = append(buf, s[i])
	}
	p.buf = buf
	return buf
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// isNULL reports whether s is "NULL" in any case.
func isNULL(s []byte) bool {
	return len(s) == 4 && s[0]|0x20 == 'n' && s[1]|0x20 == 'u' && s[2]|0x20 == 'l' && s[3]|0x20 == 'l'
}
