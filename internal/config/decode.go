package config

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tidegate/tidegate/internal/config/field"
)

const (
	// maxDepth bounds nesting (and alias cycles).
	maxDepth = 64
	// maxNodes bounds the nodes visited, aliases expanded ("billion laughs").
	maxNodes = 1 << 18
)

var durationType = reflect.TypeFor[time.Duration]()

// position is where a value was read from.
type position struct{ line, col int }

// fileInfo is what Parse remembers about the file a Config came from, so
// that Validate can name the line of each problem and never show a secret.
type fileInfo struct {
	file string
	// pos maps a field path ("sources[0].postgres.tables[1]") to the position
	// of its value (of its key, for lists and mappings).
	pos map[string]position
	// raw maps the path of each interpolated scalar to its text before
	// interpolation: errors show it instead of the value.
	raw map[string]string
	// subst maps the path of each interpolated scalar to its substitutions,
	// whose values are scrubbed from the problems about that path.
	subst map[string][]substitution
	// secrets are scrubbed from every problem: values of ${file:...} and of
	// variables whose name looks secret (…PASSWORD, …TOKEN, …KEY).
	secrets []substitution
	// failed are the paths whose value could not be decoded; validation
	// problems under them are noise and are dropped.
	failed []string
}

// expansion is the cached interpolation of one scalar node.
type expansion struct {
	value   string
	subs    []substitution
	changed bool
	err     error
}

// decoder fills Go values from a yaml.Node tree by reflection, with the yaml
// struct tags as keys. Unlike yaml.Node.Decode it reports every problem (not
// only the first) with its field path, lists the valid keys next to an
// unknown one, interpolates scalars, reads sizes and durations, and never
// puts an interpolated value in a message.
//
// Integer fields whose key ends in "_bytes" are sizes: they accept "5MiB".
type decoder struct {
	info   *fileInfo
	interp *interpolator
	probs  Problems
	cache  map[*yaml.Node]*expansion
	nodes  int
	blown  bool
}

func newDecoder(file string, interp *interpolator) *decoder {
	return &decoder{
		info: &fileInfo{
			file:  file,
			pos:   map[string]position{},
			raw:   map[string]string{},
			subst: map[string][]substitution{},
		},
		interp: interp,
		cache:  map[*yaml.Node]*expansion{},
	}
}

func nodePos(n *yaml.Node) position { return position{n.Line, n.Column} }

// fail records a decoding problem at n.
func (d *decoder) fail(n *yaml.Node, path, msg string) {
	d.info.failed = append(d.info.failed, path)
	p := Problem{File: d.info.file, Path: path, Msg: d.info.scrub(path, msg)}
	if n != nil {
		p.Line, p.Column = n.Line, n.Column
	}
	d.probs = append(d.probs, p)
}

// resolve follows aliases and counts the node against the budget.
func (d *decoder) resolve(n *yaml.Node, path string, depth int) (*yaml.Node, bool) {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > maxDepth {
			d.fail(n, path, "alias chain too long; refer to the anchored value directly")
			return nil, false
		}
		n = n.Alias
	}
	if n == nil {
		return nil, false
	}
	d.nodes++
	if d.nodes > maxNodes {
		if !d.blown {
			d.blown = true
			d.fail(n, path, "the document expands to too many values (aliases referring to aliases?); write the values out")
		}
		return nil, false
	}
	if depth > maxDepth {
		d.fail(n, path, fmt.Sprintf("nested deeper than %d levels (an alias referring to itself?); flatten it", maxDepth))
		return nil, false
	}
	return n, true
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	}
	return "something else"
}

// scalar returns the interpolated text of the scalar n.
func (d *decoder) scalar(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.fail(n, path, fmt.Sprintf("expected %s, found %s; write a single value", want, kindName(n)))
		return "", false
	}
	e, ok := d.cache[n]
	if !ok {
		e = &expansion{}
		e.value, e.subs, e.changed, e.err = d.interp.expand(n.Value)
		d.cache[n] = e
		for _, s := range e.subs {
			if s.secret && s.value != "" {
				d.info.secrets = append(d.info.secrets, s)
			}
		}
	}
	if e.err != nil {
		d.fail(n, path, e.err.Error())
		return "", false
	}
	if e.changed {
		d.info.raw[path] = n.Value
		d.info.subst[path] = e.subs
	}
	return e.value, true
}

// show quotes the value at path for a message: the text before
// interpolation when there was one, so that no secret is shown.
func (fi *fileInfo) show(path, value string) string {
	if fi != nil {
		if raw, ok := fi.raw[path]; ok {
			return strconv.Quote(raw)
		}
	}
	return strconv.Quote(value)
}

// offDurations are the keys of durations that also accept "off"
// (DurationOff): those whose zero value means their default.
var offDurations = map[string]bool{"batch_linger": true, "publish_linger": true}

