package pipeline

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/tidegate/tidegate/event"
)

func flightOf(evs ...*event.Event) *flight {
	f := &flight{events: evs, written: make(chan struct{}), done: make(chan struct{})}
	f.index()
	return f
}

func row(table string, id int64, op event.Op) *event.Event {
	return &event.Event{Op: op, Origin: &event.Origin{Schema: "public", Table: table},
		Key: []*event.Column{{Name: "id", Value: event.Int(id)}}}
}

// Batches fly together only when they write no document in common;
// truncates and sweeps fly alone; at most maxWritesInFlight fly at once.
// (admit with a done context returns nil when f may fly at once and the
// context's error when it would wait.)
func TestFlightsAdmit(t *testing.T) {
	done, cancel := context.WithCancel(context.Background())
	cancel()

	a := flightOf(row("t", 1, event.Op_OP_INSERT), row("t", 2, event.Op_OP_UPDATE))
	var fs flights
	if err := fs.admit(done, a); err != nil {
		t.Fatalf("nothing in flight, yet admit waits: %v", err)
	}
	fs.list = append(fs.list, a)

	cases := []struct {
		name string
		f    *flight
		wait bool
	}{
		{"other documents", flightOf(row("t", 3, event.Op_OP_INSERT), row("u", 1, event.Op_OP_INSERT)), false},
		{"a document in flight", flightOf(row("t", 3, event.Op_OP_INSERT), row("t", 2, event.Op_OP_DELETE)), true},
		{"a truncate", flightOf(row("u", 9, event.Op_OP_INSERT), &event.Event{Op: event.Op_OP_TRUNCATE, Origin: &event.Origin{Schema: "public", Table: "u"}}), true},
		{"no events", flightOf(), false},
	}
	for _, c := range cases {
		err := fs.admit(done, c.f)
		if c.wait != (err != nil) {
			t.Errorf("%s: admit returned %v, want waiting %v", c.name, err, c.wait)
		}
	}

	// Fill the write slots with batches of other documents.
	for i := len(fs.list); i < maxWritesInFlight; i++ {
		f := flightOf(row("t", int64(100+i), event.Op_OP_INSERT))
		if err := fs.admit(done, f); err != nil {
			t.Fatalf("%d batches in flight, yet batch %d waits: %v", len(fs.list), i+1, err)
		}
		fs.list = append(fs.list, f)
	}
	if err := fs.admit(done, flightOf(row("t", 6, event.Op_OP_INSERT))); err == nil {
		t.Errorf("%d batches in flight, yet one more may fly", len(fs.list))
	}

	// Once the first settles, the conflicting batch may fly.
	close(a.done)
	if err := fs.admit(done, flightOf(row("t", 2, event.Op_OP_DELETE))); err != nil {
		t.Errorf("after the first settled: %v", err)
	}
	if len(fs.list) != maxWritesInFlight-1 || fs.list[0] == a {
		t.Fatalf("settled batch not forgotten: %d in flight", len(fs.list))
	}
	b := fs.list[0]

	// A failure is returned to the runner.
	boom := errors.New("boom")
	b.err = boom
	close(b.done)
	if err := fs.admit(context.Background(), flightOf()); !errors.Is(err, boom) {
		t.Fatalf("admit after a failure returned %v, want %v", err, boom)
	}
}

// A truncate flies alone even when nothing else conflicts by key.
func TestFlightTruncateAlone(t *testing.T) {
	tr := flightOf(&event.Event{Op: event.Op_OP_SWEEP, Origin: &event.Origin{Schema: "public", Table: "t"}})
	if !tr.alone || !tr.conflicts(flightOf()) {
		t.Fatal("a sweep does not fly alone")
	}
}

// A batch whose write is over no longer conflicts nor counts as a write in
// flight while it waits for its acknowledgement; at most maxFlightsHeld
// batches are held.
func TestFlightsWrittenReleasesItsSlot(t *testing.T) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	var fs flights
	for i := range maxFlightsHeld - 1 {
		f := flightOf(row("t", 1, event.Op_OP_UPDATE)) // all about one document
		if err := fs.admit(done, f); err != nil {
			t.Fatalf("batch %d: the earlier ones are written, yet admit waits: %v", i, err)
		}
		close(f.written)
		fs.list = append(fs.list, f)
	}
	last := flightOf(row("t", 1, event.Op_OP_UPDATE))
	if err := fs.admit(done, last); err != nil {
		t.Fatalf("written batches still hold the document: %v", err)
	}
	fs.list = append(fs.list, last)
	if err := fs.admit(done, flightOf(row("t", 2, event.Op_OP_UPDATE))); err == nil {
		t.Fatalf("%d batches held, yet one more may fly", len(fs.list))
	}
}

// conflicts, a merge of two sorted lists, finds a shared document wherever
// it sits in either batch, and none when there is none.
func TestFlightConflictsMatchesSets(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var a, b []*event.Event
		inA := map[int64]bool{}
		for range rnd.IntN(20) {
			id := rnd.Int64N(60)
			inA[id] = true
			a = append(a, row("t", id, event.Op_OP_UPDATE))
		}
		want := false
		for range rnd.IntN(20) {
			id := rnd.Int64N(60)
			want = want || inA[id]
			b = append(b, row("t", id, event.Op_OP_UPDATE))
		}
		fa, fb := flightOf(a...), flightOf(b...)
		if got := fa.conflicts(fb); got != want {
			t.Fatalf("batches %v and %v: conflicts = %v, want %v", ids(a), ids(b), got, want)
		}
		if fb.conflicts(fa) != want {
			t.Fatalf("conflicts is not symmetric for %v and %v", ids(a), ids(b))
		}
	}
	// The same key in another table is another document.
	if flightOf(row("t", 1, event.Op_OP_UPDATE)).conflicts(flightOf(row("u", 1, event.Op_OP_UPDATE))) {
		t.Fatal("t:1 and u:1 conflict")
	}
}

func ids(evs []*event.Event) []int64 {
	var out []int64
	for _, ev := range evs {
		out = append(out, ev.GetKey()[0].GetValue().GetInt())
	}
	return out
}
