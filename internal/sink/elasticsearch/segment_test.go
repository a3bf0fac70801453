package elasticsearch

import (
	"strings"
	"testing"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/sink"
)

func testSink() *Sink {
	cfg := Config{URLs: []string{"http://127.0.0.1:9200"}}
	cfg.SetDefaults()
	return &Sink{cfg: cfg, namer: newIndexNamer(cfg.Index)}
}

func TestPlanCollapsesPerDocument(t *testing.T) {
	s := testSink()
	events := []*event.Event{
		ins("orders", 5, 1, "v", "a"),   // 0: superseded by 2
		ins("orders", 5, 2, "v", "b"),   // 1: only event of doc 2
		upd("orders", 6, 1, "v", "c"),   // 2: superseded by 4 (equal version, later)
		upd("orders", 3, 1, "v", "old"), // 3: older version arriving late
		upd("orders", 6, 1, "v", "d"),   // 4: winner of doc 1
		del("customers", 1, 1),          // 5: other index, same id
	}
	results := make([]error, len(events))
	p := s.newPlan(events, nil, results)
	if len(p.docs) != 3 {
		t.Fatalf("%d documents, want 3", len(p.docs))
	}
	want := map[docKey]int32{
		{"shop.public.orders", "1"}:    4,
		{"shop.public.orders", "2"}:    1,
		{"shop.public.customers", "1"}: 5,
	}
	for _, d := range p.docs {
		if d.cur != want[d.key] {
			t.Errorf("document %v applies event %d, want %d", d.key, d.cur, want[d.key])
		}
	}
	// The winner is rejected: the next best event of the document follows.
	d := int32(0)
	perm := &sink.PermanentError{Reason: "mapper_parsing_exception"}
	if !p.reject(d, perm) || p.docs[d].cur != 2 {
		t.Fatalf("after rejecting 4, current = %d, want 2", p.docs[d].cur)
	}
	if !p.reject(d, perm) || p.docs[d].cur != 0 {
		t.Fatalf("after rejecting 2, current = %d, want 0", p.docs[d].cur)
	}
	if !p.reject(d, perm) || p.docs[d].cur != 3 {
		t.Fatalf("after rejecting 0, current = %d, want 3", p.docs[d].cur)
	}
	if p.reject(d, perm) {
		t.Fatalf("after rejecting every event, current = %d, want -1", p.docs[d].cur)
	}
	for _, i := range []int{0, 2, 3, 4} {
		if results[i] != perm {
			t.Errorf("results[%d] = %v, want the permanent error", i, results[i])
		}
	}
}

func TestPrepareRejects(t *testing.T) {
	s := testSink()
	noKey := ins("orders", 1, 1)
	noKey.Key = nil
	noAfter := ins("orders", 1, 1)
	noAfter.After = nil
	longID := ins("orders", 1, strings.Repeat("x", 513))
	emptyID := ins("orders", 1, "")
	hugeVersion := ins("orders", 1<<63, 1)
	badOrigin := ins("orders", 1, 1)
	badOrigin.Origin = &event.Origin{}
	s.namer = newIndexNamer("{table}")
	tests := []struct {
		name string
		e    *event.Event
		want string
	}{
		{"no key", noKey, "no key"},
		{"no after", noAfter, "no after row"},
		{"long id", longID, "513 bytes"},
		{"empty id", emptyID, "empty document id"},
		{"huge version", hugeVersion, "maximum external version"},
		{"no index name", badOrigin, "no valid index name"},
		{"unspecified op", &event.Event{Key: keyOf(1), Origin: origin("t")}, "unsupported op"},
		{"nil", nil, "nil event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o op
			var id idBuf
			err := s.prepare(tt.e, event.EncodedRow{}, &o, &id, &originCache{})
			if !sink.IsPermanent(err) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want a permanent error containing %q", err, tt.want)
			}
		})
	}
}

// A batch is split over the request slots that are free when it is sent:
// all of them when the sink is idle, none when other writes hold them.
func TestRequestActionsFollowFreeSlots(t *testing.T) {
	s := &Sink{cfg: Config{Concurrency: 2, BulkMaxActions: 5000}, requests: make(chan struct{}, 2)}
	for _, c := range []struct {
		busy, n, want int
	}{
		{0, 4000, 2000}, // idle: both slots
		{1, 4000, 4000}, // one slot taken by another write
		{2, 4000, 4000}, // all taken: one request, sent when a slot frees
		{0, 300, minSplitActions},
		{0, 20000, 5000}, // the configured maximum
		{1, 20000, 5000},
	} {
		for len(s.requests) > c.busy {
			<-s.requests
		}
		for len(s.requests) < c.busy {
			s.requests <- struct{}{}
		}
		if got := s.requestActions(c.n); got != c.want {
			t.Errorf("%d of 2 slots busy, %d operations: %d per request, want %d", c.busy, c.n, got, c.want)
		}
	}
}

// Ids rendered into shared chunks stay what they were rendered as, across
// chunks, next to ids too long for a chunk.
func TestIDBufKeepsIDs(t *testing.T) {
	var b idBuf
	var got, want []string
	for i := range 5000 {
		key := []*event.Column{{Name: "id", Value: event.Int(int64(i))}, {Name: "n", Value: event.Text(strings.Repeat("x", i%7))}}
		if i%1000 == 999 {
			key[1].Value = event.Text(strings.Repeat("long", idChunk/16)) // own allocation
		}
		got = append(got, b.render(key))
		want = append(want, string(event.AppendDocumentID(nil, key)))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("id %d is %q after rendering the others, want %q", i, got[i], want[i])
		}
	}
	if id, want := b.render(nil), string(event.AppendDocumentID(nil, nil)); id != want {
		t.Fatalf("no key renders %q, want %q", id, want)
	}
}
