package bus

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/tidegate/tidegate/internal/testkit/leaktest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

func openTest(t *testing.T) *Bus {
	t.Helper()
	b, err := Open(context.Background(), Config{URL: "embedded", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// Positions are reported durable in Mark order, only once every message
// before them is stored; the stream holds the messages in publish order and
// re-publishing an id is de-duplicated.
func TestPublisherOrderAndDurability(t *testing.T) {
	b := openTest(t)
	ctx := context.Background()
	if err := b.EnsurePipeline(ctx, "p1", StreamConfig{MaxBytes: 64 << 20, DuplicateWindow: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.EnsureConsumer(ctx, "p1", "s", ConsumerConfig{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var durable []any
	pub := b.NewPublisher(PublisherConfig{Pipeline: "p1", MaxInflightBytes: 4096, MaxStreamBytes: 64 << 20,
		OnDurable: func(p any) { mu.Lock(); durable = append(durable, p); mu.Unlock() }})
	defer pub.Close()
	const n = 2000
	for i := range n {
		if err := pub.Publish(ctx, Subject("p1", "public", "t"), fmt.Sprintf("id-%d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			if err := pub.Mark(ctx, i); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Re-publish the first 100 (a source restarting from an earlier position).
	for i := range 100 {
		if err := pub.Publish(ctx, Subject("p1", "public", "t"), fmt.Sprintf("id-%d", i), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(durable) != n/100 {
		t.Fatalf("%d positions durable, want %d", len(durable), n/100)
	}
	for i, p := range durable {
		if p.(int) != i*100+99 {
			t.Fatalf("durable[%d] = %v: out of order", i, p)
		}
	}
	mu.Unlock()
	s, err := b.JetStream().Stream(ctx, StreamName("p1"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != n {
		t.Fatalf("stream holds %d messages, want %d (duplicates not removed?)", info.State.Msgs, n)
	}
	for _, seq := range []uint64{1, 777, n} {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if string(m.Data) != fmt.Sprint(seq-1) {
			t.Fatalf("seq %d holds %q: stream out of publish order", seq, m.Data)
		}
	}
}

// A full stream makes Publish wait (backpressure) until a consumer acks
// and the acknowledged messages are trimmed.
func TestPublisherWaitsWhenStreamFull(t *testing.T) {
	b := openTest(t)
	ctx := context.Background()
	const max = 1 << 20
	if err := b.EnsurePipeline(ctx, "p2", StreamConfig{MaxBytes: max, DuplicateWindow: time.Minute, MaxInflightBytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	cons, err := b.EnsureConsumer(ctx, "p2", "s", ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pub := b.NewPublisher(PublisherConfig{Pipeline: "p2", MaxInflightBytes: 1 << 20, MaxStreamBytes: max})
	defer pub.Close()
	payload := make([]byte, 64<<10)
	// Publish far more than the bound: Publish must start waiting.
	blocked, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	published := 0
	for i := range 200 {
		if err := pub.Publish(blocked, Subject("p2", "s", "t"), fmt.Sprint("a", i), payload); err != nil {
			break
		}
		published++
	}
	if published == 200 {
		t.Fatal("publishing 12 MiB into a 1 MiB stream never waited")
	}
	if err := pub.Err(); err != nil {
		t.Fatalf("the server refused a message instead of the publisher waiting: %v", err)
	}
	// Consume everything: the publisher can go on.
	batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Acknowledged messages stay until the pipeline trims them.
	if _, err := b.Trim(ctx, "p2", 1); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, Subject("p2", "s", "t"), "c", payload); err != nil {
		t.Fatalf("publish after the sink caught up: %v", err)
	}
}

func TestStateRoundTrip(t *testing.T) {
	b := openTest(t)
	ctx := context.Background()
	st, err := b.State(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type v struct{ A int }
	var got v
	if ok, err := st.Get(ctx, "k", &got); ok || err != nil {
		t.Fatalf("absent key: %v %v", ok, err)
	}
	if err := st.Put(ctx, "k", v{A: 7}); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.Get(ctx, "k", &got); !ok || err != nil || got.A != 7 {
		t.Fatalf("got %v %v %v", got, ok, err)
	}
	if err := st.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := st.Get(ctx, "k", &got); ok {
		t.Fatal("deleted key still there")
	}
}
