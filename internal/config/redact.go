package config

import (
	"maps"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tidegate/tidegate/internal/sink/elasticsearch"
)

// Mask replaces secrets in Redacted configurations.
const Mask = "****"

// Redacted returns a deep copy of c in which every secret is replaced by
// "****": passwords in DSNs and URLs (userinfo and password/sslpassword
// query parameters), elasticsearch password and api_key, the admin token,
// and a NATS URL's lone user name (NATS reads it as a token).
func (c *Config) Redacted() *Config {
	r := *c
	r.Bus.URL = redactURLList(c.Bus.URL)
	r.Admin.Token = maskIfSet(c.Admin.Token)
	r.Sources = slices.Clone(c.Sources)
	for i, s := range r.Sources {
		if s.Postgres != nil {
			pg := *s.Postgres
			pg.DSN = redactDSN(pg.DSN)
			pg.Tables = slices.Clone(pg.Tables)
			if pg.Keys != nil {
				pg.Keys = make(map[string][]string, len(s.Postgres.Keys))
				for k, cols := range s.Postgres.Keys {
					pg.Keys[k] = slices.Clone(cols)
				}
			}
			r.Sources[i].Postgres = &pg
		}
	}
	r.Sinks = slices.Clone(c.Sinks)
	for i, s := range r.Sinks {
		r.Sinks[i].Elasticsearch = redactES(s.Elasticsearch)
		r.Sinks[i].OpenSearch = redactES(s.OpenSearch)
	}
	r.Pipelines = slices.Clone(c.Pipelines)
	for i, p := range r.Pipelines {
		r.Pipelines[i].Sinks = slices.Clone(p.Sinks)
	}
	return &r
}

func redactES(c *elasticsearch.Config) *elasticsearch.Config {
	if c == nil {
		return nil
	}
	r := *c
	r.URLs = make([]string, len(c.URLs))
	for i, u := range c.URLs {
		r.URLs[i] = redactURL(u, false)
	}
	r.Password = maskIfSet(c.Password)
	r.APIKey = maskIfSet(c.APIKey)
	r.IndexSettings = deepCopyMap(c.IndexSettings)
	r.Mappings = deepCopyMap(c.Mappings)
	return &r
}

func maskIfSet(s string) string {
	if s == "" {
		return ""
	}
	return Mask
}

func deepCopyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := maps.Clone(m)
	for k, v := range out {
		out[k] = deepCopyAny(v)
	}
	return out
}

func deepCopyAny(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return deepCopyMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopyAny(e)
		}
		return out
	}
	return v
}

// String renders c as YAML with secrets masked (see Redacted), sizes in
// IEC units and unset kinds left out: what `tidegate validate --print`
// shows. Config values and pointers both print this way, so a Config in a
// log line never shows a secret.
func (c Config) String() string {
	var root yaml.Node
	if err := root.Encode(c.Redacted()); err != nil {
		return "<config: " + err.Error() + ">"
	}
	tidyNode(&root, durationKeys())
	out, err := yaml.Marshal(&root)
	if err != nil {
		return "<config: " + err.Error() + ">"
	}
	return string(out)
}

// tidyNode drops null, empty and unset entries and renders durations
// ("10m", not "10m0s") and "_bytes" sizes in units.
func tidyNode(n *yaml.Node, durations map[string]bool) {
	switch n.Kind {
	case yaml.MappingNode:
		var kept []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			tidyNode(v, durations)
			if isNull(v) || (v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" && v.Value == "") ||
				((v.Kind == yaml.MappingNode || v.Kind == yaml.SequenceNode) && len(v.Content) == 0) {
				continue
			}
			if v.Kind == yaml.ScalarNode {
				switch {
				case strings.HasSuffix(k.Value, "_bytes") && v.ShortTag() == "!!int":
					if size, err := parseSize(v.Value); err == nil {
						v.SetString(formatSize(size))
					}
				case durations[k.Value]:
					if d, err := time.ParseDuration(v.Value); err == nil {
						v.SetString(formatDuration(d))
					}
				}
			}
			kept = append(kept, k, v)
		}
		n.Content = kept
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			tidyNode(c, durations)
		}
	}
}

// durationKeys returns the YAML keys of the duration fields.
func durationKeys() map[string]bool {
	keys := map[string]bool{}
	for _, t := range structTypes() {
		for _, f := range structFields(t) {
			if t.Field(f.index).Type == durationType {
				keys[f.key] = true
			}
		}
	}
	return keys
}

// structTypes returns the struct types of the configuration, Config first.
func structTypes() []reflect.Type {
	var out []reflect.Type
	var visit func(t reflect.Type)
	visit = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == durationType || slices.Contains(out, t) {
			return
		}
		out = append(out, t)
		for _, f := range structFields(t) {
			visit(t.Field(f.index).Type)
		}
	}
	visit(reflect.TypeFor[Config]())
	return out
}

// redactURLList redacts each URL of a comma-separated list.
func redactURLList(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = redactURL(p, true)
	}
	return strings.Join(parts, ",")
}

// redactURL masks the password of a URL's userinfo, and its user name too
// when userIsSecret (NATS reads nats://token@host as a token). It does not
// parse the URL (a malformed one must be masked too) and errs on the side of
// masking: the userinfo ends at the last '@'. Query parameters named
// password or sslpassword are masked as well.
func redactURL(raw string, userIsSecret bool) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	if at := strings.LastIndexByte(rest, '@'); at >= 0 {
		user, _, hasPassword := strings.Cut(rest[:at], ":")
		switch {
		case hasPassword:
			rest = user + ":" + Mask + rest[at:]
		case userIsSecret:
			rest = Mask + rest[at:]
		}
	}
	if base, query, ok := strings.Cut(rest, "?"); ok {
		params := strings.Split(query, "&")
		for i, kv := range params {
			k, _, _ := strings.Cut(kv, "=")
			if dk, err := url.QueryUnescape(k); err == nil && (strings.EqualFold(dk, "password") || strings.EqualFold(dk, "sslpassword")) {
				params[i] = k + "=" + Mask
			}
		}
		rest = base + "?" + strings.Join(params, "&")
	}
	return scheme + "://" + rest
}

var kvPassword = regexp.MustCompile(`(?i)\b((?:ssl)?password)\s*=\s*(?:'(?:[^'\\]|\\.)*'?|\S*)`)

// redactDSN masks the password of a libpq URL or keyword/value string.
func redactDSN(dsn string) string {
	if strings.Contains(dsn, "://") {
		return redactURL(dsn, false)
	}
	return kvPassword.ReplaceAllString(dsn, "${1}="+Mask)
}
