package elasticsearch

// Helpers of the integration tests: they run against the real Elasticsearch
// and OpenSearch started by scripts/services.sh (TIDEGATE_TEST_ES_URL,
// TIDEGATE_TEST_OS_URL). faultTransport wraps the real server to inject
// failures; it never stands in for it.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/testkit"
)

// testCluster is one real cluster and the indexes a test creates on it.
type testCluster struct {
	t      *testing.T
	flavor string
	url    string
	prefix string // unique per test: every index of the test starts with it
	tr     *http.Transport
	hc     *http.Client
}

// eachCluster runs fn against Elasticsearch and OpenSearch, as subtests.
func eachCluster(t *testing.T, fn func(t *testing.T, c *testCluster)) {
	t.Helper()
	for _, fl := range []struct {
		flavor string
		url    func(testing.TB) string
	}{
		{FlavorElasticsearch, testkit.ElasticURL},
		{FlavorOpenSearch, testkit.OpenSearchURL},
	} {
		t.Run(fl.flavor, func(t *testing.T) {
			fn(t, newTestCluster(t, fl.flavor, fl.url(t)))
		})
	}
}

func newTestCluster(t *testing.T, flavor, u string) *testCluster {
	var rnd [5]byte
	_, _ = rand.Read(rnd[:])
	tr := http.DefaultTransport.(*http.Transport).Clone()
	c := &testCluster{
		t:      t,
		flavor: flavor,
		url:    strings.TrimRight(u, "/"),
		prefix: "tgtest-" + hex.EncodeToString(rnd[:]),
		tr:     tr,
		hc:     &http.Client{Transport: tr, Timeout: time.Minute},
	}
	t.Cleanup(func() {
		c.deleteIndexes()
		tr.CloseIdleConnections()
	})
	return c
}

// config is a sink configuration for this test: its own indexes, fast retries.
func (c *testCluster) config() Config {
	return Config{
		URLs:         []string{c.url},
		Index:        c.prefix + "-{table}",
		RetryInitial: time.Millisecond,
		RetryMax:     20 * time.Millisecond,
		IndexSettings: map[string]any{
			"number_of_shards":   1,
			"number_of_replicas": 0,
		},
	}
}

// index is the index of a table.
func (c *testCluster) index(table string) string { return c.prefix + "-" + table }

// newSink creates a sink closed at the end of the test.
func (c *testCluster) newSink(cfg Config, opts ...Option) *Sink {
	c.t.Helper()
	opts = append([]Option{WithLogger(testLogger(c.t))}, opts...)
	s, err := New(context.Background(), cfg, opts...)
	if err != nil {
		c.t.Fatalf("New: %v", err)
	}
	c.t.Cleanup(func() {
		if err := s.Close(); err != nil {
			c.t.Errorf("Close: %v", err)
		}
	})
	return s
}

// write writes events and fails the test on a batch error.
//
// Against Elasticsearch the after rows go encoded, as the pipeline sends
// them (WriteEncoded: rendered from their encoding, decoded where TOAST
// values are filled in); against OpenSearch decoded (Write). Every test
// thus covers both paths on a real server.
func (c *testCluster) write(s *Sink, events ...*event.Event) []error {
	c.t.Helper()
	var results []error
	var err error
	if c.flavor == FlavorElasticsearch {
		encoded, after := encodeAfter(c.t, events)
		results, err = s.WriteEncoded(context.Background(), encoded, after)
	} else {
		results, err = s.Write(context.Background(), events)
	}
	if err != nil {
		c.t.Fatalf("Write: %v", err)
	}
	if len(results) != len(events) {
		c.t.Fatalf("Write returned %d results for %d events", len(results), len(events))
	}
	return results
}

// encodeAfter returns copies of events whose after rows are encoded as a
// bus batch carries them: a row whose columns all have names by position
// (Batch.columns), any other with its names.
func encodeAfter(t *testing.T, events []*event.Event) ([]*event.Event, []event.EncodedRow) {
	out := make([]*event.Event, len(events))
	after := make([]event.EncodedRow, len(events))
	for i, ev := range events {
		if ev == nil || ev.After == nil {
			out[i] = ev
			continue
		}
		cp := proto.Clone(ev).(*event.Event)
		row := cp.After
		cp.After = nil
		var names []string
		if i%2 == 0 { // by position, as the emitter encodes a table's rows
			row = proto.Clone(row).(*event.Row)
			for _, col := range row.Columns {
				names = append(names, col.Name)
				col.Name = ""
			}
		}
		data, err := row.MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		out[i], after[i] = cp, event.EncodedRow{Data: data, Names: names}
	}
	return out, after
}

// writeOK writes events and fails the test unless every result is nil.
func (c *testCluster) writeOK(s *Sink, events ...*event.Event) {
	c.t.Helper()
	for i, err := range c.write(s, events...) {
		if err != nil {
			c.t.Fatalf("result %d: %v", i, err)
		}
	}
}

// do sends a request to the cluster.
func (c *testCluster) do(method, path, body string) (int, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return res.StatusCode, b
}

func (c *testCluster) mustDo(method, path, body string) []byte {
	c.t.Helper()
	status, b := c.do(method, path, body)
	if status/100 != 2 {
		c.t.Fatalf("%s %s: HTTP %d: %s", method, path, status, b)
	}
	return b
}

