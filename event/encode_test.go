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

// AppendDelimitedOmitting writes what AppendDelimited writes for a copy of
// the event without the omitted fields, through the fast path and the
// generated code's (meta, unknown fields), and leaves the event unchanged.
func TestAppendDelimitedOmitting(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	unknown := protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 1)
	strip := func(ev *Event, o Omit) *Event {
		c := &Event{}
		data, err := ev.MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.UnmarshalVT(data); err != nil {
			t.Fatal(err)
		}
		if o.Shared {
			c.Origin, c.Schema = nil, nil
		}
		if o.Shared && !o.OwnCommit {
			c.Version, c.Position, c.CommitTimeUs, c.TxId = 0, "", 0, ""
		}
		if o.Key {
			c.Key = nil
		}
		for _, rw := range []struct {
			row  *Row
			omit bool
		}{{c.Before, o.BeforeNames}, {c.After, o.AfterNames}} {
			if rw.omit && rw.row != nil {
				for _, col := range rw.row.Columns {
					if col != nil {
						col.Name = ""
					}
				}
			}
		}
		return c
	}
	for i := range 1000 {
		for j, ev := range randomBatch(r).Events {
			if len(ev.Meta) > 1 {
				continue // map order is random in both
			}
			if r.IntN(3) == 0 {
				ev.Schema, ev.CommitTimeUs, ev.TxId = &SchemaRef{Version: 3}, int64(r.IntN(1000)), "42"
			}
			switch r.IntN(8) {
			case 0:
				ev.unknownFields = unknown
			case 1:
				if cols := ev.GetAfter().GetColumns(); len(cols) > 0 && cols[0] != nil {
					cols[0].unknownFields = unknown
				}
			case 2:
				if ev.After != nil {
					ev.After.unknownFields = unknown
				}
			}
			before, err := ev.MarshalVT()
			if err != nil {
				t.Fatal(err)
			}
			for bits := range 32 {
				o := Omit{Shared: bits&1 != 0, Key: bits&2 != 0, BeforeNames: bits&4 != 0, AfterNames: bits&8 != 0, OwnCommit: bits&16 != 0}
				got := AppendDelimitedOmitting([]byte("prefix"), ev, o)
				want := AppendDelimited(nil, strip(ev, o))
				if !bytes.Equal(got[6:], want) {
					t.Fatalf("batch %d event %d, %+v: %v\n got %x\nwant %x", i, j, o, ev, got[6:], want)
				}
			}
			if after, _ := ev.MarshalVT(); !bytes.Equal(after, before) {
				t.Fatalf("batch %d event %d: encoding changed the event", i, j)
			}
		}
	}
}
