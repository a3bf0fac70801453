package event

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// DecodeKeepingAfter, with its after rows decoded afterwards, gives what
// the generated decoder gives (both expanded); where the generated decoder
// fails, so does it or the decoding of one of its rows.
func TestDecodeKeepingAfterMatchesGenerated(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	var d Decoder
	for i := range 2000 {
		data, err := randomBatch(r).MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		checkKeepingAfter(t, &d, fmt.Sprint("batch ", i), data)
		if len(data) > 0 {
			checkKeepingAfter(t, &d, fmt.Sprint("batch ", i, " cut"), data[:r.IntN(len(data))])
			bad := append([]byte{}, data...)
			bad[r.IntN(len(bad))] ^= byte(1 + r.IntN(255))
			checkKeepingAfter(t, &d, fmt.Sprint("batch ", i, " damaged"), bad)
		}
		d.Reset()
	}
}

func FuzzDecodeKeepingAfter(f *testing.F) {
	r := rand.New(rand.NewPCG(9, 10))
	for range 20 {
		data, _ := randomBatch(r).MarshalVT()
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Decoder
		checkKeepingAfter(t, &d, "fuzz", data)
	})
}

func checkKeepingAfter(t *testing.T, d *Decoder, what string, data []byte) {
	t.Helper()
	want := &Batch{}
	wantErr := want.UnmarshalVT(data)
	got, after, err := d.DecodeKeepingAfter(data)
	if err != nil {
		if wantErr == nil {
			t.Fatalf("%s: %v; the generated decoder reads it", what, err)
		}
		return
	}
	if len(after) != len(got.Events) {
		t.Fatalf("%s: %d encoded rows for %d events", what, len(after), len(got.Events))
	}
	got.Expand()
	var rowErr error
	for i, enc := range after {
		if enc.Data == nil {
			continue
		}
		if got.Events[i].After != nil {
			t.Fatalf("%s: event %d has both an After and an encoded one", what, i)
		}
		row, err := enc.Decode()
		if err != nil {
			rowErr = err
			continue
		}
		got.Events[i].After = row
	}
	switch {
	case wantErr != nil && rowErr == nil:
		t.Fatalf("%s: decoded (rows too), but the generated decoder fails: %v", what, wantErr)
	case wantErr == nil && rowErr != nil:
		t.Fatalf("%s: a row does not decode (%v), but the generated decoder reads the batch", what, rowErr)
	case wantErr != nil:
		return
	}
	want.Expand()
	if !proto.Equal(got, want) {
		t.Fatalf("%s: decoded differently:\n got %v\nwant %v", what, got, want)
	}
}

// The after rows stay encoded on the fast path: a snapshot batch has no
// After, and its keys come from the encoded rows.
func TestDecodeKeepingAfterLeavesRowsEncoded(t *testing.T) {
	var d Decoder
	b, after, err := d.DecodeKeepingAfter(snapshotBatch())
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Events) == 0 {
		t.Fatal("no events")
	}
	for i, ev := range b.Events {
		if ev.After != nil || after[i].Data == nil || len(after[i].Names) == 0 {
			t.Fatalf("event %d: After %v, encoded %d bytes, %d names", i, ev.After, len(after[i].Data), len(after[i].Names))
		}
		if len(ev.Key) == 0 || ev.Key[0].Name == "" || ev.Key[0].Value == nil {
			t.Fatalf("event %d: key %v", i, ev.Key)
		}
	}
}

// A row encoded by position with a field the fast decoder does not know
// (another encoder's): the generated decoder keeps it aside and still
// takes the key from the row, so DecodeKeepingAfter must too.
func TestDecodeKeepingAfterRowWithUnknownField(t *testing.T) {
	row, err := (&Row{Columns: []*Column{{Value: Int(1)}, {Value: Text("a")}}}).MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	row = append(row, 0x28, 0x07) // field 5, varint 7
	ev := protowire.AppendTag(nil, 2, protowire.VarintType)
	ev = protowire.AppendVarint(ev, uint64(Op_OP_SNAPSHOT))
	ev = protowire.AppendTag(ev, 10, protowire.BytesType)
	ev = protowire.AppendBytes(ev, row)
	data, err := (&Batch{Columns: []string{"id", "name"}, KeyColumns: []uint32{0}}).MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	data = protowire.AppendTag(data, 1, protowire.BytesType)
	data = protowire.AppendBytes(data, ev)
	var d Decoder
	checkKeepingAfter(t, &d, "unknown field in a row", data)
}
