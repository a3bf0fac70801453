package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/tidegate/tidegate/internal/config/field"
)

// maxNameLen bounds names; pipeline names are shorter so that the default
// slot "tidegate_<pipeline>" fits PostgreSQL's 63 characters.
const (
	maxNameLen         = 63
	maxPipelineNameLen = 63 - len("tidegate_")
)

var nameRE = regexp.MustCompile(`^[a-z0-9_-]+$`)

// Validate checks c (call SetDefaults first; Parse and Load do both) and
// returns every problem at once as Problems, or nil. For a Config read by
// Parse or Load each problem has the file, line and column of the field;
// values that came from ${...} are shown as the expression, never the value.
func (c *Config) Validate() error {
	v := &validator{c: c, fi: c.info, file: c.Path}
	if c.info != nil {
		v.file = c.info.file
	}
	v.log()
	v.bus()
	v.admin()
	sources := v.sources()
	sinks := v.sinks()
	v.pipelines(sources, sinks)
	return v.probs.err()
}

type validator struct {
	c     *Config
	fi    *fileInfo
	file  string
	probs Problems
}

func (v *validator) add(path, msg string) {
	p := Problem{File: v.file, Path: path, Msg: v.fi.scrub(path, msg)}
	if pos, ok := v.fi.lookup(path); ok {
		p.Line, p.Column = pos.line, pos.col
	}
	v.probs = append(v.probs, p)
}

// addValue adds a problem that shows the value at path (its ${...}
// expression when it was interpolated). value must not be a secret.
func (v *validator) addValue(path, value, msg string) {
	v.add(path, v.fi.show(path, value)+": "+msg)
}

// oneOf checks an enumerated string.
func (v *validator) oneOf(path, value string, allowed ...string) {
	if slices.Contains(allowed, value) {
		return
	}
	msg := "must be one of " + strings.Join(allowed, ", ")
	if s := suggest(value, allowed); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	v.addValue(path, value, msg)
}

func (v *validator) log() {
	v.oneOf("log.level", v.c.Log.Level, "debug", "info", "warn", "error")
	v.oneOf("log.format", v.c.Log.Format, "text", "json")
}

func (v *validator) bus() {
	b := v.c.Bus
	if b.URL != DefaultBusURL {
		for _, u := range strings.Split(b.URL, ",") {
			v.natsURL(strings.TrimSpace(u))
		}
	}
	if b.MaxBytes < 0 {
		v.add("bus.max_bytes", "must be positive, e.g. 1GiB; remove it for the default 1GiB")
	}
	if b.DuplicateWindow < 0 {
		v.add("bus.duplicate_window", "must be positive, e.g. 10m; remove it for the default "+formatDuration(DefaultDuplicateWindow))
	}
	switch {
	case b.MaxInflightBytes < 0:
		v.add("bus.max_inflight_bytes", "must be positive, e.g. 32MiB; remove it for the default 32MiB")
	case b.MaxBytes > 0 && int64(b.MaxInflightBytes) > b.MaxBytes:
		v.add("bus.max_inflight_bytes", fmt.Sprintf("%s is more than bus.max_bytes (%s): the stream could never hold what is in flight; lower it or raise bus.max_bytes",
			formatSize(int64(b.MaxInflightBytes)), formatSize(b.MaxBytes)))
	}
}

func (v *validator) natsURL(raw string) {
	const path = "bus.url"
	const fix = `use "embedded" or nats://host:4222 (several separated by commas; tls:// for TLS)`
	shown := redactURL(raw, true)
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		v.add(path, "empty URL in the list; "+fix)
	case err != nil:
		v.addValue(path, shown, "not a URL ("+urlErrReason(err)+"); "+fix)
	case u.Scheme != "nats" && u.Scheme != "tls":
		v.addValue(path, shown, "must be \"embedded\" or start with nats:// or tls://; "+fix)
	case u.Hostname() == "":
		v.addValue(path, shown, "has no host; "+fix)
	case u.Port() != "" && !validPort(u.Port()):
		v.addValue(path, shown, "the port must be a number from 1 to 65535; "+fix)
	}
}

// urlErrReason is url.Parse's reason without the URL, which may hold a password.
func urlErrReason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "invalid syntax"
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}

