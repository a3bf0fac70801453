package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/sink"
)

// syncBuffer collects log output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func batchOf(table string, n int) ([]*event.Event, map[string]map[string]any) {
	var events []*event.Event
	want := map[string]map[string]any{}
	for i := range n {
		id := i % (n/2 + 1) // some documents get two events
		e := upd(table, uint64(100+i), id, "v", i)
		events = append(events, e)
		var doc map[string]any
		d := json.NewDecoder(bytes.NewReader(event.AppendRowJSON(nil, e.After)))
		d.UseNumber()
		_ = d.Decode(&doc)
		want[event.DocumentID(e.Key)] = doc
	}
	return events, want
}

func TestIntegrationRetryRequestFailures(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		ft := newFaultTransport()
		ft.before = func(call int, req *http.Request) (*http.Response, error) {
			switch call {
			case 0, 1:
				return fakeResponse(req, 503, nil, `{"error":{"type":"unavailable_shards_exception","reason":"injected"},"status":503}`), nil
			case 2:
				return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
			case 3:
				return fakeResponse(req, 429, nil, `{"error":{"type":"es_rejected_execution_exception","reason":"injected"},"status":429}`), nil
			case 4:
				return fakeResponse(req, 401, nil, `{"error":{"type":"security_exception","reason":"injected"},"status":401}`), nil
			}
			return nil, nil
		}
		reg := prometheus.NewRegistry()
		var logs syncBuffer
		s := c.newSink(c.config(), WithTransport(ft), WithRegisterer(reg), WithName("search"),
			WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		events, want := batchOf("r", 20)
		c.writeOK(s, events...)
		if got := c.allDocs(c.index("r")); !equalDocs(got, want) {
			t.Errorf("documents:\n got %v\nwant %v", got, want)
		}
		for reason, n := range map[string]float64{"status_5xx": 2, "connection": 1, "status_429": 1, "auth": 1} {
			if got := metricValue(t, reg, "tidegate_sink_retries_total", "reason", reason); got != n {
				t.Errorf("retries{reason=%s} = %v, want %v", reason, got, n)
			}
		}
		if got := metricValue(t, reg, "tidegate_sink_bulk_requests_total", "outcome", outcomeSuccess); got != 1 {
			t.Errorf("successful requests = %v, want 1", got)
		}
		if got := metricValue(t, reg, "tidegate_sink_bulk_requests_total", "outcome", outcomeError); got != 5 {
			t.Errorf("failed requests = %v, want 5", got)
		}
		if got := metricValue(t, reg, "tidegate_sink_bulk_bytes_total", "", ""); got == 0 {
			t.Error("no bytes counted")
		}
		if got := metricValue(t, reg, "tidegate_sink_bulk_duration_seconds", "", ""); got != 6 {
			t.Errorf("%v durations observed, want 6", got)
		}
		out := logs.String()
		if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "attempt=1") {
			t.Errorf("no retry warning in the log:\n%s", out)
		}
		if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "credentials") {
			t.Errorf("no error about credentials in the log:\n%s", out)
		}
	})
}

// TestIntegrationOutage refuses every connection for a while after New:
// index creation and bulk requests wait for the cluster to come back.
func TestIntegrationOutage(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		ft := newFaultTransport()
		ft.all = true
		var refused int
		ft.before = func(_ int, req *http.Request) (*http.Response, error) {
			if req.URL.Path == "/" || strings.HasPrefix(req.URL.Path, "/_nodes") {
				return nil, nil // detection in New
			}
			if refused < 12 { // only one request at a time here
				refused++
				return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
			}
			return nil, nil
		}
		s := c.newSink(c.config(), WithTransport(ft))
		events, want := batchOf("o", 10)
		c.writeOK(s, events...)
		if got := c.allDocs(c.index("o")); !equalDocs(got, want) {
			t.Errorf("documents:\n got %v\nwant %v", got, want)
		}
	})
}

