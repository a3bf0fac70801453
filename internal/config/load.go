package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Load reads the configuration file at path with the process environment
// for ${NAME} interpolation. See Parse.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the configuration file: %w", err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse reads a configuration from data (YAML, or JSON which is YAML), named
// path in messages; relative ${file:...} paths start at path's directory.
// env looks up ${NAME} variables (nil: none is set).
//
// Parse interpolates scalar values, decodes them (unknown keys are errors),
// applies SetDefaults and runs Validate. On failure the error is Problems:
// every problem at once, each with file:line:col, field path and a fix, and
// never a secret.
func Parse(path string, data []byte, env func(string) (string, bool)) (*Config, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	root, probs := parseYAML(path, data)
	if len(probs) > 0 {
		return nil, probs.err()
	}
	d := newDecoder(path, &interpolator{env: env, dir: filepath.Dir(path)})
	cfg := &Config{Path: path}
	if root != nil {
		d.info.pos[""] = nodePos(root)
		d.decode(root, reflect.ValueOf(cfg).Elem(), "", "", 0)
	}
	cfg.info = d.info
	cfg.SetDefaults()
	all := d.probs
	for i := range all { // secrets found after a problem was recorded
		all[i].Msg = d.info.scrub(all[i].Path, all[i].Msg)
	}
	var vps Problems
	if errors.As(cfg.Validate(), &vps) {
		for _, p := range vps {
			if !d.info.underFailed(p.Path) {
				all = append(all, p)
			}
		}
	}
	if err := all.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

var yamlLineErr = regexp.MustCompile(`(?s)^yaml: line (\d+): (.*)$`)

// parseYAML returns the root node of the single document in data (nil for
// an empty document).
func parseYAML(file string, data []byte) (root *yaml.Node, probs Problems) {
	defer func() {
		if r := recover(); r != nil {
			root, probs = nil, Problems{{File: file, Msg: "the YAML parser failed on this file; check its syntax"}}
		}
	}()
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		// JSON: a tab is only ever whitespace there (tabs in strings are
		// escaped), but YAML rejects tabs in some places. Same column count.
		data = bytes.ReplaceAll(data, []byte{'\t'}, []byte{' '})
	}
	syntax := func(err error) Problems {
		line, msg := syntaxLine(data, err)
		return Problems{{File: file, Line: line, Msg: "invalid YAML: " + msg + "; check the indentation and quoting around this line"}}
	}
	data, restore := protectExpressions(data)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntax(err)
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		return nil, Problems{{File: file, Line: extra.Line, Column: extra.Column,
			Msg: "a second YAML document (after ---); keep the whole configuration in one document"}}
	case !errors.Is(err, io.EOF):
		return nil, syntax(err)
	}
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		restoreExpressions(doc.Content[0], restore, map[*yaml.Node]bool{})
		return doc.Content[0], nil
	}
	return nil, nil
}

var expression = regexp.MustCompile(`\$\{[^{}\n]*\}`)

const tokenDigits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// protectExpressions replaces each ${...} of data by a token of the same
// length made of characters YAML gives no meaning to, so that an unquoted
// ${TOKEN} may stand in a flow mapping ({token: ${TOKEN}}) where its braces
// would otherwise end the mapping. Lines and columns do not change. The
// returned replacer turns tokens back into the expressions.
func protectExpressions(data []byte) ([]byte, *strings.Replacer) {
	var pairs []string
	n := 0
	out := expression.ReplaceAllFunc(data, func(expr []byte) []byte {
		var id []byte
		for i := n; ; i /= len(tokenDigits) {
			id = append(id, tokenDigits[i%len(tokenDigits)])
			if i < len(tokenDigits) {
				break
			}
		}
		if 1+len(id) > len(expr) {
			return expr
		}
		token := "$" + string(id) + strings.Repeat("~", len(expr)-1-len(id))
		if bytes.Contains(data, []byte(token)) {
			return expr
		}
		n++
		pairs = append(pairs, token, string(expr))
		return []byte(token)
	})
	if len(pairs) == 0 {
		return data, nil
	}
	return out, strings.NewReplacer(pairs...)
}

// restoreExpressions puts the expressions back into every scalar under n.
func restoreExpressions(n *yaml.Node, r *strings.Replacer, seen map[*yaml.Node]bool) {
	if r == nil || n == nil || seen[n] {
		return
	}
	seen[n] = true
	if n.Kind == yaml.ScalarNode {
		n.Value = r.Replace(n.Value)
	}
	for _, c := range n.Content {
		restoreExpressions(c, r, seen)
	}
}

// maxSyntaxSearchLines bounds the search for the line of a syntax error.
const maxSyntaxSearchLines = 2000

// syntaxLine returns the line and message of a YAML syntax error. yaml.v3
// reports the line where the enclosing collection starts, not where the
// error is; the first prefix of the file that fails with the same message
// gives the line of the error.
func syntaxLine(data []byte, err error) (int, string) {
	line, msg := 0, strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineErr.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) > maxSyntaxSearchLines || len(data) > 64<<10 {
		return line, msg
	}
	var prefix []byte
	for k, l := range lines {
		prefix = append(prefix, l...)
		perr := decodeAll(prefix)
		if perr == nil {
			continue
		}
		pmsg := strings.TrimPrefix(perr.Error(), "yaml: ")
		if m := yamlLineErr.FindStringSubmatch(perr.Error()); m != nil {
			pmsg = m[2]
		}
		if pmsg == msg {
			return k + 1, msg
		}
	}
	return line, msg
}

// decodeAll parses every document of data and returns the first error.
func decodeAll(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// underFailed reports whether path is, or is under, a path that could not
// be decoded.
func (fi *fileInfo) underFailed(path string) bool {
	for _, f := range fi.failed {
		if isUnder(path, f) {
			return true
		}
	}
	return false
}

// isUnder reports whether path is p or a field, element or entry under p.
func isUnder(path, p string) bool {
	if p == "" || path == p {
		return true
	}
	return strings.HasPrefix(path, p) && (path[len(p)] == '.' || path[len(p)] == '[')
}

// parentPath returns the path one level up: "a.b[1]" → "a.b" → "a" → "".
func parentPath(path string) string {
	if strings.HasSuffix(path, `"]`) {
		if i := strings.LastIndex(path, `["`); i >= 0 {
			return path[:i]
		}
	}
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

// lookup returns the position of path, or of its nearest ancestor that has one.
func (fi *fileInfo) lookup(path string) (position, bool) {
	if fi == nil {
		return position{}, false
	}
	for {
		if p, ok := fi.pos[path]; ok {
			return p, true
		}
		if path == "" {
			return position{}, false
		}
		path = parentPath(path)
	}
}

// scrub replaces, in a message about path, the values interpolated into
// path (or into fields above or below it) and every secret value by the
// ${...} expressions they came from.
func (fi *fileInfo) scrub(path, msg string) string {
	if fi == nil {
		return msg
	}
	subs := slices.Clone(fi.secrets)
	for p, ss := range fi.subst {
		if isUnder(p, path) || isUnder(path, p) {
			subs = append(subs, ss...)
		}
	}
	slices.SortFunc(subs, func(a, b substitution) int { return len(b.value) - len(a.value) })
	var pairs []string
	for _, s := range subs {
		if s.value != "" {
			pairs = append(pairs, s.value, s.expr)
		}
	}
	if len(pairs) == 0 {
		return msg
	}
	// One pass: an expression put in is never scrubbed again.
	return strings.NewReplacer(pairs...).Replace(msg)
}
