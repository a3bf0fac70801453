package event

import (
	"math"
	"math/bits"

	"google.golang.org/protobuf/encoding/protowire"
)

// Fast encoding of events, for the sources' hot path: the same bytes as
// the generated code (TestAppendFastMatchesGenerated) in one forward pass.
// The generated code first sizes the whole event, then writes it, reaching
// each value through interface assertions both times; here a type switch
// on the common kinds writes each value once, and a length is patched in
// after its message (moving the message when its length takes more than a
// byte). Rare shapes (maps, unknown fields, lists, documents, intervals)
// use the generated code.

// AppendDelimited appends ev's encoding preceded by its length, as an
// embedded message field's value is written (Batch.events).
func AppendDelimited(b []byte, ev *Event) []byte { return AppendDelimitedOmitting(b, ev, Omit{}) }

// Omit says what AppendDelimitedOmitting leaves out of an event: what a
// Batch carries once for all its events (Batch.shared, columns and
// key_columns), so that the caller's event need not be changed to encode
// it without them.
type Omit struct {
	// Shared: Origin, Schema, and unless OwnCommit, Version, Position,
	// CommitTimeUs and TxId.
	Shared bool
	// OwnCommit keeps the commit fields (Version, Position, CommitTimeUs,
	// TxId) of an event of a batch that holds several transactions.
	OwnCommit bool
	// Key: the key columns (the batch's key_columns point into the after row).
	Key bool
	// BeforeNames, AfterNames: the column names of the before and after rows.
	BeforeNames, AfterNames bool
}

// AppendDelimitedOmitting is AppendDelimited of ev without what o names;
// ev is not changed.
func AppendDelimitedOmitting(b []byte, ev *Event, o Omit) []byte {
	b, at := beginLen(b)
	return endLen(ev.appendFast(b, o), at)
}

// AppendFast appends ev's encoding (ev.MarshalVT()) to b.
func (m *Event) AppendFast(b []byte) []byte { return m.appendFast(b, Omit{}) }

func (m *Event) appendFast(b []byte, o Omit) []byte {
	if (!o.Shared && (m.Origin != nil || m.Schema != nil)) || len(m.Meta) > 0 || len(m.unknownFields) > 0 {
		w := m.without(o)
		return appendSized(b, w.SizeVT(), w.MarshalToSizedBufferVT)
	}
	if l := len(m.Id); l > 0 {
		b = protowire.AppendString(append(b, 0x0a), m.Id)
	}
	if m.Op != 0 {
		b = protowire.AppendVarint(append(b, 0x10), uint64(m.Op))
	}
	if !o.Shared || o.OwnCommit {
		if m.Version != 0 {
			b = protowire.AppendVarint(append(b, 0x20), m.Version)
		}
		if len(m.Position) > 0 {
			b = protowire.AppendString(append(b, 0x2a), m.Position)
		}
		if m.CommitTimeUs != 0 {
			b = protowire.AppendVarint(append(b, 0x30), uint64(m.CommitTimeUs))
		}
		if len(m.TxId) > 0 {
			b = protowire.AppendString(append(b, 0x3a), m.TxId)
		}
	}
	if !o.Key {
		for _, c := range m.Key {
			b = c.appendDelimited(append(b, 0x42), false)
		}
	}
	if m.Before != nil {
		b = m.Before.appendDelimited(append(b, 0x4a), o.BeforeNames)
	}
	if m.After != nil {
		b = m.After.appendDelimited(append(b, 0x52), o.AfterNames)
	}
	for _, s := range m.Unchanged {
		b = protowire.AppendString(append(b, 0x5a), s)
	}
	return b
}

// without returns m, or when o omits something a shallow copy without it
// (for the generated code, which encodes every field it finds).
func (m *Event) without(o Omit) *Event {
	if o == (Omit{}) {
		return m
	}
	w := &Event{Id: m.Id, Op: m.Op, Key: m.Key, Before: m.Before, After: m.After, Unchanged: m.Unchanged, Meta: m.Meta, unknownFields: m.unknownFields}
	if !o.Shared {
		w.Origin, w.Schema = m.Origin, m.Schema
	}
	if !o.Shared || o.OwnCommit {
		w.Version, w.Position, w.CommitTimeUs, w.TxId = m.Version, m.Position, m.CommitTimeUs, m.TxId
	}
	if o.Key {
		w.Key = nil
	}
	if o.BeforeNames {
		w.Before = m.Before.withoutNames()
	}
	if o.AfterNames {
		w.After = m.After.withoutNames()
	}
	return w
}

// withoutNames returns a copy of r whose columns have no names.
func (r *Row) withoutNames() *Row {
	if r == nil {
		return nil
	}
	w := &Row{Columns: make([]*Column, len(r.Columns)), unknownFields: r.unknownFields}
	for i, c := range r.Columns {
		if c != nil {
			w.Columns[i] = &Column{Value: c.Value, unknownFields: c.unknownFields}
		}
	}
	return w
}

func (r *Row) appendDelimited(b []byte, noNames bool) []byte {
	if len(r.unknownFields) > 0 {
		if noNames {
			r = r.withoutNames()
		}
		return appendGenerated(b, r.SizeVT(), r.MarshalToSizedBufferVT)
	}
	b, at := beginLen(b)
	for _, c := range r.Columns {
		b = c.appendDelimited(append(b, 0x0a), noNames)
	}
	return endLen(b, at)
}