func TestIntegrationRetryItems(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		ft := newFaultTransport()
		// The server applied every item, but the answer says some were
		// rejected (as a busy cluster does): they are sent again.
		ft.after = func(call int, req *http.Request, res *http.Response) *http.Response {
			if call >= 3 || res.StatusCode != http.StatusOK {
				return res
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			var br map[string]any
			if err := json.Unmarshal(body, &br); err != nil {
				t.Errorf("bulk response: %v", err)
				return replaceBody(res, body)
			}
			items, _ := br["items"].([]any)
			for i, it := range items {
				if i%2 != 0 {
					continue
				}
				for action, r := range it.(map[string]any) {
					_ = action
					m := r.(map[string]any)
					m["status"] = 429
					m["error"] = map[string]any{"type": "es_rejected_execution_exception", "reason": "injected"}
				}
			}
			br["errors"] = true
			body, _ = json.Marshal(br)
			return replaceBody(res, body)
		}
		cfg := c.config()
		cfg.BulkMaxActions = 4
		reg := prometheus.NewRegistry()
		s := c.newSink(cfg, WithTransport(ft), WithRegisterer(reg))
		events, want := batchOf("i", 30)
		events = append(events, del("i", 1000, 0))
		delete(want, "0")
		c.writeOK(s, events...)
		if got := c.allDocs(c.index("i")); !equalDocs(got, want) {
			t.Errorf("documents:\n got %v\nwant %v", got, want)
		}
		if got := metricValue(t, reg, "tidegate_sink_retries_total", "reason", "item"); got == 0 {
			t.Error("no item retries counted")
		}
	})
}

func TestIntegrationCancelDuringRetry(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ft := newFaultTransport()
		ft.before = func(call int, req *http.Request) (*http.Response, error) {
			if call == 3 {
				cancel()
			}
			return fakeResponse(req, 503, nil, `{"error":{"type":"x","reason":"injected"},"status":503}`), nil
		}
		s := c.newSink(c.config(), WithTransport(ft))
		results, err := s.Write(ctx, []*event.Event{ins("c", 1, 1)})
		if !errors.Is(err, context.Canceled) || results != nil {
			t.Fatalf("Write = %v, %v; want no results and context.Canceled", results, err)
		}
		if !strings.Contains(err.Error(), "injected") {
			t.Errorf("the error does not say what was failing: %v", err)
		}
		calls := ft.callCount()
		// A done context fails at once.
		if _, err := s.Write(ctx, []*event.Event{ins("c", 1, 1)}); !errors.Is(err, context.Canceled) {
			t.Errorf("Write with a done context = %v", err)
		}
		if ft.callCount() > calls+1 {
			t.Errorf("Write kept sending after the context was done")
		}
	})
}

func TestIntegrationRequestTooLarge(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		const limit = 4096 // like http.max_content_length
		ft := newFaultTransport()
		ft.before = func(call int, req *http.Request) (*http.Response, error) {
			if req.ContentLength > limit {
				return fakeResponse(req, http.StatusRequestEntityTooLarge, nil, ""), nil
			}
			return nil, nil
		}
		s := c.newSink(c.config(), WithTransport(ft))
		var events []*event.Event
		for i := range 40 {
			events = append(events, ins("big", 1, i, "v", i))
		}
		events = append(events, ins("big", 1, "huge", "v", strings.Repeat("x", 2*limit)))
		results := c.write(s, events...)
		for i, err := range results[:40] {
			if err != nil {
				t.Errorf("result %d: %v", i, err)
			}
		}
		if !sink.IsPermanent(results[40]) || !strings.Contains(results[40].Error(), "too large") {
			t.Errorf("huge document: %v, want a permanent 'too large' error", results[40])
		}
		if got := len(c.allDocs(c.index("big"))); got != 40 {
			t.Errorf("%d documents, want 40", got)
		}
	})
}

