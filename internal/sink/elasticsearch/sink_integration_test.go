package elasticsearch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/sink"
)

func TestIntegrationDetect(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		s := c.newSink(c.config())
		info := s.Info()
		if info.Flavor != c.flavor {
			t.Errorf("flavor = %q, want %q", info.Flavor, c.flavor)
		}
		// The version the node itself reports.
		var nodes struct {
			Nodes map[string]struct {
				Version string `json:"version"`
			} `json:"nodes"`
		}
		decodeJSON(t, c.mustDo(http.MethodGet, "/_nodes/_local?filter_path=nodes.*.version", ""), &nodes)
		for _, n := range nodes.Nodes {
			if info.Version != n.Version {
				t.Errorf("version = %q, want %q", info.Version, n.Version)
			}
		}
	})
}

func TestIntegrationRoundTrip(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		s := c.newSink(c.config())
		idx := c.index("orders")
		ts := event.TimestampValue(&event.Timestamp{UnixMicros: 1_714_979_289_123_456})
		c.writeOK(s, ins("orders", 10, 1,
			"name", "café \"quoted\"\nline",
			"qty", 3,
			"price", event.Decimal("12.50"),
			"ratio", 0.25,
			"paid", true,
			"note", nil,
			"at", ts,
			"tags", event.ListValue([]*event.Value{event.Text("a"), event.Text("b")}),
			"extra", event.JSON(`{"k":[1,2],"o":{"z":null}}`),
		))
		c.assertDoc(idx, "1", parseDoc(t, `{"id":1,"name":"café \"quoted\"\nline","qty":3,"price":12.50,"ratio":0.25,"paid":true,"note":null,"at":"2024-05-06T07:08:09.123456Z","tags":["a","b"],"extra":{"k":[1,2],"o":{"z":null}}}`))
		_, version, _ := c.getDoc(idx, "1")
		if version != 10 {
			t.Errorf("_version = %d, want the event version 10", version)
		}

		// An update replaces the whole document.
		c.writeOK(s, upd("orders", 11, 1, "name", "renamed"))
		c.assertDoc(idx, "1", parseDoc(t, `{"id":1,"name":"renamed"}`))

		c.writeOK(s, del("orders", 12, 1))
		c.assertNoDoc(idx, "1")
	})
}

func TestIntegrationVersioning(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		s := c.newSink(c.config())
		idx := c.index("items")

		// Replaying an older version is stale: success, no change.
		c.writeOK(s, ins("items", 50, "a", "v", "new"))
		c.writeOK(s, upd("items", 40, "a", "v", "old"))
		c.assertDoc(idx, "a", parseDoc(t, `{"id":"a","v":"new"}`))

		// Same version, in order (several changes in one transaction):
		// the later one wins, in one batch or across batches.
		c.writeOK(s, upd("items", 60, "a", "v", "tx-1"))
		c.writeOK(s, upd("items", 60, "a", "v", "tx-2"))
		c.assertDoc(idx, "a", parseDoc(t, `{"id":"a","v":"tx-2"}`))
		c.writeOK(s, upd("items", 70, "a", "v", "tx-3"), upd("items", 70, "a", "v", "tx-4"))
		c.assertDoc(idx, "a", parseDoc(t, `{"id":"a","v":"tx-4"}`))

		// In one batch, an older event after a newer one does not win.
		c.writeOK(s, upd("items", 80, "a", "v", "newest"), upd("items", 75, "a", "v", "late"))
		c.assertDoc(idx, "a", parseDoc(t, `{"id":"a","v":"newest"}`))

		// Delete, replay of the older insert (stale), re-insert with a higher version.
		c.writeOK(s, del("items", 90, "a"))
		c.writeOK(s, upd("items", 80, "a", "v", "newest"))
		c.assertNoDoc(idx, "a")
		c.writeOK(s, ins("items", 100, "a", "v", "reborn"))
		c.assertDoc(idx, "a", parseDoc(t, `{"id":"a","v":"reborn"}`))

		// Deleting a document that does not exist is a success.
		c.writeOK(s, del("items", 5, "never-existed"))
		c.assertNoDoc(idx, "never-existed")

		// Deleting from an index that does not exist yet.
		c.writeOK(s, del("ghosts", 5, "x"))
	})
}

