package elasticsearch

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/sink"
)

// largeText is a deterministic, incompressible text of about n bytes.
func largeText(seed string, n int) string {
	var b strings.Builder
	sum := sha256.Sum256([]byte(seed))
	for b.Len() < n {
		b.WriteString(hex.EncodeToString(sum[:]))
		sum = sha256.Sum256(sum[:])
	}
	return b.String()
}

// largeJSON is a jsonb-like text whose numbers a re-encoding would change
// (1.50, a decimal beyond float64 precision).
func largeJSON(seed string, n int) string {
	return `{"big": 12345678901234567890.123456789, "seed": "` + seed + `", "chain": ["` + largeText(seed, n) + `"], "price": 1.50}`
}

// partial is an update that lacks the unchanged TOAST columns.
func partial(table string, version uint64, id any, unchanged []string, kv ...any) *event.Event {
	e := upd(table, version, id, kv...)
	e.Unchanged = unchanged
	return e
}

// rawSource returns the stored _source of a document, field by field,
// byte for byte.
func (c *testCluster) rawSource(index, id string) (map[string]json.RawMessage, int64) {
	c.t.Helper()
	status, b := c.do(http.MethodGet, "/"+index+"/_doc/"+url.PathEscape(id), "")
	if status != http.StatusOK {
		c.t.Fatalf("GET %s/%s: HTTP %d: %s", index, id, status, b)
	}
	var res struct {
		Version int64                      `json:"_version"`
		Source  map[string]json.RawMessage `json:"_source"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		c.t.Fatalf("decoding %s: %v", b, err)
	}
	return res.Source, res.Version
}

// assertFields checks fields of a stored document byte for byte (as JSON
// text) and its version.
func (c *testCluster) assertFields(index, id string, version int64, want map[string]string) {
	c.t.Helper()
	src, v := c.rawSource(index, id)
	if v != version {
		c.t.Errorf("document %s/%s has version %d, want %d", index, id, v, version)
	}
	for name, w := range want {
		got, ok := src[name]
		switch {
		case !ok:
			c.t.Errorf("document %s/%s has no field %q (fields: %v)", index, id, name, keys(src))
		case string(got) != w:
			c.t.Errorf("document %s/%s field %q differs:\n got %.200s… (%d bytes)\nwant %.200s… (%d bytes)", index, id, name, got, len(got), w, len(w))
		}
	}
}

func keys(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// mgetCounter counts the _mget requests a sink sends and can fail the
// first ones with 503 (the real server answers the others).
type mgetCounter struct {
	mu    sync.Mutex
	calls int
	fail  int // fail this many first calls
}

func (m *mgetCounter) transport() *faultTransport {
	ft := newFaultTransport()
	ft.all = true
	ft.before = func(_ int, req *http.Request) (*http.Response, error) {
		if !strings.HasSuffix(req.URL.Path, "/_mget") {
			return nil, nil
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		m.calls++
		if m.calls <= m.fail {
			return fakeResponse(req, http.StatusServiceUnavailable, nil, `{"error":{"type":"injected","reason":"injected 503"},"status":503}`), nil
		}
		return nil, nil
	}
	return ft
}

func (m *mgetCounter) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.calls
}

// Values missing from events are read from the index: byte for byte
// (numbers included), with the event's version, for many documents in
// bounded rounds of small _mget and bulk requests, after a transient
// failure of _mget.
func TestIntegrationToastFillFromIndex(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		mc := &mgetCounter{fail: 1}
		reg := prometheus.NewRegistry()
		cfg := c.config()
		cfg.BulkMaxActions = 3 // _mget requests of 3 documents, 2 in flight
		cfg.Concurrency = 2
		cfg.BulkMaxBytes = 64 << 10 // a round reads at most ~128 KiB of stored documents
		s := c.newSink(cfg, WithTransport(mc.transport()), WithRegisterer(reg))
		idx := c.index("posts")

		const n = 12
		body, doc := map[int]string{}, map[int]string{}
		var full, partials []*event.Event
		for id := range n {
			body[id] = largeText("body"+string(rune('a'+id)), 20_000)
			doc[id] = largeJSON("doc"+string(rune('a'+id)), 20_000)
			full = append(full, ins("posts", 10, id, "title", "first", "body", body[id], "doc", event.JSON(doc[id])))
			// Odd documents lack both values, even ones only the body.
			unchanged := []string{"body"}
			kv := []any{"title", "second", "doc", event.JSON(doc[id])}
			if id%2 == 1 {
				unchanged, kv = []string{"body", "doc"}, []any{"title", "second"}
			}
			partials = append(partials, partial("posts", 20, id, unchanged, kv...))
		}
		c.writeOK(s, full...)
		// A document without unchanged columns in the same batch.
		c.writeOK(s, append(partials, ins("posts", 20, 100, "title", "plain"))...)

		for id := range n {
			c.assertFields(idx, jsonID(id), 20, map[string]string{
				"title": `"second"`,
				"body":  string(event.AppendString(nil, body[id])),
				"doc":   doc[id],
			})
		}
		c.assertDoc(idx, "100", parseDoc(t, `{"id":100,"title":"plain"}`))
		// 12 documents, 3 per request, after one injected failure: at
		// least 5 requests; a round reads at most the budget, so more
		// than one round.
		if got := mc.count(); got < 5 {
			t.Errorf("%d _mget requests, want at least 5 (4 of 3 documents, one retried)", got)
		}
		if got := metricValue(t, reg, "tidegate_sink_toast_documents_total", "outcome", "index"); got != n {
			t.Errorf("%v documents filled in from the index, want %d", got, n)
		}

		// Replaying the batch is idempotent.
		c.writeOK(s, partials...)
		c.assertFields(idx, "1", 20, map[string]string{"body": string(event.AppendString(nil, body[1])), "doc": doc[1]})
	})
}

func jsonID(id int) string { return event.DocumentID(keyOf(id)) }

// Values missing from an event are taken from the latest earlier event of
// the same batch (by version, then arrival), without reading the index.
func TestIntegrationToastFillFromBatch(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		mc := &mgetCounter{}
		reg := prometheus.NewRegistry()
		s := c.newSink(c.config(), WithTransport(mc.transport()), WithRegisterer(reg))
		idx := c.index("posts")
		b0, b1, b2 := largeText("b0", 5000), largeText("b1", 5000), largeText("b2", 5000)

		results := c.write(s,
			// Document 1: inserted, then two updates of the title only.
			ins("posts", 10, 1, "title", "t1", "body", b1),
			partial("posts", 11, 1, []string{"body"}, "title", "t2"),
			partial("posts", 12, 1, []string{"body"}, "title", "t3"),
			// Document 2: the body changes at version 20; a stale replay
			// (version 15) arrives later; the last change of version 20
			// lacks the body: it is the one of version 20, not the replay's.
			ins("posts", 10, 2, "title", "t1", "body", b0),
			upd("posts", 20, 2, "title", "t2", "body", b2),
			upd("posts", 15, 2, "title", "stale", "body", b0),
			partial("posts", 20, 2, []string{"body"}, "title", "t3"),
			// Document 3: deleted, then an update that lacks the body: the
			// value is unknowable.
			ins("posts", 10, 3, "title", "t1", "body", b1),
			del("posts", 11, 3),
			partial("posts", 12, 3, []string{"body"}, "title", "t2"),
		)
		for i, err := range results {
			if i == 9 {
				continue
			}
			if err != nil {
				t.Errorf("result %d: %v", i, err)
			}
		}
		var pe *sink.PermanentError
		if !errors.As(results[9], &pe) || !strings.Contains(pe.Reason, "deleted earlier in the batch") || !strings.Contains(pe.Reason, "REPLICA IDENTITY FULL on public.posts") {
			t.Errorf("update after a delete in the batch: %v, want a PermanentError saying the row was deleted", results[9])
		}
		c.assertDoc(idx, "1", parseDoc(t, `{"id":1,"title":"t3","body":"`+b1+`"}`))
		c.assertDoc(idx, "2", parseDoc(t, `{"id":2,"title":"t3","body":"`+b2+`"}`))
		c.assertNoDoc(idx, "3")
		if got := mc.count(); got != 0 {
			t.Errorf("%d _mget requests, want none: every value was in the batch", got)
		}
		if got := metricValue(t, reg, "tidegate_sink_toast_documents_total", "outcome", "batch"); got != 2 {
			t.Errorf("%v documents filled in from the batch, want 2", got)
		}
	})
}

// An event older than the stored document is stale, as for a 409: success,
// nothing written.
func TestIntegrationToastStale(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		reg := prometheus.NewRegistry()
		s := c.newSink(c.config(), WithRegisterer(reg))
		idx := c.index("posts")
		c.writeOK(s, ins("posts", 30, 1, "title", "newest", "body", "kept"))
		results := c.write(s,
			partial("posts", 20, 1, []string{"body"}, "title", "old"),
			partial("posts", 25, 1, []string{"body"}, "title", "older than the index"),
		)
		for i, err := range results {
			if err != nil {
				t.Errorf("result %d = %v, want nil (stale)", i, err)
			}
		}
		c.assertFields(idx, "1", 30, map[string]string{"title": `"newest"`, "body": `"kept"`})
		// Found stale when reading the index: nothing was sent.
		if got := metricValue(t, reg, "tidegate_sink_toast_documents_total", "outcome", "stale"); got != 1 {
			t.Errorf("%v stale documents, want 1", got)
		}
		if got := metricValue(t, reg, "tidegate_sink_bulk_requests_total", "", ""); got != 1 {
			t.Errorf("%v bulk requests, want 1 (the first write only)", got)
		}
	})
}

// A value neither in the batch nor in the index is never invented: the
// event goes to the dead-letter queue with the reason and the fix.
func TestIntegrationToastMissing(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		s := c.newSink(c.config())
		idx := c.index("posts")
		c.writeOK(s,
			ins("posts", 10, 1, "title", "other document"),
			ins("posts", 10, 7, "title", "no body field"),
		)
		results := c.write(s,
			// Document 42 is not in the index; both of its events lack
			// the body.
			partial("posts", 20, 42, []string{"body"}, "title", "a"),
			partial("posts", 21, 42, []string{"body", "doc"}, "title", "b"),
			// Document 7 exists, without the field.
			partial("posts", 20, 7, []string{"body"}, "title", "c"),
			// The index of this table does not exist.
			partial("drafts", 20, 1, []string{"body"}, "title", "d"),
		)
		wants := []string{
			`unchanged TOAST column "body" of document 42 is not in index ` + idx + ` (the document is not there); set REPLICA IDENTITY FULL on public.posts so that PostgreSQL sends it`,
			`unchanged TOAST columns "body", "doc" of document 42 are not in index ` + idx + ` (the document is not there); set REPLICA IDENTITY FULL on public.posts so that PostgreSQL sends them`,
			`unchanged TOAST column "body" of document 7 is not in index ` + idx + ` (the stored document (version 10) has no such field`,
			`unchanged TOAST column "body" of document 1 is not in index ` + c.index("drafts") + ` (the index does not exist)`,
		}
		for i, want := range wants {
			var pe *sink.PermanentError
			if !errors.As(results[i], &pe) || !strings.Contains(pe.Reason, want) {
				t.Errorf("result %d = %v, want a PermanentError containing %q", i, results[i], want)
			}
		}
		c.assertNoDoc(idx, "42")
		c.assertDoc(idx, "7", parseDoc(t, `{"id":7,"title":"no body field"}`))
		if status, _ := c.do(http.MethodHead, "/"+c.index("drafts"), ""); status != http.StatusNotFound {
			t.Errorf("a rejected event created index %s (HTTP %d)", c.index("drafts"), status)
		}
	})
}

// Events delivered again after a crash: the first run applied an update
// lacking a TOAST value and a later delete of the row (or a delete in the
// same transaction); delivered again alone, the update finds no document.
// A probe finds the delete's tombstone: the update is stale, not an error.
// A document that was never there still sends the event to the DLQ.
func TestIntegrationToastDeletedByNewerEvent(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		reg := prometheus.NewRegistry()
		s := c.newSink(c.config(), WithRegisterer(reg))
		idx := c.index("posts")
		c.writeOK(s,
			ins("posts", 10, 1, "title", "a", "body", "large"),
			ins("posts", 10, 2, "title", "b", "body", "large"),
		)
		c.writeOK(s, del("posts", 30, 1), del("posts", 20, 2))
		results := c.write(s,
			partial("posts", 20, 1, []string{"body"}, "title", "deleted later"),
			partial("posts", 20, 2, []string{"body"}, "title", "deleted in the same transaction"),
			partial("posts", 20, 3, []string{"body"}, "title", "never indexed"),
		)
		for i, err := range results[:2] {
			if err != nil {
				t.Errorf("result %d = %v, want nil (stale: deleted by a newer event)", i, err)
			}
		}
		var pe *sink.PermanentError
		if !errors.As(results[2], &pe) || !strings.Contains(pe.Reason, "(the document is not there)") {
			t.Errorf("result 2 = %v, want a PermanentError: the document was never there", results[2])
		}
		for _, id := range []string{"1", "2", "3"} {
			c.assertNoDoc(idx, id)
		}
		if got := metricValue(t, reg, "tidegate_sink_toast_documents_total", "outcome", "stale"); got != 2 {
			t.Errorf("%v stale documents, want 2", got)
		}
		// The probe left a tombstone at the version of document 3's event:
		// an older write of it is refused, a newer one applies.
		c.writeOK(s, ins("posts", 15, 3, "title", "older"))
		c.assertNoDoc(idx, "3")
		c.writeOK(s, ins("posts", 25, 3, "title", "newer", "body", "x"))
		c.assertFields(idx, "3", 25, map[string]string{"title": `"newer"`})
	})
}
