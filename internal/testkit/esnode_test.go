package testkit

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// A private node starts, keeps its data across a graceful restart and a
// kill -9, and answers on the same URL each time.
func TestESNodeRestart(t *testing.T) {
	n := StartESNode(t)
	ctx := context.Background()
	s := NewSearch(n.URL())
	put := func(id, body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, n.URL()+"/restart/_doc/"+id+"?refresh=true", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("indexing %s: %v", id, err)
		}
		res.Body.Close()
		if res.StatusCode >= 300 {
			t.Fatalf("indexing %s: %s", id, res.Status)
		}
	}
	put("1", `{"v":1}`)

	n.Stop()
	if n.Running() {
		t.Fatal("Running after Stop")
	}
	if _, err := s.Count(ctx, "restart"); err == nil {
		t.Fatalf("the node at %s still answers after Stop", n.URL())
	}
	n.Start()
	if doc, err := s.Get(ctx, "restart", "1"); err != nil || string(doc) != `{"v":1}` {
		t.Fatalf("after a restart document 1 is %s (%v), want {\"v\":1}", doc, err)
	}
	put("2", `{"v":2}`) // acknowledged writes survive a kill -9 (translog)
	n.Kill()
	n.Start()
	if c, err := s.Count(ctx, "restart"); err != nil || c != 2 {
		t.Fatalf("after kill -9 and start the index holds %d documents (%v), want 2", c, err)
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}