// decode fills v from n. key is the YAML key of the field (for sizes).
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path, key string, depth int) {
	n, ok := d.resolve(n, path, depth)
	if !ok {
		return
	}
	t := v.Type()
	switch {
	case t == durationType:
		s, ok := d.scalarOrNull(n, path, "a duration such as 10s")
		if !ok || s == "" {
			return
		}
		if offDurations[key] && strings.EqualFold(strings.TrimSpace(s), "off") {
			v.SetInt(int64(DurationOff))
			return
		}
		dur, err := parseDuration(s)
		if err != nil {
			d.fail(n, path, d.info.show(path, s)+": "+err.Error())
			return
		}
		v.SetInt(int64(dur))
	case t.Kind() == reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(t.Elem())) // a present key means "this kind", even when empty
		}
		d.decode(n, v.Elem(), path, key, depth)
	case t.Kind() == reflect.Struct:
		d.decodeStruct(n, v, path, depth)
	case t.Kind() == reflect.Slice:
		d.decodeSlice(n, v, path, depth)
	case t.Kind() == reflect.Map:
		d.decodeMap(n, v, path, depth)
	case t.Kind() == reflect.Interface:
		if x := d.toAny(n, path, depth); x != nil {
			v.Set(reflect.ValueOf(x))
		}
	case t.Kind() == reflect.String:
		s, ok := d.scalarOrNull(n, path, "a string")
		if ok {
			v.SetString(s)
		}
	case t.Kind() == reflect.Bool:
		s, ok := d.scalarOrNull(n, path, "true or false")
		if !ok || s == "" {
			return
		}
		switch strings.ToLower(s) {
		case "true", "yes", "on":
			v.SetBool(true)
		case "false", "no", "off":
			v.SetBool(false)
		default:
			d.fail(n, path, d.info.show(path, s)+": not a boolean; write true or false")
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		size := strings.HasSuffix(key, "_bytes")
		want := "an integer"
		if size {
			want = "a size such as 5MiB"
		}
		s, ok := d.scalarOrNull(n, path, want)
		if !ok || s == "" {
			return
		}
		var i int64
		var err error
		if size {
			i, err = parseSize(s)
		} else {
			i, err = strconv.ParseInt(strings.TrimSpace(s), 10, 64)
			if err != nil {
				err = fmt.Errorf("not an integer; write a whole number such as 2000")
			}
		}
		if err == nil && v.OverflowInt(i) {
			err = fmt.Errorf("too large")
		}
		if err != nil {
			d.fail(n, path, d.info.show(path, s)+": "+err.Error())
			return
		}
		v.SetInt(i)
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		s, ok := d.scalarOrNull(n, path, "a positive integer")
		if !ok || s == "" {
			return
		}
		u, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil || v.OverflowUint(u) {
			d.fail(n, path, d.info.show(path, s)+": not a positive integer; write a whole number such as 2000")
			return
		}
		v.SetUint(u)
	case t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64:
		s, ok := d.scalarOrNull(n, path, "a number")
		if !ok || s == "" {
			return
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			d.fail(n, path, d.info.show(path, s)+": not a number; write e.g. 0.5")
			return
		}
		v.SetFloat(f)
	default:
		d.fail(n, path, fmt.Sprintf("cannot be read into a Go %s (a bug in tidegate: please report it)", t))
	}
}

// scalarOrNull is scalar, with a YAML null read as "".
func (d *decoder) scalarOrNull(n *yaml.Node, path, want string) (string, bool) {
	if isNull(n) {
		return "", true
	}
	return d.scalar(n, path, want)
}

// entry is one key/value of a mapping, after merge keys ("<<") are applied.
type entry struct{ key, value *yaml.Node }

// entries returns the entries of mapping n: its own keys first, then those
// brought by merge keys that it does not set itself. Duplicate keys are
// problems.
func (d *decoder) entries(n *yaml.Node, path string, depth int) []entry {
	var out []entry
	at := map[string]*yaml.Node{}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, ok := d.resolve(n.Content[i], path, depth+1)
		if !ok {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "a key must be a plain name, not "+kindName(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merges = append(merges, n.Content[i+1])
			continue
		}
		if first, dup := at[k.Value]; dup {
			d.fail(k, field.Key(path, k.Value), fmt.Sprintf("duplicate key (first set at line %d); keep one", first.Line))
			continue
		}
		at[k.Value] = k
		out = append(out, entry{k, n.Content[i+1]})
	}
	for _, m := range merges {
		m, ok := d.resolve(m, path, depth+1)
		if !ok {
			continue
		}
		var sources []*yaml.Node
		switch m.Kind {
		case yaml.MappingNode:
			sources = []*yaml.Node{m}
		case yaml.SequenceNode:
			sources = m.Content
		default:
			d.fail(m, path, "a merge key (<<) needs a mapping or a list of mappings, e.g. <<: *defaults")
			continue
		}
		for _, src := range sources {
			src, ok := d.resolve(src, path, depth+1)
			if !ok {
				continue
			}
			if src.Kind != yaml.MappingNode {
				d.fail(src, path, "a merge key (<<) needs a mapping or a list of mappings, e.g. <<: *defaults")
				continue
			}
			for _, e := range d.entries(src, path, depth+1) {
				if _, set := at[e.key.Value]; !set {
					at[e.key.Value] = e.key
					out = append(out, e)
				}
			}
		}
	}
	return out
}