func (c *Column) appendDelimited(b []byte, noName bool) []byte {
	if c == nil {
		return append(b, 0)
	}
	if len(c.unknownFields) > 0 {
		if noName {
			c = &Column{Value: c.Value, unknownFields: c.unknownFields}
		}
		return appendGenerated(b, c.SizeVT(), c.MarshalToSizedBufferVT)
	}
	b, at := beginLen(b)
	if len(c.Name) > 0 && !noName {
		b = protowire.AppendString(append(b, 0x0a), c.Name)
	}
	if c.Value != nil {
		b = c.Value.appendDelimited(append(b, 0x12))
	}
	return endLen(b, at)
}

func (v *Value) appendDelimited(b []byte) []byte {
	if len(v.unknownFields) > 0 {
		return appendGenerated(b, v.SizeVT(), v.MarshalToSizedBufferVT)
	}
	// Lengths known up front: no patching.
	switch k := v.Kind.(type) {
	case nil:
		return append(b, 0)
	case *Value_Bool:
		if k.Bool {
			return append(b, 2, 0x08, 1)
		}
		return append(b, 2, 0x08, 0)
	case *Value_Int:
		x := protowire.EncodeZigZag(k.Int)
		return protowire.AppendVarint(append(b, byte(1+sov(x)), 0x10), x)
	case *Value_Uint:
		return protowire.AppendVarint(append(b, byte(1+sov(k.Uint)), 0x18), k.Uint)
	case *Value_Float:
		return protowire.AppendFixed64(append(b, 9, 0x21), math.Float64bits(k.Float))
	case *Value_Decimal:
		return appendStringValue(b, 0x2a, k.Decimal)
	case *Value_Text:
		return appendStringValue(b, 0x32, k.Text)
	case *Value_Bytes:
		return appendStringValue(b, 0x3a, string(k.Bytes))
	case *Value_Json:
		return appendStringValue(b, 0x62, k.Json)
	case *Value_Uuid:
		return appendStringValue(b, 0x6a, string(k.Uuid))
	case *Value_Timestamp:
		if t := k.Timestamp; t != nil && len(t.unknownFields) == 0 {
			local := uint64(0)
			if t.Local {
				local = 1
			}
			return appendVarintMessage(b, 0x42, uint64(t.UnixMicros), local, uint64(t.Infinity))
		}
	case *Value_Date:
		if d := k.Date; d != nil && len(d.unknownFields) == 0 {
			return appendVarintMessage(b, 0x4a, uint64(d.Days), uint64(d.Infinity))
		}
	}
	return appendGenerated(b, v.SizeVT(), v.MarshalToSizedBufferVT)
}

// appendVarintMessage appends a value holding one message (tag) whose
// fields 1, 2, ... are the given varints, zero ones left out as proto3
// does (Timestamp, Date; decode.go: varintFields reads them back).
func appendVarintMessage(b []byte, tag byte, fields ...uint64) []byte {
	b, at := beginLen(b)
	b, mat := beginLen(append(b, tag))
	for i, x := range fields {
		if x != 0 {
			b = protowire.AppendVarint(append(b, byte(i+1)<<3), x)
		}
	}
	return endLen(endLen(b, mat), at)
}

// appendStringValue appends the length of a value holding one
// length-delimited field, the field's tag and the string.
func appendStringValue(b []byte, tag byte, s string) []byte {
	l := uint64(len(s))
	b = protowire.AppendVarint(b, uint64(1+sov(l))+l)
	b = protowire.AppendVarint(append(b, tag), l)
	return append(b, s...)
}

// beginLen reserves one byte for the length of the message that follows;
// at is where the message starts.
func beginLen(b []byte) (_ []byte, at int) {
	b = append(b, 0)
	return b, len(b)
}

// endLen writes the length of the message that started at at, moving the
// message when its length needs more than the byte reserved.
func endLen(b []byte, at int) []byte {
	n := len(b) - at
	if n < 0x80 {
		b[at-1] = byte(n)
		return b
	}
	k := sov(uint64(n))
	b = append(b, make([]byte, k-1)...)
	copy(b[at+k-1:], b[at:at+n])
	protowire.AppendVarint(b[at-1:at-1], uint64(n))
	return b
}

// appendGenerated appends a length prefix and a message of size n encoded
// by generated code (which writes backwards into a buffer of exactly its
// size).
func appendGenerated(b []byte, n int, marshal func([]byte) (int, error)) []byte {
	return appendSized(protowire.AppendVarint(b, uint64(n)), n, marshal)
}

// appendSized appends n bytes written by a generated marshal function.
func appendSized(b []byte, n int, marshal func([]byte) (int, error)) []byte {
	at := len(b)
	b = append(b, make([]byte, n)...)
	if _, err := marshal(b[at:]); err != nil {
		// Generated marshal functions fail only when given the wrong size.
		panic("event: encoding: " + err.Error())
	}
	return b
}

// sov is the size of a varint.
func sov(x uint64) int { return (bits.Len64(x|1) + 6) / 7 }
