package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/bus"
	"github.com/tidegate/tidegate/internal/platform/metrics"
)

// The emitter groups consecutive events of a table into event.Batch
// messages that the standard protobuf decoder reads back event for event,
// keeps each table's order, and reports a position durable only after every
// event emitted before it is stored.
func TestEmitterBatches(t *testing.T) {
	ctx := context.Background()
	em, cons, durablePositions := newTestEmitter(t)

	// Two writers (like snapshot workers) on two tables; table a gets
	// enough events for several messages, one of them larger than a batch.
	want := map[string][]*event.Event{}
	var wg sync.WaitGroup
	for w, table := range []string{"a", "b"} {
		n := map[string]int{"a": 1200, "b": 7}[table]
		evs := make([]*event.Event, n)
		for i := range evs {
			text := fmt.Sprintf("row %d", i)
			if i == 600 {
				text = string(make([]byte, batchMaxBytes)) // alone in its message
			}
			// One transaction, except the last two events of b: a new
			// transaction starts a new batch (its shared fields differ).
			version := uint64(7)
			if table == "b" && i >= 5 {
				version = 8
			}
			evs[i] = &event.Event{
				Id: fmt.Sprintf("%s-%d", table, i), Op: event.Op_OP_INSERT, Version: version,
				Position: fmt.Sprint(version), TxId: fmt.Sprint(version), CommitTimeUs: int64(version),
				Origin: &event.Origin{Schema: "public", Table: table},
				Key:    []*event.Column{{Name: "id", Value: event.Int(int64(i))}},
				After:  &event.Row{Columns: []*event.Column{{Name: "v", Value: event.Text(text)}}},
			}
		}
		want[table] = evs
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, ev := range evs {
				if err := em.Emit(ctx, ev); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := em.Mark(ctx, "pos-1"); err != nil {
		t.Fatal(err)
	}
	if err := em.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if durable := durablePositions(); len(durable) != 1 || durable[0] != "pos-1" {
		t.Fatalf("durable positions %v, want [pos-1]", durable)
	}

	got := map[string][]*event.Event{}
	msgs := 0
	batch, err := cons.Fetch(100, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		msgs++
		var bt event.Batch
		if err := proto.Unmarshal(m.Data(), &bt); err != nil {
			t.Fatalf("message %d: %v", msgs, err)
		}
		if bt.Shared == nil {
			t.Fatalf("message %d has no shared fields", msgs)
		}
		bt.Expand()
		if n, _ := strconv.Atoi(m.Headers().Get(bus.HeaderEvents)); n != len(bt.Events) {
			t.Fatalf("message %d: header says %d events, holds %d", msgs, n, len(bt.Events))
		}
		if len(bt.Events) > batchMaxEvents {
			t.Fatalf("message %d holds %d events, more than %d", msgs, len(bt.Events), batchMaxEvents)
		}
		for _, ev := range bt.Events {
			if m.Subject() != bus.Subject("p", "public", ev.GetOrigin().GetTable()) {
				t.Fatalf("event of table %s on subject %s", ev.GetOrigin().GetTable(), m.Subject())
			}
			got[ev.GetOrigin().GetTable()] = append(got[ev.GetOrigin().GetTable()], ev)
		}
	}
	for table, evs := range want {
		if len(got[table]) != len(evs) {
			t.Fatalf("table %s: got %d events, want %d", table, len(got[table]), len(evs))
		}
		for i := range evs {
			if !proto.Equal(got[table][i], evs[i]) {
				t.Fatalf("table %s event %d differs: got id %s", table, i, got[table][i].GetId())
			}
		}
	}
	// a: 600 + the big one alone + 599 → at least 4 messages; b: 2.
	if msgs < 6 || msgs > 9 {
		t.Fatalf("%d messages for 1207 events", msgs)
	}
}

// newTestEmitter is an emitter on pipeline "p" of an embedded bus, a
// consumer of that pipeline, and the positions reported durable so far.
func newTestEmitter(t *testing.T) (*busEmitter, jetstream.Consumer, func() []any) {
	em, cons, durable, _ := newTestBusEmitter(t)
	return em, cons, durable
}

// newTestBusEmitter is newTestEmitter, and its bus.
func newTestBusEmitter(t testing.TB) (*busEmitter, jetstream.Consumer, func() []any, *bus.Bus) {
	ctx := context.Background()
	b, err := bus.Open(ctx, bus.Config{URL: "embedded", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.EnsurePipeline(ctx, "p", bus.StreamConfig{MaxBytes: 256 << 20, DuplicateWindow: time.Minute}); err != nil {
		t.Fatal(err)
	}
	cons, err := b.EnsureConsumer(ctx, "p", "s", bus.ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var durable []any
	var mu sync.Mutex
	var em *busEmitter
	pub := b.NewPublisher(bus.PublisherConfig{Pipeline: "p", MaxStreamBytes: 256 << 20, OnDurable: func(pos any) {
		mu.Lock()
		durable = append(durable, pos)
		mu.Unlock()
	}, OnStored: func(n uint64) { em.stored(n) }, Stored: recycleBatchBuffer})
	t.Cleanup(pub.Close)
	em = newBusEmitter("p", pub, 0, metrics.New(), slog.New(slog.DiscardHandler))
	t.Cleanup(em.Close)
	return em, cons, func() []any {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(durable)
	}, b
}

// Rows with the batch's column template travel by position: their column
// names and a key that is part of the after row are left out and restored
// by Expand. Rows that differ (unchanged TOAST columns left out, another
// order, a key not in the row) travel whole in the same batch. Snapshot rows
// carry no id and derive it. The caller's events are left as they were.
func TestEmitterPositionalRows(t *testing.T) {
	ctx := context.Background()
	em, cons, _ := newTestEmitter(t)
	origin := &event.Origin{Source: "src", Schema: "public", Table: "t"}
	row := func(names ...string) []*event.Column {
		cols := make([]*event.Column, len(names))
		for i, n := range names {
			cols[i] = &event.Column{Name: n, Value: event.Text(strings.ToUpper(n))}
		}
		return cols
	}
	full := func(op event.Op) *event.Event {
		cols := row("id", "line", "body", "note")
		ev := &event.Event{Op: op, Origin: origin, Version: 9, Position: "0/9",
			Key: []*event.Column{cols[0], cols[1]}, After: &event.Row{Columns: cols}}
		if op != event.Op_OP_SNAPSHOT {
			ev.Id = fmt.Sprint("ev-", op)
		}
		return ev
	}
	var evs []*event.Event
	evs = append(evs, full(event.Op_OP_SNAPSHOT), full(event.Op_OP_SNAPSHOT))
	// Same table and position, other shapes, in the same batch:
	toast := full(event.Op_OP_UPDATE) // an unchanged TOAST column left out
	toast.After.Columns = slices.Delete(toast.After.Columns, 2, 3)
	toast.Unchanged = []string{"body"}
	evs = append(evs, toast)
	ownKey := full(event.Op_OP_UPDATE) // a key of its own, equal in value
	ownKey.Key = row("id", "line")
	evs = append(evs, ownKey)
	withBefore := full(event.Op_OP_UPDATE)
	withBefore.Before = &event.Row{Columns: row("id", "line", "body", "note")}
	evs = append(evs, withBefore)
	deleted := &event.Event{Op: event.Op_OP_DELETE, Id: "del", Origin: origin, Version: 9, Position: "0/9",
		Key: row("id", "line"), Before: &event.Row{Columns: row("id", "line", "body", "note")}}
	evs = append(evs, deleted)
	var originals []*event.Event
	for _, ev := range evs {
		originals = append(originals, proto.Clone(ev).(*event.Event))
		if err := em.Emit(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(ev, originals[len(originals)-1]) {
			t.Fatalf("Emit changed the caller's event: %v", ev)
		}
	}
	if err := em.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(10, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []*event.Event
	for m := range batch.Messages() {
		// A column name is in the message once per row or key that is
		// not positional: the template, toast (after and key), ownKey's
		// key and deleted's key (deletes have no after row to take it from).
		if n := bytes.Count(m.Data(), []byte("note")); n != 2 {
			t.Errorf("column name \"note\" is %d times in the message, want 2 (the template and the TOAST row)", n)
		}
		if n := bytes.Count(m.Data(), []byte("line")); n != 5 {
			t.Errorf("column name \"line\" is %d times in the message, want 5", n)
		}
		var bt event.Batch
		if err := proto.Unmarshal(m.Data(), &bt); err != nil {
			t.Fatal(err)
		}
		if len(bt.Columns) != 4 || len(bt.KeyColumns) != 2 {
			t.Fatalf("template %v key %v, want 4 columns and 2 key positions", bt.Columns, bt.KeyColumns)
		}
		if bt.Events[0].Key != nil || bt.Events[0].After.Columns[0].Name != "" {
			t.Fatalf("first event is not positional: %v", bt.Events[0])
		}
		bt.Expand()
		got = append(got, bt.Events...)
	}
	if len(got) != len(originals) {
		t.Fatalf("got %d events, want %d", len(got), len(originals))
	}
	for i, want := range originals {
		if !proto.Equal(got[i], want) {
			t.Errorf("event %d:\n got %v\nwant %v", i, got[i], want)
		}
	}
	if id := got[0].ID(); id != `src:snap:0/9:public.t:["ID","LINE"]` {
		t.Errorf("derived snapshot id %q", id)
	}
	if got[0].ID() == got[1].ID() && got[0].GetId() != "" {
		t.Errorf("snapshot rows carry an id on the bus: %q", got[0].GetId())
	}
}

// Lanes (concurrent snapshot readers) batch the same table separately and
// publish concurrently; each lane's Mark is reported once its own events
// are stored, and every event arrives once.
func TestEmitterLanes(t *testing.T) {
	ctx := context.Background()
	em, cons, durablePositions := newTestEmitter(t)
	const lanes, perLane = 3, 2000
	var wg sync.WaitGroup
	for l := range lanes {
		lane := em.Lane()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perLane {
				cols := []*event.Column{{Name: "id", Value: event.Int(int64(l*perLane + i))}, {Name: "v", Value: event.Text("x")}}
				ev := &event.Event{Op: event.Op_OP_SNAPSHOT, Origin: &event.Origin{Source: "src", Schema: "public", Table: "t"},
					Version: 1, Position: "0/1", Key: cols[:1], After: &event.Row{Columns: cols}}
				if err := lane.Emit(ctx, ev); err != nil {
					t.Error(err)
					return
				}
				if i%700 == 699 {
					if err := lane.Mark(ctx, fmt.Sprintf("lane %d at %d", l, i)); err != nil {
						t.Error(err)
						return
					}
				}
			}
			if err := lane.Mark(ctx, fmt.Sprintf("lane %d done", l)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := em.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := len(durablePositions()), lanes*(perLane/700+1); got != want {
		t.Fatalf("%d positions reported durable, want %d", got, want)
	}
	seen := map[int64]bool{}
	for len(seen) < lanes*perLane {
		batches := fetchBatches(t, cons, 100, 2*time.Second)
		for _, bt := range batches {
			for _, ev := range bt.Events {
				id := ev.GetKey()[0].GetValue().GetInt()
				if seen[id] {
					t.Fatalf("row %d arrived twice", id)
				}
				seen[id] = true
			}
		}
		if len(batches) == 0 {
			t.Fatalf("%d of %d rows arrived", len(seen), lanes*perLane)
		}
	}
}

// fetchBatches fetches up to n messages from cons, waiting at most wait,
// and returns them decoded and expanded.
func fetchBatches(t *testing.T, cons jetstream.Consumer, n int, wait time.Duration) []*event.Batch {
	t.Helper()
	fetched, err := cons.Fetch(n, jetstream.FetchMaxWait(wait))
	if err != nil {
		t.Fatal(err)
	}
	var out []*event.Batch
	for m := range fetched.Messages() {
		bt := &event.Batch{}
		if err := bt.UnmarshalVT(m.Data()); err != nil {
			t.Fatalf("message %d: %v", len(out)+1, err)
		}
		bt.Expand()
		out = append(out, bt)
	}
	return out
}

// An event too large for a bus message is refused with an error naming
// it, not skipped and not cut: the caller's event is unchanged and the
// batch keeps the events before and after it.
func TestEmitterEventTooLarge(t *testing.T) {
	ctx := context.Background()
	em, cons, _ := newTestEmitter(t)
	origin := &event.Origin{Source: "src", Schema: "public", Table: "t"}
	ev := func(id, body string) *event.Event {
		cols := []*event.Column{{Name: "id", Value: event.Text(id)}, {Name: "body", Value: event.Text(body)}}
		return &event.Event{Id: id, Op: event.Op_OP_INSERT, Origin: origin, Position: "0/1", Key: cols[:1], After: &event.Row{Columns: cols}}
	}
	if err := em.Emit(ctx, ev("a", "small")); err != nil {
		t.Fatal(err)
	}
	big := ev("big", strings.Repeat("x", bus.MaxMessageBytes))
	orig := proto.Clone(big).(*event.Event)
	err := em.Emit(ctx, big)
	if err == nil || !strings.Contains(err.Error(), "more than a bus message can hold") || !strings.Contains(err.Error(), "big") {
		t.Fatalf("got %v, want the too-large error naming the event", err)
	}
	if !proto.Equal(big, orig) {
		t.Fatal("Emit changed the refused event")
	}
	if err := em.Emit(ctx, ev("b", "small")); err != nil {
		t.Fatal(err)
	}
	if err := em.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	msgs, err := cons.Fetch(10, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for m := range msgs.Messages() {
		bt, err := event.UnmarshalBatch(m.Data())
		if err != nil {
			t.Fatal(err)
		}
		bt.Expand()
		for _, e := range bt.Events {
			ids = append(ids, e.GetId())
		}
	}
	if !slices.Equal(ids, []string{"a", "b"}) {
		t.Fatalf("bus holds events %v, want [a b]", ids)
	}
}

// Transactions of a table that commit while the bus stores the message
// before them travel together. Every event keeps its own commit fields,
// the stream holds the events in commit order (across tables too: another
// table's transaction sends what is held first), every position becomes
// durable in order, and the last transactions are published without a
// further call (by the flusher).
func TestEmitterJoinsTransactions(t *testing.T) {
	ctx := context.Background()
	em, cons, durablePositions := newTestEmitter(t)
	const txs = 3000
	r := rand.New(rand.NewPCG(1, 2))
	var want []*event.Event
	for tx := 1; tx <= txs; tx++ {
		table := "a"
		if r.IntN(8) == 0 {
			table = "b"
		}
		for i := range 1 + r.IntN(3) {
			ev := &event.Event{
				Id: fmt.Sprintf("%d-%d", tx, i), Op: event.Op_OP_UPDATE, Version: uint64(tx),
				Position: fmt.Sprint(tx), TxId: fmt.Sprint(1000 + tx), CommitTimeUs: int64(5000 + tx),
				Origin: &event.Origin{Schema: "public", Table: table},
				Key:    []*event.Column{{Name: "id", Value: event.Int(int64(i))}},
				After:  &event.Row{Columns: []*event.Column{{Name: "id", Value: event.Int(int64(i))}, {Name: "v", Value: event.Int(int64(tx))}}},
			}
			if err := em.Emit(ctx, ev); err != nil {
				t.Fatal(err)
			}
			want = append(want, ev)
		}
		if err := em.Mark(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}

	var got []*event.Event
	msgs, joined := 0, 0
	for len(got) < len(want) {
		batches := fetchBatches(t, cons, 500, 10*time.Second)
		for _, bt := range batches {
			msgs++
			if bt.Events[0].GetTxId() != bt.Events[len(bt.Events)-1].GetTxId() {
				joined++
			}
			got = append(got, bt.Events...)
		}
		if len(batches) == 0 {
			t.Fatalf("%d of %d events in the stream after 10 s without a message (a held batch not published?)", len(got), len(want))
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d events in the stream, want %d", len(got), len(want))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("event %d of the stream is %v, want %v", i, got[i], want[i])
		}
	}
	if joined == 0 || msgs >= txs {
		t.Fatalf("%d messages for %d transactions, %d holding several: none joined", msgs, txs, joined)
	}
	t.Logf("%d transactions in %d messages, %d of them holding several", txs, msgs, joined)
	if err := em.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkDurableInOrder(t, durablePositions(), txs)
}

// checkDurableInOrder checks that positions 1..n became durable, in order.
func checkDurableInOrder(t *testing.T, durable []any, n int) {
	t.Helper()
	if len(durable) != n {
		t.Fatalf("%d positions durable, want %d", len(durable), n)
	}
	for i, pos := range durable {
		if pos != i+1 {
			t.Fatalf("durable position %d is %v, want %d (in order)", i, pos, i+1)
		}
	}
}

// With a publish linger, transactions committed while the bus is idle
// share a message too: the emitter holds them until the linger is over,
// then its flusher publishes them without a further call, and their
// positions become durable in order.
func TestEmitterLingers(t *testing.T) {
	ctx := context.Background()
	em, cons, durablePositions := newTestEmitter(t)
	em.linger = time.Hour // ended by hand below
	commit := func(tx int) {
		t.Helper()
		ev := &event.Event{
			Id: fmt.Sprint(tx), Op: event.Op_OP_UPDATE, Version: uint64(tx), Position: fmt.Sprint(tx), TxId: fmt.Sprint(tx), CommitTimeUs: int64(5000 + tx),
			Origin: &event.Origin{Schema: "public", Table: "a"},
			Key:    []*event.Column{{Name: "id", Value: event.Int(1)}},
			After:  &event.Row{Columns: []*event.Column{{Name: "id", Value: event.Int(1)}, {Name: "v", Value: event.Int(int64(tx))}}},
		}
		if err := em.Emit(ctx, ev); err != nil {
			t.Fatal(err)
		}
		if err := em.Mark(ctx, tx); err != nil {
			t.Fatal(err)
		}
	}
	const txs = 10
	for tx := 1; tx <= txs; tx++ {
		commit(tx)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.NumPending != 0 || len(durablePositions()) != 0 {
		t.Fatalf("%d messages published and %d positions durable within the linger, want none", info.NumPending, len(durablePositions()))
	}
	em.mu.Lock()
	em.heldAt = em.heldAt.Add(-em.linger) // the linger is over
	em.mu.Unlock()
	em.lingerEnd.Reset(0)
	batches := fetchBatches(t, cons, 1, 10*time.Second)
	if len(batches) != 1 || len(batches[0].Events) != txs {
		t.Fatalf("%d messages after the linger, want one with the %d transactions", len(batches), txs)
	}
	for i, ev := range batches[0].Events {
		if ev.GetTxId() != fmt.Sprint(i+1) {
			t.Fatalf("event %d is of transaction %s, want %d", i, ev.GetTxId(), i+1)
		}
	}
	if err := em.pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkDurableInOrder(t, durablePositions(), txs)

	// A linger that ends by itself: the transaction is published without
	// a further call.
	em.mu.Lock()
	em.linger = 20 * time.Millisecond
	em.mu.Unlock()
	commit(txs + 1)
	if batches := fetchBatches(t, cons, 1, 10*time.Second); len(batches) != 1 || len(batches[0].Events) != 1 {
		t.Fatalf("%d messages after a 20ms linger, want one with the last transaction", len(batches))
	}
	if err := em.pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if info, err := cons.Info(ctx); err != nil || info.NumPending != 0 {
		t.Fatalf("messages left after the two expected: %+v, %v", info, err)
	}
	checkDurableInOrder(t, durablePositions(), txs+1)
}

// A transaction's tables reach the bus in the order the transaction
// first changed them (a sink with foreign keys applies parents first).
func TestEmitterPublishesTablesInFirstUseOrder(t *testing.T) {
	ctx := context.Background()
	em, cons, _ := newTestEmitter(t)
	tables := []string{"e", "b", "d", "a", "c"}
	const txs = 10
	for tx := 1; tx <= txs; tx++ {
		// Each transaction starts with another table, and comes back to
		// the first one last.
		order := append(slices.Clone(tables[tx%len(tables):]), tables[:tx%len(tables)]...)
		for i, table := range append(order, order[0]) {
			ev := &event.Event{Id: fmt.Sprintf("%d-%d", tx, i), Op: event.Op_OP_INSERT, Version: uint64(tx), Position: fmt.Sprint(tx),
				TxId: fmt.Sprint(tx), CommitTimeUs: int64(tx), Origin: &event.Origin{Schema: "public", Table: table},
				Key: []*event.Column{{Name: "id", Value: event.Int(int64(i))}}}
			if err := em.Emit(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		if err := em.Mark(ctx, tx); err != nil {
			t.Fatal(err)
		}
		if err := em.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, bt := range fetchBatches(t, cons, len(tables), 10*time.Second) {
			got = append(got, bt.Events[0].GetOrigin().GetTable())
		}
		if !slices.Equal(got, order) {
			t.Fatalf("transaction %d: tables published in order %v, want %v (first use)", tx, got, order)
		}
	}
}

// Snapshot rows of a small table through the emitter into the embedded
// bus: the bytes allocated per row say whether batch buffers are reused.
func BenchmarkEmitSnapshotRows(b *testing.B) {
	em, _, _, _ := newTestBusEmitter(b)
	ctx := context.Background()
	cols := []*event.Column{
		{Name: "order_id", Value: event.Int(1)}, {Name: "line", Value: event.Int(1)},
		{Name: "sku", Value: event.Text("SKU-000123")}, {Name: "qty", Value: event.Int(3)},
	}
	ev := &event.Event{Op: event.Op_OP_SNAPSHOT, Version: 7, Position: "0/7",
		Origin: &event.Origin{Schema: "public", Table: "order_items"},
		Key:    []*event.Column{cols[0], cols[1]}, After: &event.Row{Columns: cols}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		cols[0].Value.Kind.(*event.Value_Int).Int = int64(i)
		if err := em.Emit(ctx, ev); err != nil {
			b.Fatal(err)
		}
	}
}
