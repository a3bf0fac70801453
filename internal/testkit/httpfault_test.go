package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// bulkItemResult is one item of a bulk answer, whatever its action.
type bulkItemResult struct {
	Status int `json:"status"`
	Error  *struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	} `json:"error"`
}

func postBulk(t *testing.T, url string, body string) (*http.Response, []bulkItemResult, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/_bulk?filter_path=errors,items.*.status,items.*.error", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-ndjson")
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	var out struct {
		Errors bool                         `json:"errors"`
		Items  []map[string]json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("bulk answer %s: %v", data, err)
	}
	var items []bulkItemResult
	for _, it := range out.Items {
		for _, raw := range it {
			var r bulkItemResult
			_ = json.Unmarshal(raw, &r)
			items = append(items, r)
		}
	}
	return res, items, nil
}

// The proxy in front of the real Elasticsearch: synthetic items keep their
// positions among the cluster's real answers, rejected items are not
// forwarded, resets before/after forwarding apply nothing/everything, and
// everything is counted; Close leaves no goroutine behind.
func TestHTTPFaultProxy(t *testing.T) {
	es := ElasticURL(t)
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { // runs last: after the proxy's own cleanup
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		goleak.VerifyNone(t, ignore)
	})
	ctx := context.Background()
	s := NewSearch(es)
	index := "tg_httpfault_" + RandomSuffix()
	t.Cleanup(func() { _ = s.DeleteIndex(ctx, index) })

	p := NewHTTPFaultProxy(t, es, HTTPFaults{
		Seed:   1,
		Reject: func(ix, id string) bool { return ix == index && (id == "2" || id == "5") },
		First:  []RequestFault{FaultResetBefore, FaultResetAfter, FaultDelay},
		// MaxDelay small: the delay is not what this test measures.
		MaxDelay: 50 * time.Millisecond,
	})
	bulk := func(version int) string {
		var b strings.Builder
		for i := 1; i <= 6; i++ {
			fmt.Fprintf(&b, `{"index":{"_index":%q,"_id":"%d","version":%d,"version_type":"external_gte"}}`+"\n", index, i, version+i)
			fmt.Fprintf(&b, `{"n":%d}`+"\n", i)
		}
		return b.String()
	}
	body, stale := bulk(10), bulk(0)
	// Request 1: reset before forwarding, nothing applied.
	if _, _, err := postBulk(t, p.URL(), body); err == nil {
		t.Fatal("request 1: want a connection error (reset before forwarding)")
	}
	if n, _ := s.Count(ctx, index); n != 0 {
		t.Fatalf("after a reset before forwarding the index holds %d documents, want 0", n)
	}
	// Request 2: reset after forwarding: applied, but no answer.
	if _, _, err := postBulk(t, p.URL(), body); err == nil {
		t.Fatal("request 2: want a connection error (reset after forwarding)")
	}
	docs, err := s.AllDocs(ctx, index)
	if err != nil || len(docs) != 4 || docs["2"].ID != "" || docs["5"].ID != "" {
		t.Fatalf("after a reset after forwarding: documents %v (%v), want 1, 3, 4, 6 (2 and 5 are rejected by the proxy)", docs, err)
	}
	// Request 3 (older versions): delayed; the answer has six items in
	// request order: the proxy's 400s and the cluster's 409s (stale).
	_, items, err := postBulk(t, p.URL(), stale)
	if err != nil {
		t.Fatalf("request 3: %v", err)
	}
	if len(items) != 6 {
		t.Fatalf("request 3: %d items, want 6: %+v", len(items), items)
	}
	for i, it := range items {
		id := i + 1
		switch {
		case id == 2 || id == 5:
			if it.Status != 400 || it.Error == nil || it.Error.Type != "mapper_parsing_exception" || !strings.Contains(it.Error.Reason, InjectedMarker) {
				t.Errorf("item %d: %+v, want the synthetic 400", id, it)
			}
		default:
			if it.Status != 409 {
				t.Errorf("item %d: status %d, want the cluster's 409 (same position as in the request)", id, it.Status)
			}
		}
	}
	// Item faults drawn at random: over many requests both kinds appear and
	// every answer still has one item per operation.
	p.SetFaults(HTTPFaults{Seed: 2, Item429: 0.3, Item500: 0.3})
	for range 10 {
		_, items, err := postBulk(t, p.URL(), stale)
		if err != nil || len(items) != 6 {
			t.Fatalf("random item faults: %d items, %v", len(items), err)
		}
		for i, it := range items {
			ok := it.Status == 409 || it.Status == 429 || it.Status == 500
			if i == 1 || i == 4 { // 2 and 5: no rejection rule any more
				ok = ok || it.Status == 201 || it.Status == 200 // created, then overwritten (equal version)
			}
			if !ok {
				t.Fatalf("random item faults: unexpected item %d: %+v", i+1, it)
			}
		}
	}
	c := p.Counts()
	t.Logf("counts: %s", c)
	if c.Bulk != 13 || c.ResetBefore != 1 || c.ResetAfter != 1 || c.Delay != 1 || c.Item400 != 2 || c.Item429 == 0 || c.Item500 == 0 ||
		c.UpstreamErrors != 0 || c.ProxyErrors != 0 {
		t.Errorf("counts %s: want 13 bulk requests, one reset before, one after, one delay, two 400 items (only the delivered ones), some 429 and 500, no errors", c)
	}
	want := []BulkItemRef{{index, "2", 2}, {index, "5", 5}} // delivered in request 3 only
	if got := p.Rejected(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rejected %v, want %v", got, want)
	}
	// Other requests pass through untouched.
	res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(p.URL() + "/" + index + "/_doc/1")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Contains(data, []byte(`"n":1`)) {
		t.Errorf("GET through the proxy: %s %s", res.Status, data)
	}
	p.Close()
}
