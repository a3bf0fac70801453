package postgres

import (
	"testing"

	"github.com/jackc/pglogrepl"
)

func TestWithUnchangedFromOld(t *testing.T) {
	col := func(kind byte, data string) *pglogrepl.TupleDataColumn {
		c := &pglogrepl.TupleDataColumn{DataType: kind}
		if kind == pglogrepl.TupleDataTypeText {
			c.Data = []byte(data)
			c.Length = uint32(len(data))
		}
		return c
	}
	tuple := func(cols ...*pglogrepl.TupleDataColumn) *pglogrepl.TupleData {
		return &pglogrepl.TupleData{ColumnNum: uint16(len(cols)), Columns: cols}
	}
	const (
		txt = pglogrepl.TupleDataTypeText
		u   = pglogrepl.TupleDataTypeToast
		n   = pglogrepl.TupleDataTypeNull
	)
	newTup := tuple(col(txt, "1"), col(txt, "new title"), col(u, ""), col(u, ""), col(n, ""))
	oldTup := tuple(col(txt, "1"), col(txt, "old title"), col(txt, "large"), col(u, ""), col(txt, "x"))

	got := withUnchangedFromOld(newTup, oldTup)
	want := []struct {
		kind byte
		data string
	}{
		{txt, "1"},
		{txt, "new title"}, // the new value wins
		{txt, "large"},     // taken from the old tuple
		{u, ""},            // 'u' in both: stays unchanged
		{n, ""},            // a new NULL stays NULL
	}
	for i, w := range want {
		c := got.Columns[i]
		if c.DataType != w.kind || string(c.Data) != w.data {
			t.Errorf("column %d = %q %q, want %q %q", i, c.DataType, c.Data, w.kind, w.data)
		}
	}
	if newTup.Columns[2].DataType != u {
		t.Error("the new tuple was modified; it belongs to pglogrepl")
	}

	// Nothing to fill: the tuple itself comes back.
	complete := tuple(col(txt, "1"), col(txt, "a"))
	if got := withUnchangedFromOld(complete, tuple(col(txt, "1"), col(txt, "b"))); got != complete {
		t.Error("a tuple without unchanged columns was copied")
	}
	// Mismatched tuples are left to tupleEvent to report.
	if got := withUnchangedFromOld(newTup, tuple(col(txt, "1"))); got != newTup {
		t.Error("a tuple was merged with an old tuple of another width")
	}
}
