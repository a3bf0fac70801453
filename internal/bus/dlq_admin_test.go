package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/tidegate/tidegate/event"
)

// dlqWorld is a pipeline "p" with sinks "a" and "b" and a few dead letters.
type dlqWorld struct {
	t      *testing.T
	b      *Bus
	events map[string]*event.Event // by id
}

func newDLQWorld(t *testing.T) *dlqWorld {
	t.Helper()
	w := &dlqWorld{t: t, b: openTest(t), events: map[string]*event.Event{}}
	ctx := context.Background()
	if err := w.b.EnsurePipeline(ctx, "p", StreamConfig{MaxBytes: 64 << 20, DuplicateWindow: time.Minute}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"a", "b"} {
		if _, err := w.b.EnsureConsumer(ctx, "p", s, ConsumerConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// dead stores a dead letter of sink for a fresh event of public.t with key
// id and version v; it returns the event.
func (w *dlqWorld) dead(sink string, id int, v uint64) *event.Event {
	w.t.Helper()
	ev := &event.Event{
		Id: fmt.Sprintf("src:%d:%d", v, id), Op: event.Op_OP_UPDATE, Version: v,
		Origin: &event.Origin{Source: "src", Kind: "postgres", Schema: "public", Table: "t"},
		Key:    []*event.Column{{Name: "id", Value: &event.Value{Kind: &event.Value_Int{Int: int64(id)}}}},
		After: &event.Row{Columns: []*event.Column{
			{Name: "id", Value: &event.Value{Kind: &event.Value_Int{Int: int64(id)}}},
			{Name: "price", Value: &event.Value{Kind: &event.Value_Text{Text: "not a number"}}},
		}},
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		w.t.Fatal(err)
	}
	w.put(sink, ev.GetId(), data)
	w.events[ev.GetId()] = ev
	return ev
}

func (w *dlqWorld) put(sink, id string, data []byte) {
	w.t.Helper()
	err := w.b.PublishDLQ(context.Background(), DeadLetter{
		Pipeline: "p", Sink: sink, EventID: id, Subject: Subject("p", "public", "t"),
		Error: "mapper_parsing_exception: failed to parse field [price] of type [integer]", Attempts: 3, Data: data,
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

// scan lists the event ids matching f.
func (w *dlqWorld) scan(f DLQFilter) (ids []string, seqs []uint64) {
	w.t.Helper()
	err := w.b.ScanDLQ(context.Background(), "p", f, func(d StoredDeadLetter) (bool, error) {
		ids = append(ids, d.EventID)
		seqs = append(seqs, d.Seq)
		return true, nil
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return ids, seqs
}

func (w *dlqWorld) count(sink string) uint64 {
	w.t.Helper()
	n, err := w.b.DLQCount(context.Background(), "p", sink)
	if err != nil {
		w.t.Fatal(err)
	}
	return n
}

func ids(evs ...*event.Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.GetId())
	}
	return out
}

func sameStrings(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

// Dead letters are listed in order, by sink, from and to a sequence, one
// at a time (the callback can stop the scan: pagination); counted per sink;
// read back with every header; discarded for good.
func TestDLQListGetDiscard(t *testing.T) {
	w := newDLQWorld(t)
	ctx := context.Background()
	var a, b []*event.Event
	for i := range 5 {
		a = append(a, w.dead("a", i, uint64(100+i)))
		if i%2 == 0 {
			b = append(b, w.dead("b", i, uint64(200+i)))
		}
	}
	all, seqs := w.scan(DLQFilter{})
	if len(all) != 8 {
		t.Fatalf("scan without filter: %d dead letters %v, want 8", len(all), all)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("scan is not in sequence order: %v", seqs)
		}
	}
	if got, _ := w.scan(DLQFilter{Sink: "a"}); !sameStrings(got, ids(a...)) {
		t.Errorf("sink a: %v, want %v", got, ids(a...))
	}
	if got, _ := w.scan(DLQFilter{Sink: "b"}); !sameStrings(got, ids(b...)) {
		t.Errorf("sink b: %v, want %v", got, ids(b...))
	}
	if n := w.count("a"); n != 5 {
		t.Errorf("count a = %d, want 5", n)
	}
	if n := w.count(""); n != 8 {
		t.Errorf("count all = %d, want 8", n)
	}

	// Pages of 2 of sink a: stop after two, continue after the last seen.
	var pages [][]string
	from := uint64(0)
	for {
		var page []string
		var last uint64
		err := w.b.ScanDLQ(ctx, "p", DLQFilter{Sink: "a", From: from}, func(d StoredDeadLetter) (bool, error) {
			page = append(page, d.EventID)
			last = d.Seq
			return len(page) < 2, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		pages = append(pages, page)
		from = last + 1
	}
	if fmt.Sprint(pages) != fmt.Sprint([][]string{ids(a[0], a[1]), ids(a[2], a[3]), ids(a[4])}) {
		t.Errorf("pages of sink a: %v", pages)
	}
	// A bound: only what existed when a bulk operation started.
	if got, _ := w.scan(DLQFilter{To: seqs[2]}); !sameStrings(got, all[:3]) {
		t.Errorf("scan to %d: %v, want %v", seqs[2], got, all[:3])
	}

	// Get: headers and body.
	d, err := w.b.GetDLQ(ctx, "p", seqs[0])
	if err != nil {
		t.Fatal(err)
	}
	if d.Sink != "a" || d.EventID != a[0].GetId() || d.Attempts != 3 || d.OriginalSubject != Subject("p", "public", "t") ||
		d.FailedAt.IsZero() || time.Since(d.FailedAt) > time.Hour || d.Pipeline != "p" || d.Seq != seqs[0] {
		t.Errorf("dead letter %d: %+v", seqs[0], d)
	}
	ev, err := d.Event()
	if err != nil || !proto.Equal(ev, a[0]) {
		t.Errorf("event of dead letter %d: %v (err %v), want %v", seqs[0], ev, err, a[0])
	}
	if _, err := w.b.GetDLQ(ctx, "p", 999); !errors.Is(err, ErrDeadLetterNotFound) {
		t.Errorf("get of a missing sequence: %v, want ErrDeadLetterNotFound", err)
	}
	if _, err := w.b.GetDLQ(ctx, "nope", 1); !errors.Is(err, ErrDeadLetterNotFound) {
		t.Errorf("get in a pipeline without DLQ stream: %v, want ErrDeadLetterNotFound", err)
	}

	// Discard.
	if err := w.b.DiscardDLQ(ctx, "p", seqs[0]); err != nil {
		t.Fatal(err)
	}
	if err := w.b.DiscardDLQ(ctx, "p", seqs[0]); !errors.Is(err, ErrDeadLetterNotFound) {
		t.Errorf("second discard: %v, want ErrDeadLetterNotFound", err)
	}
	if got, _ := w.scan(DLQFilter{Sink: "a"}); !sameStrings(got, ids(a[1:]...)) {
		t.Errorf("sink a after discarding %s: %v", a[0].GetId(), got)
	}
	if n := w.count("a"); n != 4 {
		t.Errorf("count a after a discard = %d, want 4", n)
	}
	// A pipeline that never ran has no dead letters.
	if err := w.b.ScanDLQ(ctx, "never", DLQFilter{}, func(StoredDeadLetter) (bool, error) {
		t.Error("a dead letter in a pipeline without DLQ stream")
		return true, nil
	}); err != nil {
		t.Error(err)
	}
}

// Replay publishes the unchanged event as a one-event batch on its original
// subject, marked for its sink only, then removes the dead letter; a replay
// repeated (a crash between publish and delete) is stored once.
func TestDLQReplay(t *testing.T) {
	w := newDLQWorld(t)
	ctx := context.Background()
	ev := w.dead("a", 7, 42)
	w.dead("b", 8, 43)
	_, seqs := w.scan(DLQFilter{Sink: "a"})
	d, err := w.b.GetDLQ(ctx, "p", seqs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := w.b.ReplayDLQ(ctx, d); err != nil {
		t.Fatal(err)
	}
	msgs := w.pipelineMsgs()
	if len(msgs) != 1 {
		t.Fatalf("pipeline stream holds %d messages after a replay, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Subject != Subject("p", "public", "t") || m.Header.Get(HeaderReplaySink) != "a" || m.Header.Get(HeaderEvents) != "1" {
		t.Errorf("replayed message: subject %s, headers %v", m.Subject, m.Header)
	}
	var batch event.Batch
	if err := proto.Unmarshal(m.Data, &batch); err != nil {
		t.Fatalf("replayed message is not an event.Batch: %v", err)
	}
	if len(batch.GetEvents()) != 1 || !proto.Equal(batch.GetEvents()[0], ev) {
		t.Errorf("replayed batch %v, want the original event %v (same id and version)", &batch, ev)
	}
	if got, _ := w.scan(DLQFilter{Sink: "a"}); len(got) != 0 {
		t.Errorf("dead letters of a after the replay: %v", got)
	}
	if got, _ := w.scan(DLQFilter{Sink: "b"}); len(got) != 1 {
		t.Errorf("the replay touched sink b's dead letters: %v", got)
	}
	// The same dead letter replayed again (its deletion was lost) is not
	// stored twice.
	if err := w.b.ReplayDLQ(ctx, d); err != nil {
		t.Fatalf("replaying a dead letter again: %v", err)
	}
	if n := len(w.pipelineMsgs()); n != 1 {
		t.Errorf("pipeline stream holds %d messages after a repeated replay, want 1", n)
	}
}

// An event dead-lettered again after a replay can be replayed again: the
// replay's message id comes from the dead letter, not the event, so the
// pipeline stream's de-duplication does not swallow the second replay.
func TestDLQReplayFailingAgain(t *testing.T) {
	w := newDLQWorld(t)
	ctx := context.Background()
	ev := w.dead("a", 1, 10)
	_, seqs := w.scan(DLQFilter{})
	d, err := w.b.GetDLQ(ctx, "p", seqs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := w.b.ReplayDLQ(ctx, d); err != nil {
		t.Fatal(err)
	}
	// The sink rejects the replayed event again. (Stored without a message
	// id: PublishDLQ's id is the sink and event id, which the DLQ stream's
	// own de-duplication window would drop; see the e2e test.)
	data, _ := proto.Marshal(ev)
	again := &nats.Msg{Subject: DLQSubject("p", "a"), Data: data, Header: nats.Header{}}
	again.Header.Set(HeaderSink, "a")
	again.Header.Set(HeaderEventID, ev.GetId())
	again.Header.Set(HeaderOriginalSubject, Subject("p", "public", "t"))
	if _, err := w.b.JetStream().PublishMsg(ctx, again); err != nil {
		t.Fatal(err)
	}
	got, seqs := w.scan(DLQFilter{Sink: "a"})
	if len(got) != 1 {
		t.Fatalf("dead letters of a: %v, want the second failure only", got)
	}
	d, err = w.b.GetDLQ(ctx, "p", seqs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := w.b.ReplayDLQ(ctx, d); err != nil {
		t.Fatal(err)
	}
	if n := len(w.pipelineMsgs()); n != 2 {
		t.Errorf("pipeline stream holds %d messages after two replays of two dead letters, want 2", n)
	}
}

// What cannot be replayed stays in the DLQ with a reason: a body that is
// not an event, a sink that no longer consumes the pipeline.
func TestDLQReplayRefusals(t *testing.T) {
	w := newDLQWorld(t)
	ctx := context.Background()
	w.put("a", "", []byte("\xff\xffnot protobuf"))
	w.dead("gone", 1, 1)
	_, seqs := w.scan(DLQFilter{})
	for _, seq := range seqs {
		d, err := w.b.GetDLQ(ctx, "p", seq)
		if err != nil {
			t.Fatal(err)
		}
		err = w.b.ReplayDLQ(ctx, d)
		if !errors.Is(err, ErrNotReplayable) {
			t.Errorf("replay of dead letter %d (sink %s): %v, want ErrNotReplayable", seq, d.Sink, err)
		}
		t.Logf("dead letter %d: %v", seq, err)
	}
	if got, _ := w.scan(DLQFilter{}); len(got) != 2 {
		t.Errorf("refused dead letters were removed: %d left, want 2", len(got))
	}
	if n := len(w.pipelineMsgs()); n != 0 {
		t.Errorf("a refused replay published %d messages", n)
	}
}

// pipelineMsgs returns every message of the pipeline stream (the test's
// consumers never acknowledge, so interest retention keeps them).
func (w *dlqWorld) pipelineMsgs() []*jetstream.RawStreamMsg {
	w.t.Helper()
	ctx := context.Background()
	s, err := w.b.JetStream().Stream(ctx, StreamName("p"))
	if err != nil {
		w.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); ; {
		m, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(">"))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			w.t.Fatalf("reading %s at %s: %v", StreamName("p"), strconv.FormatUint(seq, 10), err)
		}
		out = append(out, m)
		seq = m.Sequence + 1
	}
}

// A replay never fills the pipeline stream (the source's publisher needs
// its margin): with the stream at bus.max_bytes the replay is refused and
// the dead letter stays.
func TestDLQReplayStreamFull(t *testing.T) {
	b := openTest(t)
	ctx := context.Background()
	if err := b.EnsurePipeline(ctx, "p", StreamConfig{MaxBytes: 64 << 10, DuplicateWindow: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.EnsureConsumer(ctx, "p", "a", ConsumerConfig{}); err != nil {
		t.Fatal(err)
	}
	filler := make([]byte, 1024)
	for bytes := uint64(0); bytes < 64<<10; {
		if _, err := b.JetStream().Publish(ctx, Subject("p", "public", "t"), filler); err != nil {
			t.Fatal(err)
		}
		var err error
		if bytes, err = b.StreamBytes(ctx, "p"); err != nil {
			t.Fatal(err)
		}
	}
	w := &dlqWorld{t: t, b: b, events: map[string]*event.Event{}}
	w.dead("a", 1, 1)
	_, seqs := w.scan(DLQFilter{})
	d, err := b.GetDLQ(ctx, "p", seqs[0])
	if err != nil {
		t.Fatal(err)
	}
	before, _ := b.StreamBytes(ctx, "p")
	if err := b.ReplayDLQ(ctx, d); !errors.Is(err, ErrStreamFull) {
		t.Fatalf("replay into a full stream: %v, want ErrStreamFull", err)
	}
	if after, _ := b.StreamBytes(ctx, "p"); after != before {
		t.Errorf("the refused replay was published: stream bytes %d -> %d", before, after)
	}
	if got, _ := w.scan(DLQFilter{}); len(got) != 1 {
		t.Errorf("the refused dead letter was removed: %v", got)
	}
}
