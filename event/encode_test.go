package event

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// The fast encoder writes exactly the generated encoder's bytes, for every
// kind of value and shape of event (randomBatch), including dates,
// infinities and negative numbers.
func TestAppendFastMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	extra := []*Event{
		{Op: Op_OP_SNAPSHOT, After: &Row{Columns: []*Column{
			{Value: &Value{Kind: &Value_Date{Date: &Date{Days: -719000}}}},
			{Value: &Value{Kind: &Value_Date{Date: &Date{Infinity: -1}}}},
			{Value: &Value{Kind: &Value_Timestamp{Timestamp: &Timestamp{UnixMicros: -5, Infinity: 1}}}},
			{Value: &Value{Kind: &Value_Timestamp{Timestamp: &Timestamp{}}}},
			{Value: &Value{Kind: &Value_Date{}}},
			{Value: Int(-1 << 63)}, {Value: Bool(false)}, {Value: Float(-0.0)},
			nil,
			{Name: "only-a-name"},
			{Value: &Value{Kind: &Value_Text{Text: string(make([]byte, 300))}}},
		}}},
		{Id: "x", Version: 1 << 63, CommitTimeUs: -1, TxId: "7", Position: "0/1"},
	}
	for i := range 2000 {
		events := randomBatch(r).Events
		if i == 0 {
			events = append(events, extra...)
		}
		for _, ev := range events {
			if len(ev.Meta) > 1 {
				continue // map order is random in both
			}
			want, err := ev.MarshalVT()
			if err != nil {
				t.Fatal(err)
			}
			got := ev.AppendFast([]byte("prefix"))
			if !bytes.Equal(got[6:], want) {
				t.Fatalf("AppendFast differs from MarshalVT for %v:\n got %x\nwant %x", ev, got[6:], want)
			}
			got = AppendDelimited([]byte("prefix"), ev)
			if want = protowire.AppendBytes(nil, want); !bytes.Equal(got[6:], want) {
				t.Fatalf("AppendDelimited differs for %v:\n got %x\nwant %x", ev, got[6:], want)
			}
		}
	}
}

func BenchmarkEncodeEvent(b *testing.B) {
	ev := &Event{Op: Op_OP_SNAPSHOT, After: &Row{Columns: []*Column{
		{Value: Int(123456)}, {Value: Int(3)}, {Value: Text("SKU-123456")}, {Value: Int(2)}, {Value: Decimal("12.50")},
		{Value: &Value{Kind: &Value_Timestamp{Timestamp: &Timestamp{UnixMicros: 1700000000000000}}}}, {Value: Bool(true)}}}}
	buf := make([]byte, 0, 1<<20)
	b.Run("generated", func(b *testing.B) {
		for b.Loop() {
			n := ev.SizeVT()
			buf = protowire.AppendVarint(buf, uint64(n))
			at := len(buf)
			buf = buf[:at+n]
			if _, err := ev.MarshalToSizedBufferVT(buf[at:]); err != nil {
				b.Fatal(err)
			}
			if len(buf) > 1<<19 {
				buf = buf[:0]
			}
		}
	})
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			buf = AppendDelimited(buf, ev)
			if len(buf) > 1<<19 {
				buf = buf[:0]
			}
		}
	})
}