func TestIntegrationCompositeKey(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		s := c.newSink(c.config())
		e := ins("lines", 1, 7, "qty", 2)
		e.Key = []*event.Column{{Name: "order_id", Value: event.Int(7)}, {Name: "sku", Value: event.Text("x/1 \"y\"")}}
		c.writeOK(s, e)
		id := event.DocumentID(e.Key)
		if id != `[7,"x/1 \"y\""]` {
			t.Fatalf("DocumentID = %s", id)
		}
		c.assertDoc(c.index("lines"), id, parseDoc(t, `{"id":7,"qty":2}`))
		c.writeOK(s, &event.Event{Op: event.Op_OP_DELETE, Origin: origin("lines"), Version: 2, Key: e.Key})
		c.assertNoDoc(c.index("lines"), id)
	})
}

func TestIntegrationTruncate(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		cfg := c.config()
		cfg.BulkMaxActions = 3 // several scroll pages and bulk requests
		s := c.newSink(cfg)
		var before []*event.Event
		for i := range 10 {
			before = append(before, ins("t", uint64(10+i), i, "v", fmt.Sprint(i)))
		}
		c.writeOK(s, append(before, ins("other", 5, 1, "v", "kept"))...)
		// In one batch: writes before the truncate (must be applied first,
		// then deleted), the truncate, writes after it (kept).
		results := c.write(s,
			ins("t", 30, 100, "v", "before"),
			upd("t", 31, 1, "v", "before"),
			truncateEvent("t", 40),
			ins("t", 41, 200, "v", "after"),
			ins("t", 42, 1, "v", "after"),
		)
		for i, err := range results {
			if err != nil {
				t.Fatalf("result %d: %v", i, err)
			}
		}
		docs := c.allDocs(c.index("t"))
		want := map[string]map[string]any{
			"200": parseDoc(t, `{"id":200,"v":"after"}`),
			"1":   parseDoc(t, `{"id":1,"v":"after"}`),
		}
		if !reflect.DeepEqual(docs, want) {
			t.Errorf("after truncate: %v, want %v", docs, want)
		}
		c.assertDoc(c.index("other"), "1", parseDoc(t, `{"id":1,"v":"kept"}`))

		// Replaying the truncate does not delete what came after it.
		c.writeOK(s, truncateEvent("t", 40))
		if docs := c.allDocs(c.index("t")); !reflect.DeepEqual(docs, want) {
			t.Errorf("after replayed truncate: %v, want %v", docs, want)
		}
		// Replaying an insert deleted by the truncate does not resurrect it.
		c.writeOK(s, ins("t", 30, 100, "v", "before"))
		c.assertNoDoc(c.index("t"), "100")

		// Truncating a table whose index does not exist.
		c.writeOK(s, truncateEvent("nothing", 50))
		if status, _ := c.do(http.MethodHead, "/"+c.index("nothing"), ""); status != http.StatusNotFound {
			t.Errorf("truncate created index %s (HTTP %d)", c.index("nothing"), status)
		}
	})
}

func TestIntegrationTruncateIgnore(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		cfg := c.config()
		cfg.Truncate = TruncateIgnore
		s := c.newSink(cfg)
		c.writeOK(s, ins("t", 1, 1, "v", 1), truncateEvent("t", 2))
		c.assertDoc(c.index("t"), "1", parseDoc(t, `{"id":1,"v":1}`))
	})
}