func (c *testCluster) refresh(index string) {
	c.t.Helper()
	c.mustDo(http.MethodPost, "/"+index+"/_refresh", "")
}

// getDoc returns the source and version of a document, found=false when it
// does not exist.
func (c *testCluster) getDoc(index, id string) (source map[string]any, version int64, found bool) {
	c.t.Helper()
	status, b := c.do(http.MethodGet, "/"+index+"/_doc/"+url.PathEscape(id), "")
	if status == http.StatusNotFound {
		return nil, 0, false
	}
	if status != http.StatusOK {
		c.t.Fatalf("GET doc %s/%s: HTTP %d: %s", index, id, status, b)
	}
	var res struct {
		Found   bool           `json:"found"`
		Version int64          `json:"_version"`
		Source  map[string]any `json:"_source"`
	}
	decodeJSON(c.t, b, &res)
	return res.Source, res.Version, res.Found
}

// allDocs returns every document of an index by _id (after a refresh).
func (c *testCluster) allDocs(index string) map[string]map[string]any {
	c.t.Helper()
	c.refresh(index)
	b := c.mustDo(http.MethodPost, "/"+index+"/_search", `{"size":10000,"query":{"match_all":{}}}`)
	var res struct {
		Hits struct {
			Hits []struct {
				ID     string         `json:"_id"`
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	decodeJSON(c.t, b, &res)
	docs := make(map[string]map[string]any, len(res.Hits.Hits))
	for _, h := range res.Hits.Hits {
		docs[h.ID] = h.Source
	}
	return docs
}

// deleteIndexes deletes the indexes of the test, by name.
func (c *testCluster) deleteIndexes() {
	status, b := c.do(http.MethodGet, "/_cat/indices/"+c.prefix+"*?format=json&h=index", "")
	if status != http.StatusOK {
		c.t.Errorf("listing the test's indexes: HTTP %d: %s", status, b)
		return
	}
	var rows []struct {
		Index string `json:"index"`
	}
	decodeJSON(c.t, b, &rows)
	for _, r := range rows {
		if status, b := c.do(http.MethodDelete, "/"+r.Index, ""); status != http.StatusOK {
			c.t.Errorf("deleting index %s: HTTP %d: %s", r.Index, status, b)
		}
	}
}

func decodeJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
}

// parseDoc decodes a JSON object the way documents are read back.
func parseDoc(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	decodeJSON(t, []byte(s), &m)
	return m
}

// assertDoc checks that a document exists with the given source.
func (c *testCluster) assertDoc(index, id string, want map[string]any) {
	c.t.Helper()
	got, _, found := c.getDoc(index, id)
	if !found {
		c.t.Fatalf("document %s/%s not found, want %v", index, id, want)
	}
	if !reflect.DeepEqual(got, want) {
		c.t.Fatalf("document %s/%s:\n got %v\nwant %v", index, id, got, want)
	}
}

func (c *testCluster) assertNoDoc(index, id string) {
	c.t.Helper()
	if got, _, found := c.getDoc(index, id); found {
		c.t.Fatalf("document %s/%s exists: %v", index, id, got)
	}
}

// testLogger writes the sink's log lines to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(&testWriter{t: t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu sync.Mutex
	t  *testing.T
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// faultTransport wraps the real transport and injects failures into bulk
// requests: before may answer instead of the server (a status or a
// connection error), after may rewrite the server's answer.
type faultTransport struct {
	next   http.RoundTripper
	before func(call int, req *http.Request) (*http.Response, error)
	after  func(call int, req *http.Request, res *http.Response) *http.Response
	// all applies before/after to every request, not only bulk requests.
	all bool

	mu    sync.Mutex
	calls int
}

func newFaultTransport() *faultTransport {
	return &faultTransport{next: http.DefaultTransport.(*http.Transport).Clone()}
}

func (f *faultTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !f.all && !strings.HasSuffix(req.URL.Path, "/_bulk") {
		return f.next.RoundTrip(req)
	}
	f.mu.Lock()
	call := f.calls
	f.calls++
	f.mu.Unlock()
	if f.before != nil {
		if res, err := f.before(call, req); res != nil || err != nil {
			if req.Body != nil {
				_, _ = io.Copy(io.Discard, req.Body)
				req.Body.Close()
			}
			return res, err
		}
	}
	res, err := f.next.RoundTrip(req)
	if err == nil && f.after != nil {
		res = f.after(call, req, res)
	}
	return res, err
}

func (f *faultTransport) CloseIdleConnections() { closeIdle(f.next) }

func (f *faultTransport) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// fakeResponse is an injected answer.
func fakeResponse(req *http.Request, status int, header http.Header, body string) *http.Response {
	if header == nil {
		header = http.Header{}
	}
	header.Set("Content-Type", "application/json")
	return &http.Response{
		StatusCode:    status,
		Status:        http.StatusText(status),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        header,
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// replaceBody returns res with a new body.
func replaceBody(res *http.Response, body []byte) *http.Response {
	res.Body = io.NopCloser(bytes.NewReader(body))
	res.ContentLength = int64(len(body))
	res.Header.Del("Content-Length")
	return res
}
