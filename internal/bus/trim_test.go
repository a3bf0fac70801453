package bus

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Trim removes exactly what every consumer acknowledged: nothing while one
// of them lags, everything once all are through, nothing when there is no
// consumer at all, and nothing while fewer messages than asked for are
// acknowledged.
func TestTrim(t *testing.T) {
	b := openTest(t)
	ctx := context.Background()
	if err := b.EnsurePipeline(ctx, "p", StreamConfig{MaxBytes: 64 << 20, DuplicateWindow: time.Minute}); err != nil {
		t.Fatal(err)
	}
	publish := func(n int) {
		t.Helper()
		for i := range n {
			if _, err := b.js.Publish(ctx, Subject("p", "public", "t"), []byte(fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	state := func() jetstream.StreamState {
		t.Helper()
		st, err := b.streamState(ctx, "p")
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	trim := func(least, want uint64) {
		t.Helper()
		got, err := b.Trim(ctx, "p", least)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("Trim removed %d sequences, want %d", got, want)
		}
	}

	// No consumer: nothing is acknowledged, so nothing goes.
	publish(3)
	trim(1, 0)
	if st := state(); st.Msgs != 3 {
		t.Fatalf("no consumer: the stream holds %d messages, want 3", st.Msgs)
	}

	fast, err := b.EnsureConsumer(ctx, "p", "fast", ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	slow, err := b.EnsureConsumer(ctx, "p", "slow", ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	publish(7)
	// ack acknowledges (AckAll) the first n messages the consumer has not
	// yet been given.
	ack := func(c jetstream.Consumer, n int) {
		t.Helper()
		batch, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var last jetstream.Msg
		got := 0
		for m := range batch.Messages() {
			last = m
			got++
		}
		if got != n {
			t.Fatalf("fetched %d messages, want %d", got, n)
		}
		if err := last.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ack(fast, 10)
	ack(slow, 4)
	trim(5, 0) // fewer acknowledged than asked for: kept for a later trim
	trim(4, 4)
	if st := state(); st.FirstSeq != 5 || st.Msgs != 6 {
		t.Fatalf("after trimming what both consumers acknowledged: first sequence %d, %d messages; want 5 and 6", st.FirstSeq, st.Msgs)
	}
	trim(1, 0) // nothing new acknowledged by both
	ack(slow, 6)
	trim(0, 6) // 0 counts as 1
	if st := state(); st.Msgs != 0 {
		t.Fatalf("everything acknowledged and trimmed, yet the stream holds %d messages", st.Msgs)
	}
}

// A pipeline stream created with interest retention (before trimming
// existed) switches to limits retention and keeps its messages.
func TestEnsurePipelineSwitchesRetention(t *testing.T) {
	b := openTest(t)
	ctx := context.Background()
	if _, err := b.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: StreamName("p"), Subjects: []string{"tg.p.ev.>"}, Storage: jetstream.FileStorage, Retention: jetstream.InterestPolicy,
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.EnsureConsumer(ctx, "p", "s", ConsumerConfig{}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := b.js.Publish(ctx, Subject("p", "public", "t"), []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.EnsurePipeline(ctx, "p", StreamConfig{MaxBytes: 64 << 20, DuplicateWindow: time.Minute}); err != nil {
		t.Fatal(err)
	}
	s, err := b.js.Stream(ctx, StreamName("p"))
	if err != nil {
		t.Fatal(err)
	}
	info := s.CachedInfo()
	if info.Config.Retention != jetstream.LimitsPolicy {
		t.Fatalf("retention is %v after EnsurePipeline, want limits", info.Config.Retention)
	}
	if info.State.Msgs != 5 {
		t.Fatalf("the stream holds %d messages after switching, want 5", info.State.Msgs)
	}
}
