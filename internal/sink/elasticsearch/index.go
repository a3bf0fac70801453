package elasticsearch

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/tidegate/tidegate/event"
)

// maxIndexNameBytes is Elasticsearch's limit on index names.
const maxIndexNameBytes = 255

// indexNamer renders index names from the template, once per origin.
type indexNamer struct {
	template string
	mu       sync.RWMutex
	cache    map[originKey]indexName
}

type originKey struct{ source, database, schema, table string }

// indexName is a rendered name, or why the origin has none.
type indexName struct {
	name string
	err  error
}

func newIndexNamer(template string) *indexNamer {
	return &indexNamer{template: template, cache: make(map[originKey]indexName)}
}

// name returns the index of an origin, or a permanent error when the
// template renders no usable name for it.
func (n *indexNamer) name(o *event.Origin) (string, error) {
	k := originKey{o.GetSource(), o.GetDatabase(), o.GetSchema(), o.GetTable()}
	n.mu.RLock()
	in, ok := n.cache[k]
	n.mu.RUnlock()
	if ok {
		return in.name, in.err
	}
	in.name = sanitizeIndexName(renderIndexTemplate(n.template, k))
	if in.name == "" || in.name == "." || in.name == ".." {
		in = indexName{err: permanent("index template %q renders no valid index name for source %q, database %q, schema %q, table %q",
			n.template, k.source, k.database, k.schema, k.table)}
	}
	n.mu.Lock()
	n.cache[k] = in
	n.mu.Unlock()
	return in.name, in.err
}

// renderIndexTemplate replaces the placeholders (validated by Config.Validate).
func renderIndexTemplate(tmpl string, k originKey) string {
	if strings.IndexByte(tmpl, '{') < 0 {
		return tmpl
	}
	return strings.NewReplacer(
		"{source}", k.source,
		"{database}", k.database,
		"{schema}", k.schema,
		"{table}", k.table,
	).Replace(tmpl)
}

// sanitizeIndexName makes a rendered template a valid index name:
// lowercase; the characters Elasticsearch forbids (\ / * ? " < > | , # : and
// space), '%' (which would need escaping in request paths) and control
// characters become '_'; leading '-', '_', '+' and '.' (which would make a
// hidden index) are removed; names longer than 255 bytes are cut and end in
// a hash of the full name so that two long names stay distinct.
func sanitizeIndexName(s string) string {
	s = strings.ToLower(s)
	s = strings.Map(func(r rune) rune {
		switch r {
		case '\\', '/', '*', '?', '"', '<', '>', '|', ',', '#', ':', ' ', '%':
			return '_'
		case utf8.RuneError:
			return '_'
		}
		if r < 0x20 || r == 0x7f {
			return '_'
		}
		return r
	}, s)
	s = strings.TrimLeft(s, "-_+.")
	if len(s) <= maxIndexNameBytes {
		return s
	}
	h := fnv.New32a()
	h.Write([]byte(s))
	suffix := fmt.Sprintf("-%08x", h.Sum32())
	cut := maxIndexNameBytes - len(suffix)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + suffix
}

// indexes creates missing indexes and remembers the ones that exist.
type indexes struct {
	backend backend
	body    []byte // {"settings":...,"mappings":...} for new indexes

	mu    sync.Mutex
	known map[string]bool
}

func newIndexes(b backend, cfg Config) (*indexes, error) {
	create := map[string]any{}
	if len(cfg.IndexSettings) > 0 {
		create["settings"] = cfg.IndexSettings
	}
	if len(cfg.Mappings) > 0 {
		create["mappings"] = cfg.Mappings
	}
	body, err := json.Marshal(create)
	if err != nil {
		return nil, fmt.Errorf("rendering index_settings and mappings as JSON: %w", err)
	}
	return &indexes{backend: b, body: body, known: make(map[string]bool)}, nil
}

func (x *indexes) isKnown(name string) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.known[name]
}

func (x *indexes) remember(name string) {
	x.mu.Lock()
	x.known[name] = true
	x.mu.Unlock()
}

// forget drops a name, after a write found its index missing.
func (x *indexes) forget(name string) {
	x.mu.Lock()
	delete(x.known, name)
	x.mu.Unlock()
}

// indexFailure is a failed attempt to make sure an index exists.
type indexFailure struct {
	index string
	req   *requestError
	// permanentErr is set when no retry can help (an invalid name): the
	// events of the index go to the dead-letter queue.
	permanentErr error
	// config is set when the configured settings or mappings are rejected:
	// retried (an operator must fix the configuration), logged as an error.
	config bool
}

// ensure makes sure index exists, creating it with the configured settings
// and mappings when it does not. An existing index (or alias) is left as it
// is. It returns nil or a failure to retry or to report.
func (x *indexes) ensure(ctx context.Context, index string) *indexFailure {
	if x.isKnown(index) {
		return nil
	}
	res, err := x.backend.indexExists(ctx, index)
	var status int
	var body []byte
	if res != nil {
		status, body = res.status, res.body
	}
	if err == nil && status == http.StatusOK {
		x.remember(index)
		return nil
	}
	if err != nil || status != http.StatusNotFound {
		_, re := classifyRequest(ctx, status, body, err)
		if re == nil {
			re = &requestError{Status: status, Reason: http.StatusText(status), Cause: "unexpected_status"}
		}
		return &indexFailure{index: index, req: re}
	}
	res, err = x.backend.createIndex(ctx, index, x.body)
	if err != nil {
		_, re := classifyRequest(ctx, 0, nil, err)
		return &indexFailure{index: index, req: re}
	}
	if res.status >= 200 && res.status < 300 {
		x.remember(index)
		return nil
	}
	e := parseError(res.body)
	var typ string
	if e != nil {
		typ = e.Type
	}
	switch {
	case typ == "resource_already_exists_exception":
		x.remember(index) // created concurrently
		return nil
	case typ == "invalid_index_name_exception":
		return &indexFailure{index: index, permanentErr: permanent("creating index %s: %s", index, e.String())}
	}
	_, re := classifyRequest(ctx, res.status, res.body, nil)
	if re == nil {
		re = &requestError{Status: res.status, Reason: e.String(), Cause: "unexpected_status"}
	}
	f := &indexFailure{index: index, req: re}
	if res.status == http.StatusBadRequest {
		f.config = true
	}
	return f
}

func (f *indexFailure) Error() string {
	if f.permanentErr != nil {
		return f.permanentErr.Error()
	}
	msg := fmt.Sprintf("creating index %s: %v", f.index, f.req)
	if f.config {
		msg += " (the index_settings or mappings of the sink's configuration are rejected: fix them; writes to this index wait until then)"
	}
	return msg
}
