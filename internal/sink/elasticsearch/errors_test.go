package elasticsearch

import (
	"context"
	"errors"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/sink"
)

func TestClassifyRequest(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		status  int
		body    string
		err     error
		verdict verdict
		cause   string
	}{
		{"ok", 200, `{"errors":false}`, nil, verdictOK, ""},
		{"refused", 0, "", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, verdictRetry, "connection"},
		{"timeout", 0, "", context.DeadlineExceeded, verdictRetry, "timeout"},
		{"429", 429, `{"error":{"type":"es_rejected_execution_exception","reason":"queue full"},"status":429}`, nil, verdictRetry, "status_429"},
		{"503", 503, `{"error":{"type":"unavailable_shards_exception","reason":"x"},"status":503}`, nil, verdictRetry, "status_5xx"},
		{"502 from a proxy", 502, `<html>bad gateway</html>`, nil, verdictRetry, "status_5xx"},
		{"401", 401, `{"error":{"type":"security_exception","reason":"missing authentication credentials"},"status":401}`, nil, verdictRetry, "auth"},
		{"403", 403, `{"error":{"type":"security_exception","reason":"action unauthorized"},"status":403}`, nil, verdictRetry, "auth"},
		{"413", 413, ``, nil, verdictSplit, "too_large"},
		{"400 validation", 400, `{"error":{"type":"action_request_validation_exception","reason":"Validation Failed: 1: id is too long"},"status":400}`, nil, verdictSplit, "rejected"},
		{"404 from a proxy", 404, `not found`, nil, verdictRetry, "unexpected_status"},
		{"400 unknown", 400, `{"error":"no handler found for uri [/_bulk]"}`, nil, verdictRetry, "unexpected_status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, re := classifyRequest(ctx, tt.status, []byte(tt.body), tt.err)
			if v != tt.verdict {
				t.Errorf("verdict = %v, want %v", v, tt.verdict)
			}
			if tt.cause == "" {
				if re != nil {
					t.Errorf("error = %v, want none", re)
				}
				return
			}
			if re == nil || re.Cause != tt.cause {
				t.Errorf("error = %+v, want cause %s", re, tt.cause)
			}
		})
	}
}

func TestClassifyItem(t *testing.T) {
	e := func(typ, reason string) *esError { return &esError{Type: typ, Reason: reason} }
	tests := []struct {
		name string
		kind opKind
		item *bulkItem
		want itemOutcome
	}{
		{"created", opIndex, &bulkItem{Status: 201}, itemOK},
		{"stale", opIndex, &bulkItem{Status: 409, Error: e("version_conflict_engine_exception", "current version [5] is higher")}, itemOK},
		{"stale delete", opDelete, &bulkItem{Status: 409, Error: e("version_conflict_engine_exception", "")}, itemOK},
		{"delete missing", opDelete, &bulkItem{Status: 404}, itemOK},
		{"index missing", opIndex, &bulkItem{Status: 404, Error: e("index_not_found_exception", "no such index")}, itemIndexMissing},
		{"rejected execution", opIndex, &bulkItem{Status: 429, Error: e("es_rejected_execution_exception", "queue")}, itemRetry},
		{"unavailable shards", opIndex, &bulkItem{Status: 503, Error: e("unavailable_shards_exception", "primary not active")}, itemRetry},
		{"closed index", opIndex, &bulkItem{Status: 400, Error: e("index_closed_exception", "closed")}, itemRetry},
		{"write block", opIndex, &bulkItem{Status: 403, Error: e("cluster_block_exception", "blocked by: [FORBIDDEN/8/index write (api)]")}, itemRetry},
		{"mapping", opIndex, &bulkItem{Status: 400, Error: &esError{Type: "document_parsing_exception", Reason: "failed to parse field [price]", CausedBy: e("number_format_exception", "For input string: \"abc\"")}}, itemPermanent},
		{"missing item", opIndex, nil, itemRetry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := classifyItem(tt.kind, tt.item)
			if got != tt.want {
				t.Errorf("outcome = %v (%v), want %v", got, err, tt.want)
			}
			if got == itemPermanent {
				var pe *sink.PermanentError
				if !errors.As(err, &pe) || pe.Status != tt.item.Status {
					t.Errorf("err = %#v, want a PermanentError with status %d", err, tt.item.Status)
				}
				want := `document_parsing_exception: failed to parse field [price] (caused by number_format_exception: For input string: "abc")`
				if pe.Reason != want {
					t.Errorf("reason = %q, want %q", pe.Reason, want)
				}
			}
		})
	}
}

func TestParseBulk(t *testing.T) {
	kinds := []opKind{opIndex, opDelete, opIndex}
	res, err := parseBulk([]byte(`{"errors":false,"items":[{"index":{"status":201}},{"delete":{"status":200}},{"index":{"status":200}}]}`), kinds)
	if err != nil || len(res) != 3 {
		t.Fatalf("parseBulk = %v, %v", res, err)
	}
	res, err = parseBulk([]byte(`{"errors":true,"items":[{"index":{"status":201}},{"delete":{"status":404}},{"index":{"status":400,"error":{"type":"mapper_parsing_exception","reason":"x"}}}]}`), kinds)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].outcome != itemOK || res[1].outcome != itemOK || res[2].outcome != itemPermanent {
		t.Errorf("outcomes = %+v", res)
	}
	if _, err := parseBulk([]byte(`{"errors":true,"items":[{"index":{"status":201}}]}`), kinds); err == nil {
		t.Error("a response with too few items is accepted")
	}
	if _, err := parseBulk([]byte(`<html>`), kinds); err == nil {
		t.Error("a response that is not JSON is accepted")
	}
}

func TestErrorString(t *testing.T) {
	e := &esError{Type: "a", Reason: "r1", CausedBy: &esError{Type: "b", Reason: "r2", CausedBy: &esError{Type: "c"}}}
	if got, want := e.String(), "a: r1 (caused by b: r2 (caused by c))"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	long := &esError{Type: "t", Reason: strings.Repeat("é", maxReasonLen)}
	if got := long.String(); len(got) > maxReasonLen+len("…") {
		t.Errorf("reason of %d bytes not truncated", len(got))
	}
}

func TestBackoff(t *testing.T) {
	initial, maxDelay := 100*time.Millisecond, 2*time.Second
	for attempt := 1; attempt < 100; attempt++ {
		d := backoff(initial, maxDelay, attempt)
		exp := maxDelay
		if attempt < 6 {
			exp = initial << (attempt - 1)
		}
		if d < exp/2 || d > exp {
			t.Fatalf("attempt %d: %s outside [%s, %s]", attempt, d, exp/2, exp)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string][2]int{
		"8.19.21": {8, 19}, "7.10.2": {7, 10}, "9.0.0-SNAPSHOT": {9, 0}, "3.0.0-alpha1": {3, 0}, "": {0, 0},
	} {
		if ma, mi := parseVersion(in); ma != want[0] || mi != want[1] {
			t.Errorf("parseVersion(%q) = %d.%d, want %d.%d", in, ma, mi, want[0], want[1])
		}
	}
}
