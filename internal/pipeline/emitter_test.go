package pipeline

import (
	"context"
	"fmt"
	"strconv"
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
	b, err := bus.Open(ctx, bus.Config{URL: "embedded", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.EnsurePipeline(ctx, "p", bus.StreamConfig{MaxBytes: 256 << 20, DuplicateWindow: time.Minute}); err != nil {
		t.Fatal(err)
	}
	cons, err := b.EnsureConsumer(ctx, "p", "s", bus.ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var durable []any
	var mu sync.Mutex
	pub := b.NewPublisher(bus.PublisherConfig{Pipeline: "p", MaxStreamBytes: 256 << 20, OnDurable: func(pos any) {
		mu.Lock()
		durable = append(durable, pos)
		mu.Unlock()
	}})
	defer pub.Close()
	em := &busEmitter{pipeline: "p", pub: pub, metrics: metrics.New()}

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
	mu.Lock()
	if len(durable) != 1 || durable[0] != "pos-1" {
		t.Fatalf("durable positions %v, want [pos-1]", durable)
	}
	mu.Unlock()

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