// structField is one settable field of a struct type.
type structField struct {
	key   string
	index int
}

// structFields returns the fields of t that have a YAML key, in order.
func structFields(t reflect.Type) []structField {
	var out []structField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, structField{name, i})
	}
	return out
}

// recordPos remembers where the value at path is: the value itself when it
// is a single value, else (a list, a mapping, nothing) its key.
func (d *decoder) recordPos(path string, key, value *yaml.Node) {
	target := value
	for target != nil && target.Kind == yaml.AliasNode {
		target = target.Alias
	}
	if key != nil && (target == nil || target.Kind != yaml.ScalarNode || (target.Value == "" && isNull(target))) {
		target = key
	}
	if target != nil {
		d.info.pos[path] = nodePos(target)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, depth int) {
	if isNull(n) {
		return
	}
	fields := structFields(v.Type())
	keys := make([]string, len(fields))
	for i, f := range fields {
		keys[i] = f.key
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, fmt.Sprintf("expected a mapping, found %s; write keys such as %s", kindName(n), strings.Join(keys, ", ")))
		return
	}
	for _, e := range d.entries(n, path, depth) {
		name := e.key.Value
		p := field.Join(path, name)
		idx := -1
		for _, f := range fields {
			if f.key == name {
				idx = f.index
				break
			}
		}
		if idx < 0 {
			valid := "valid keys here: " + strings.Join(keys, ", ")
			msg := "unknown key; " + valid
			if s := suggest(name, keys); s != "" {
				msg = fmt.Sprintf("unknown key; did you mean %q? (%s)", s, valid)
			}
			d.fail(e.key, p, msg)
			continue
		}
		d.recordPos(p, e.key, e.value)
		d.decode(e.value, v.Field(idx), p, name, depth+1)
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string, depth int) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.fail(n, path, fmt.Sprintf("expected a list, found %s; write [a, b] or one \"- item\" per line", kindName(n)))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		p := field.Index(path, i)
		d.recordPos(p, nil, item)
		d.decode(item, s.Index(i), p, "", depth+1)
	}
	v.Set(s)
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string, depth int) {
	if isNull(n) {
		return
	}
	t := v.Type()
	if t.Key().Kind() != reflect.String {
		d.fail(n, path, fmt.Sprintf("cannot be read into a Go %s (a bug in tidegate: please report it)", t))
		return
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n, path, fmt.Sprintf("expected a mapping, found %s; write {key: value} or one \"key: value\" per line", kindName(n)))
		return
	}
	m := reflect.MakeMap(t)
	for _, e := range d.entries(n, path, depth) {
		p := field.Key(path, e.key.Value)
		d.info.pos[p] = nodePos(e.key)
		elem := reflect.New(t.Elem()).Elem()
		d.decode(e.value, elem, p, e.key.Value, depth+1)
		m.SetMapIndex(reflect.ValueOf(e.key.Value).Convert(t.Key()), elem)
	}
	v.Set(m)
}

// toAny converts free-form YAML (index settings, mappings) to values that
// encoding/json can render: map[string]any, []any, string, bool, int, float64
// and nil.
func (d *decoder) toAny(n *yaml.Node, path string, depth int) any {
	n, ok := d.resolve(n, path, depth)
	if !ok {
		return nil
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for _, e := range d.entries(n, path, depth) {
			m[e.key.Value] = d.toAny(e.value, field.Key(path, e.key.Value), depth+1)
		}
		return m
	case yaml.SequenceNode:
		l := make([]any, len(n.Content))
		for i, item := range n.Content {
			l[i] = d.toAny(item, field.Index(path, i), depth+1)
		}
		return l
	case yaml.ScalarNode:
		s, ok := d.scalar(n, path, "a value")
		if !ok {
			return nil
		}
		src := n
		if s != n.Value {
			if n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
				return s // quoted: a string, whatever it holds
			}
			src = &yaml.Node{Kind: yaml.ScalarNode, Value: s} // plain: typed by its new text
		}
		switch src.ShortTag() {
		case "!!null":
			return nil
		case "!!bool", "!!int", "!!float":
			var x any
			if err := src.Decode(&x); err == nil {
				if f, isFloat := x.(float64); !isFloat || (!math.IsNaN(f) && !math.IsInf(f, 0)) {
					return x
				}
			}
		}
		return s
	}
	return nil
}