func TestIntegrationIndexCreation(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		cfg := c.config()
		cfg.Mappings = map[string]any{
			"dynamic": "strict",
			"properties": map[string]any{
				"id":    map[string]any{"type": "long"},
				"price": map[string]any{"type": "integer"},
				"name":  map[string]any{"type": "keyword"},
			},
		}
		// An index that exists already is left as it is.
		existing := c.index("existing")
		c.mustDo(http.MethodPut, "/"+existing, `{"mappings":{"properties":{"name":{"type":"text"}}}}`)

		s := c.newSink(cfg)
		c.writeOK(s, ins("products", 1, 1, "price", 10, "name", "n"), ins("existing", 1, 1, "name", "n"))

		var mapping map[string]struct {
			Mappings struct {
				Dynamic    any `json:"dynamic"`
				Properties map[string]struct {
					Type string `json:"type"`
				} `json:"properties"`
			} `json:"mappings"`
		}
		idx := c.index("products")
		decodeJSON(t, c.mustDo(http.MethodGet, "/"+idx+"/_mapping", ""), &mapping)
		m := mapping[idx].Mappings
		if m.Properties["price"].Type != "integer" || m.Properties["name"].Type != "keyword" || fmt.Sprint(m.Dynamic) != "strict" {
			t.Errorf("mapping of the created index: %+v", m)
		}
		var settings map[string]struct {
			Settings struct {
				Index struct {
					Replicas string `json:"number_of_replicas"`
				} `json:"index"`
			} `json:"settings"`
		}
		decodeJSON(t, c.mustDo(http.MethodGet, "/"+idx+"/_settings", ""), &settings)
		if r := settings[idx].Settings.Index.Replicas; r != "0" {
			t.Errorf("number_of_replicas = %q, want 0", r)
		}
		decodeJSON(t, c.mustDo(http.MethodGet, "/"+existing+"/_mapping", ""), &mapping)
		if typ := mapping[existing].Mappings.Properties["name"].Type; typ != "text" {
			t.Errorf("the existing index's mapping was changed: name is %q", typ)
		}
	})
}

func TestIntegrationMappingConflict(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		cfg := c.config()
		cfg.Mappings = map[string]any{"properties": map[string]any{"price": map[string]any{"type": "integer"}}}
		s := c.newSink(cfg)
		idx := c.index("p")
		results := c.write(s,
			ins("p", 1, 1, "price", 1),
			ins("p", 1, 2, "price", "abc"),
			ins("p", 1, 3, "price", 3),
			// Document 4: the newer event is rejected, so the older one,
			// superseded at first, is applied instead.
			ins("p", 1, 4, "price", 40),
			upd("p", 2, 4, "price", "bad"),
		)
		for _, i := range []int{0, 2, 3} {
			if results[i] != nil {
				t.Errorf("result %d: %v", i, results[i])
			}
		}
		for _, i := range []int{1, 4} {
			var pe *sink.PermanentError
			if !errors.As(results[i], &pe) {
				t.Fatalf("result %d = %v, want a PermanentError", i, results[i])
			}
			if pe.Status != http.StatusBadRequest || !strings.Contains(pe.Reason, "price") || !strings.Contains(pe.Reason, "caused by") {
				t.Errorf("result %d: status %d, reason %q", i, pe.Status, pe.Reason)
			}
		}
		c.assertDoc(idx, "1", parseDoc(t, `{"id":1,"price":1}`))
		c.assertNoDoc(idx, "2")
		c.assertDoc(idx, "3", parseDoc(t, `{"id":3,"price":3}`))
		c.assertDoc(idx, "4", parseDoc(t, `{"id":4,"price":40}`))
	})
}

func TestIntegrationRejectedEvents(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		s := c.newSink(c.config())
		idx := c.index("docs")
		c.writeOK(s, ins("docs", 1, 1, "body", "full text", "n", 1))

		// (Unchanged TOAST columns are filled in, not rejected: see
		// toast_integration_test.go.)
		results := c.write(s,
			ins("docs", 1, 2, "j", event.JSON("{\n  \"a\": 1\n}")), // compacted
			ins("docs", 1, 3, "j", event.JSON("{\n bad")),          // invalid, rejected by us
			ins("docs", 1, 4, "j", event.JSON("{bad")),             // invalid, rejected by the server
			ins("docs", 1, strings.Repeat("k", 600), "n", 1),       // id too long
		)
		if results[0] != nil {
			t.Errorf("JSON with newlines: %v", results[0])
		}
		for _, i := range []int{1, 2, 3} {
			if !sink.IsPermanent(results[i]) {
				t.Errorf("result %d = %v, want a permanent error", i, results[i])
			}
		}
		c.assertDoc(idx, "1", parseDoc(t, `{"id":1,"body":"full text","n":1}`))
		c.assertDoc(idx, "2", parseDoc(t, `{"id":2,"j":{"a":1}}`))
		c.assertNoDoc(idx, "3")
		c.assertNoDoc(idx, "4")
	})
}