func TestIntegrationNewErrors(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		rootIs := func(body string, header http.Header) *faultTransport {
			ft := newFaultTransport()
			ft.all = true
			ft.before = func(_ int, req *http.Request) (*http.Response, error) {
				if req.URL.Path == "/" {
					return fakeResponse(req, 200, header, body), nil
				}
				return nil, nil
			}
			return ft
		}
		esHeader := http.Header{"X-Elastic-Product": {"Elasticsearch"}}
		tests := []struct {
			name string
			ft   *faultTransport
			want []string
		}{
			{"auth", func() *faultTransport {
				ft := newFaultTransport()
				ft.all = true
				ft.before = func(_ int, req *http.Request) (*http.Response, error) {
					return fakeResponse(req, 401, nil, `{"error":{"type":"security_exception","reason":"unable to authenticate user [tg]"},"status":401}`), nil
				}
				return ft
			}(), []string{c.url, "authentication failed", "check username/password"}},
			{"old elasticsearch", rootIs(`{"version":{"number":"7.9.3"},"tagline":"You Know, for Search"}`, esHeader),
				[]string{"Elasticsearch 7.9.3 is not supported", "7.10 or later"}},
			{"old opensearch", rootIs(`{"version":{"number":"0.9.0","distribution":"opensearch"}}`, nil),
				[]string{"OpenSearch 0.9.0 is not supported"}},
			{"not a search engine", rootIs(`{"version":{"number":"1.2.3"},"tagline":"something else"}`, nil),
				[]string{"neither Elasticsearch nor OpenSearch"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				cfg := c.config()
				cfg.Username, cfg.Password = "tg", "s3cret"
				s, err := New(context.Background(), cfg, WithTransport(tt.ft))
				if err == nil {
					s.Close()
					t.Fatal("New succeeded")
				}
				tt.ft.CloseIdleConnections()
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("the error shows the password: %v", err)
				}
			})
		}
	})
}

// TestIntegrationElasticsearch710 checks that the go-elasticsearch v8 client
// works with Elasticsearch before 7.14, which sends no X-Elastic-Product
// header: the real 8.x server answers everything but GET /, and the header is
// removed from its answers.
func TestIntegrationElasticsearch710(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		if c.flavor != FlavorElasticsearch {
			t.Skip("Elasticsearch only")
		}
		ft := newFaultTransport()
		ft.all = true
		ft.before = func(_ int, req *http.Request) (*http.Response, error) {
			if req.URL.Path == "/" {
				return fakeResponse(req, 200, nil, `{"version":{"number":"7.10.2","build_flavor":"default"},"tagline":"You Know, for Search"}`), nil
			}
			return nil, nil
		}
		ft.after = func(_ int, _ *http.Request, res *http.Response) *http.Response {
			res.Header.Del("X-Elastic-Product")
			return res
		}
		s := c.newSink(c.config(), WithTransport(ft))
		if info := s.Info(); info.Version != "7.10.2" || info.Flavor != FlavorElasticsearch {
			t.Errorf("Info = %+v", info)
		}
		c.writeOK(s, ins("old", 1, 1, "v", "x"))
		c.assertDoc(c.index("old"), "1", parseDoc(t, `{"id":1,"v":"x"}`))
	})
}

func TestIntegrationClose(t *testing.T) {
	eachCluster(t, func(t *testing.T, c *testCluster) {
		s, err := New(context.Background(), c.config())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if _, err := s.Write(context.Background(), []*event.Event{ins("x", 1, 1)}); !errors.Is(err, ErrClosed) {
			t.Errorf("Write after Close = %v, want ErrClosed", err)
		}
	})
}

func equalDocs(got, want map[string]map[string]any) bool {
	if len(got) != len(want) {
		return false
	}
	for id, w := range want {
		g, ok := got[id]
		if !ok {
			return false
		}
		gb, _ := json.Marshal(g)
		wb, _ := json.Marshal(w)
		if !bytes.Equal(gb, wb) {
			return false
		}
	}
	return true
}

// metricValue returns the value of a counter (or the sample count of a
// histogram) of the sink "search"/"elasticsearch" whose label has value
// (any series when label is "").
func metricValue(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			hasSink := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					match = true
				}
				if lp.GetName() == "sink" {
					hasSink = true
				}
			}
			if !hasSink {
				t.Errorf("%s has no sink label", name)
			}
			if !match {
				continue
			}
			if h := m.GetHistogram(); h != nil {
				sum += float64(h.GetSampleCount())
			} else {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