func (v *validator) admin() {
	a := v.c.Admin
	if a.Listen == AdminOff {
		return
	}
	host, port, err := net.SplitHostPort(a.Listen)
	if err != nil || !validPort(port) {
		v.addValue("admin.listen", a.Listen, `must be host:port, e.g. 127.0.0.1:7070 (or ":7070" for every interface, "off" to disable the admin server)`)
		return
	}
	if a.Token == "" && !isLoopback(host) {
		where := "is not a loopback address"
		if host == "" || host == "0.0.0.0" || host == "::" {
			where = "listens on every interface"
		}
		v.add("admin.token", fmt.Sprintf("required because admin.listen %s %s and the admin API controls pipelines; set token: ${TIDEGATE_TOKEN} (a long random string) or listen on 127.0.0.1",
			v.fi.show("admin.listen", a.Listen), where))
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// name checks one name and its uniqueness; seen maps names to their index.
func (v *validator) name(list string, i int, name string, maxLen int, seen map[string]int) {
	path := field.Index(list, i) + ".name"
	switch {
	case name == "":
		v.add(path, "required; give it a short name of lowercase letters, digits, _ and -")
	case !nameRE.MatchString(name):
		fixed := strings.Map(func(r rune) rune {
			r = unicode.ToLower(r)
			if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' || r == '-' {
				return r
			}
			return '-'
		}, name)
		v.addValue(path, name, fmt.Sprintf("names may only hold lowercase letters, digits, _ and -; e.g. %q", fixed))
	case len(name) > maxLen:
		why := ""
		if list == "pipelines" {
			why = " (so that the replication slot tidegate_<pipeline> fits PostgreSQL's 63)"
		}
		v.addValue(path, name, fmt.Sprintf("longer than %d characters%s; shorten it", maxLen, why))
	default:
		if j, dup := seen[name]; dup {
			v.addValue(path, name, fmt.Sprintf("already used by %s[%d]; names must be unique", list, j))
			return
		}
		seen[name] = i
	}
}

func (v *validator) sources() map[string]int {
	seen := map[string]int{}
	if len(v.c.Sources) == 0 {
		v.add("sources", "at least one source is required; add e.g. - {name: shop, postgres: {dsn: ..., tables: [public.orders]}}")
	}
	for i, s := range v.c.Sources {
		path := field.Index("sources", i)
		v.name("sources", i, s.Name, maxNameLen, seen)
		if s.Postgres == nil {
			v.add(path, "no kind set; add one of: postgres")
			continue
		}
		v.component(path+".postgres", s.Postgres.Validate())
	}
	return seen
}

func (v *validator) sinks() map[string]int {
	seen := map[string]int{}
	if len(v.c.Sinks) == 0 {
		v.add("sinks", "at least one sink is required; add e.g. - {name: search, elasticsearch: {urls: [http://127.0.0.1:9200]}}")
	}
	for i, s := range v.c.Sinks {
		path := field.Index("sinks", i)
		v.name("sinks", i, s.Name, maxNameLen, seen)
		switch {
		case s.Elasticsearch != nil && s.OpenSearch != nil:
			v.add(path, "both elasticsearch and opensearch are set; keep one (they take the same settings)")
		case s.Elasticsearch != nil:
			v.component(path+".elasticsearch", s.Elasticsearch.Validate())
		case s.OpenSearch != nil:
			v.component(path+".opensearch", s.OpenSearch.Validate())
		default:
			v.add(path, "no kind set; add one of: elasticsearch, opensearch")
		}
	}
	return seen
}

// leadingPath matches "field: message" errors of components that do not
// return *field.Error.
var leadingPath = regexp.MustCompile(`(?s)^([a-z_]+(?:\[\d+\])*): (.*)$`)

// component adds the problems a component's Validate returned, under prefix.
func (v *validator) component(prefix string, err error) {
	for _, e := range flatten(err) {
		var fe *field.Error
		switch {
		case errors.As(e, &fe):
			path := field.Join(prefix, fe.Path)
			if fe.ShowValue {
				v.addValue(path, fe.Value, fe.Msg)
			} else {
				v.add(path, fe.Msg)
			}
		default:
			if m := leadingPath.FindStringSubmatch(e.Error()); m != nil {
				v.add(field.Join(prefix, m[1]), m[2])
			} else {
				v.add(prefix, e.Error())
			}
		}
	}
}

func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// refMsg explains an unknown reference to a source or sink.
func refMsg(kind, name string, names map[string]int) string {
	var all []string
	for n := range names {
		all = append(all, n)
	}
	slices.Sort(all)
	msg := fmt.Sprintf("no %s has this name", kind)
	if s := suggest(name, all); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	if len(all) == 0 {
		return msg + fmt.Sprintf("; define it under %ss", kind)
	}
	return msg + fmt.Sprintf(" (%ss: %s)", kind, strings.Join(all, ", "))
}

func (v *validator) pipelines(sources, sinks map[string]int) {
	seen := map[string]int{}
	usedBy := map[string]int{} // source name → pipeline index
	indexChecked := map[int]bool{}
	if len(v.c.Pipelines) == 0 {
		v.add("pipelines", "at least one pipeline is required; add e.g. - {name: shop-search, source: shop, sinks: [search]}")
	}
	for i, p := range v.c.Pipelines {
		path := field.Index("pipelines", i)
		v.name("pipelines", i, p.Name, maxPipelineNameLen, seen)

		src := -1
		switch j, ok := sources[p.Source]; {
		case p.Source == "":
			v.add(path+".source", "required; name the source this pipeline reads")
		case !ok:
			v.addValue(path+".source", p.Source, refMsg("source", p.Source, sources))
		default:
			if k, used := usedBy[p.Source]; used {
				v.addValue(path+".source", p.Source, fmt.Sprintf("already used by pipeline %q (pipelines[%d]); each pipeline owns its source's replication slot, so define a second source (with its own slot) for this pipeline",
					v.c.Pipelines[k].Name, k))
			} else {
				usedBy[p.Source] = i
			}
			src = j
		}

		if len(p.Sinks) == 0 {
			v.add(path+".sinks", "at least one sink is required; list sink names, e.g. [search]")
		}
		seenSink := map[string]int{}
		for k, s := range p.Sinks {
			sp := field.Index(path+".sinks", k)
			j, ok := sinks[s]
			switch _, dup := seenSink[s]; {
			case !ok:
				v.addValue(sp, s, refMsg("sink", s, sinks))
				continue
			case dup:
				v.addValue(sp, s, fmt.Sprintf("listed twice (also sinks[%d]); remove one", seenSink[s]))
				continue
			}
			seenSink[s] = k
			if src >= 0 && !indexChecked[j] {
				indexChecked[j] = v.indexPerTable(p, src, j)
			}
		}

		v.oneOf(path+".snapshot", p.Snapshot, SnapshotInitial, SnapshotNever, SnapshotAlways)
		v.oneOf(path+".on_position_lost", p.OnPositionLost, PositionLostFail, PositionLostResnapshot)
		if p.BatchMaxEvents < 0 {
			v.add(path+".batch_max_events", fmt.Sprintf("must be positive; remove it for the default %d", DefaultBatchMaxEvents))
		}
		v.linger(path+".batch_linger", p.BatchLinger, DefaultBatchLinger, MaxBatchLinger, "write at once",
			"a lingering batch is not acknowledged yet, and the bus delivers it again after 5s; write e.g. 5ms or 50ms")
		v.linger(path+".publish_linger", p.PublishLinger, DefaultPublishLinger, MaxPublishLinger, "publish at once",
			"every change waits up to that long before it is published; write e.g. 2ms or 20ms")
	}
}

// linger checks a linger duration: positive up to most, or "off" (off says
// what "off" does; why, why longer is refused).
func (v *validator) linger(path string, d, def, most time.Duration, off, why string) {
	switch {
	case d < 0 && d != DurationOff:
		v.add(path, fmt.Sprintf("must be positive, or \"off\" to %s; remove it for the default %s", off, formatDuration(def)))
	case d > most:
		v.add(path, fmt.Sprintf("%s is longer than %s: %s", formatDuration(d), formatDuration(most), why))
	}
}

// indexPerTable checks that a sink fed several tables names one index per
// table: documents of different tables would overwrite each other. It
// reports whether it found a problem.
func (v *validator) indexPerTable(p Pipeline, src, sink int) bool {
	pg := v.c.Sources[src].Postgres
	s := v.c.Sinks[sink]
	es, kind := s.Elasticsearch, "elasticsearch"
	if es == nil {
		es, kind = s.OpenSearch, "opensearch"
	}
	if pg == nil || es == nil || len(pg.Tables) < 2 || strings.Contains(es.Index, "{table}") {
		return false
	}
	path := field.Index("sinks", sink) + "." + kind + ".index"
	v.addValue(path, es.Index, fmt.Sprintf("has no {table} placeholder, but pipeline %q writes %d tables to it and documents of different tables would overwrite each other; add {table}, e.g. %q",
		p.Name, len(pg.Tables), strings.TrimSuffix(es.Index, "-")+"-{table}"))
	return true
}