// TestIntegrationLastWriteWins sends many random operations on few
// documents, in batches split into many small requests sent concurrently,
// with stale replays mixed in, and compares the index with a model of
// external_gte versioning.
func TestIntegrationLastWriteWins(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		seed := rand.Uint64()
		t.Logf("seed %d", seed)
		rng := rand.New(rand.NewPCG(seed, 1))
		cfg := c.config()
		cfg.BulkMaxBytes = 1024
		cfg.BulkMaxActions = 5
		cfg.Concurrency = 4
		s := c.newSink(cfg)

		type state struct {
			version uint64
			exists  bool
			doc     map[string]any
		}
		model := map[int]*state{}
		var history []*event.Event
		version := uint64(1000)
		for range 25 {
			batch := make([]*event.Event, rng.IntN(150)+1)
			for i := range batch {
				id := rng.IntN(15)
				st := model[id]
				if rng.IntN(5) > 0 { // most changes get a new version, some share the previous one
					version++
				}
				var e *event.Event
				switch r := rng.IntN(10); {
				case r == 0 && len(history) > 0: // replay of an earlier event
					e = history[rng.IntN(len(history))]
				case st != nil && st.exists && r < 3:
					e = del("docs", version, id)
				default:
					e = upd("docs", version, id, "v", version, "pad", strings.Repeat("p", rng.IntN(300)))
				}
				batch[i] = e
				history = append(history, e)
				// The model: external_gte applies versions >= the stored one.
				k := int(e.Key[0].Value.GetInt())
				if st := model[k]; st == nil || e.Version >= st.version {
					ns := &state{version: e.Version, exists: e.Op != event.Op_OP_DELETE}
					if ns.exists {
						var doc map[string]any
						decodeJSON(t, event.AppendRowJSON(nil, e.After), &doc)
						ns.doc = doc
					}
					model[k] = ns
				}
			}
			c.writeOK(s, batch...)
		}
		want := map[string]map[string]any{}
		for id, st := range model {
			if st.exists {
				want[fmt.Sprint(id)] = st.doc
			}
		}
		if got := c.allDocs(c.index("docs")); !reflect.DeepEqual(got, want) {
			t.Errorf("index differs from the model:\n got %v\nwant %v", got, want)
		}
	})
}

// A damaged encoded row rejects its event only: the others of the batch
// are applied, rendered from their encoding or, for a shape the fast path
// does not read (a column's name written twice), decoded first.
func TestIntegrationEncodedRows(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		s := c.newSink(c.config())
		idx := c.index("docs")
		good, _ := row("id", 1, "n", 1).MarshalVT()
		twice := append(append([]byte{}, good...), 0x0a, 0x06, 0x0a, 0x01, 'a', 0x0a, 0x01, 'b') // + a column named "a", then "b"
		events := []*event.Event{
			{Op: event.Op_OP_SNAPSHOT, Origin: origin("docs"), Version: 1, Key: keyOf(1)},
			{Op: event.Op_OP_SNAPSHOT, Origin: origin("docs"), Version: 1, Key: keyOf(2)},
			{Op: event.Op_OP_SNAPSHOT, Origin: origin("docs"), Version: 1, Key: keyOf(3)},
		}
		after := []event.EncodedRow{{Data: good}, {Data: good[:len(good)-1]}, {Data: twice}}
		results, err := s.WriteEncoded(context.Background(), events, after)
		if err != nil {
			t.Fatal(err)
		}
		if results[0] != nil || results[2] != nil {
			t.Errorf("results %v, want the rows 1 and 3 applied", results)
		}
		if !sink.IsPermanent(results[1]) || !strings.Contains(results[1].Error(), "does not decode") {
			t.Errorf("damaged row: %v, want a permanent error saying it does not decode", results[1])
		}
		c.assertDoc(idx, "1", parseDoc(t, `{"id":1,"n":1}`))
		c.assertNoDoc(idx, "2")
		c.assertDoc(idx, "3", parseDoc(t, `{"id":1,"n":1,"b":null}`))
	})
}
