package elasticsearch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/sink"
)

func TestAppendOp(t *testing.T) {
	tests := []struct {
		name string
		op   op
		want string
	}{
		{
			name: "index",
			op:   op{kind: opIndex, index: "shop.public.orders", id: "42", version: 7, row: row("id", 42, "name", "a\"b\n")},
			want: `{"index":{"_index":"shop.public.orders","_id":"42","version":7,"version_type":"external_gte"}}` + "\n" +
				`{"id":42,"name":"a\"b\n"}` + "\n",
		},
		{
			name: "delete with an id to escape",
			op:   op{kind: opDelete, index: "i", id: `[7,"x"]`, version: 9},
			want: `{"delete":{"_index":"i","_id":"[7,\"x\"]","version":9,"version_type":"external_gte"}}` + "\n",
		},
		{
			name: "json with newlines is compacted",
			op:   op{kind: opIndex, index: "i", id: "1", version: 1, row: row("doc", event.JSON("{\n  \"a\": [1,\n 2]\n}"))},
			want: `{"index":{"_index":"i","_id":"1","version":1,"version_type":"external_gte"}}` + "\n" +
				`{"doc":{"a":[1,2]}}` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := appendOp([]byte("prefix\n"), &tt.op)
			if err != nil {
				t.Fatal(err)
			}
			if want := "prefix\n" + tt.want; string(got) != want {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
			for _, line := range strings.Split(strings.TrimSuffix(string(got[len("prefix\n"):]), "\n"), "\n") {
				if !json.Valid([]byte(line)) {
					t.Errorf("line is not JSON: %s", line)
				}
			}
		})
	}
}

func TestAppendOpInvalidJSONWithNewline(t *testing.T) {
	o := op{kind: opIndex, index: "i", id: "1", version: 1, row: row("doc", event.JSON("{\n bad"))}
	got, err := appendOp([]byte("keep"), &o)
	if !sink.IsPermanent(err) {
		t.Fatalf("err = %v, want a permanent error", err)
	}
	if string(got) != "keep" {
		t.Errorf("buffer = %q, want it unchanged", got)
	}
}

func TestRequestBuilderSplits(t *testing.T) {
	var pool bufferPool
	ops := make([]op, 50)
	for i := range ops {
		ops[i] = op{kind: opIndex, index: "idx", id: fmt.Sprint(i), version: 1, row: row("id", i, "pad", strings.Repeat("x", i*10))}
	}
	tests := []struct {
		name                 string
		maxBytes, maxActions int
	}{
		{"by actions", 1 << 20, 7},
		{"by bytes", 1500, 1000},
		{"both", 2000, 3},
		{"one op per request", 1, 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := requestBuilder{pool: &pool, maxBytes: tt.maxBytes, maxActions: tt.maxActions}
			var want bytes.Buffer
			for i := range ops {
				if err := b.add(&ops[i], int32(i)); err != nil {
					t.Fatal(err)
				}
				want.Write(mustAppendOp(t, &ops[i]))
			}
			reqs := b.finish()
			var got bytes.Buffer
			next := int32(0)
			for _, r := range reqs {
				if r.len() > tt.maxActions {
					t.Errorf("request has %d operations, max %d", r.len(), tt.maxActions)
				}
				if len(r.body) > tt.maxBytes && r.len() > 1 {
					t.Errorf("request of %d operations has %d bytes, max %d", r.len(), len(r.body), tt.maxBytes)
				}
				if len(r.offs) != r.len()+1 || r.offs[0] != 0 || r.offs[r.len()] != len(r.body) {
					t.Errorf("offsets %v do not frame a body of %d bytes", r.offs, len(r.body))
				}
				for j, tag := range r.tags {
					if tag != next {
						t.Fatalf("tag %d, want %d", tag, next)
					}
					next++
					if part := r.part(j, j+1); !bytes.Equal(part, mustAppendOp(t, &ops[tag])) {
						t.Errorf("operation %d is framed wrongly: %q", tag, part)
					}
				}
				got.Write(r.body)
				b.release(r)
			}
			if next != int32(len(ops)) {
				t.Errorf("%d operations in requests, want %d", next, len(ops))
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Error("concatenated requests differ from the encoded operations")
			}
		})
	}
}

func mustAppendOp(t *testing.T, o *op) []byte {
	t.Helper()
	b, err := appendOp(nil, o)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkEncodeBulk measures the NDJSON encoding of 10k events:
// "encode" is the action lines, documents and request splitting of prepared
// operations; "plan+encode" adds what Write does before (checking each
// event, index name, document id, collapsing per document).
func BenchmarkEncodeBulk(b *testing.B) {
	const n = 10_000
	events := make([]*event.Event, n)
	for i := range events {
		events[i] = ins("orders", uint64(1000+i), i,
			"customer_id", i%977,
			"status", "shipped",
			"note", "a note with \"quotes\" and unicode é",
			"total", event.Decimal("1234.50"),
			"paid", true,
			"created_at", event.TimestampValue(&event.Timestamp{UnixMicros: 1_700_000_000_000_000 + int64(i)}),
		)
	}
	s := testSink()
	results := make([]error, n)
	encode := func(p *plan) (bytes int) {
		rb := requestBuilder{pool: &s.bufs, maxBytes: s.cfg.BulkMaxBytes, maxActions: s.cfg.BulkMaxActions}
		for d := range p.docs {
			if err := rb.add(&p.ops[p.docs[d].cur], int32(d)); err != nil {
				b.Fatal(err)
			}
		}
		for _, r := range rb.finish() {
			bytes += len(r.body)
			rb.release(r)
		}
		return bytes
	}
	report := func(b *testing.B, bytes int, allocs float64) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/event")
		b.ReportMetric(allocs/n, "allocs/event")
		b.ReportMetric(float64(bytes)/n, "bytes/event")
	}
	b.Run("encode", func(b *testing.B) {
		p := s.newPlan(events, nil, results)
		var bytes int
		b.ReportAllocs()
		for b.Loop() {
			bytes = encode(p)
		}
		report(b, bytes, testing.AllocsPerRun(5, func() { encode(p) }))
	})
	b.Run("plan+encode", func(b *testing.B) {
		var bytes int
		b.ReportAllocs()
		planEncode := func() int {
			p := s.newPlan(events, nil, results)
			defer s.release(p)
			return encode(p)
		}
		for b.Loop() {
			bytes = planEncode()
		}
		report(b, bytes, testing.AllocsPerRun(5, func() { planEncode() }))
	})
}
