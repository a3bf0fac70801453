package event

import "testing"

// Expand leaves named rows alone, names positional ones, and gives a
// positional row no key when the batch's key positions are out of range
// (a malformed batch) instead of panicking.
func TestExpandPositional(t *testing.T) {
	named := &Event{Op: Op_OP_UPDATE, Key: []*Column{{Name: "k", Value: Int(1)}},
		After: &Row{Columns: []*Column{{Name: "k", Value: Int(1)}, {Name: "other", Value: Int(2)}}}}
	positional := &Event{Op: Op_OP_SNAPSHOT, After: &Row{Columns: []*Column{{Value: Int(3)}, {Value: Int(4)}}}}
	b := &Batch{Events: []*Event{named, positional}, Columns: []string{"k", "v"}, KeyColumns: []uint32{0}}
	b.Expand()
	if named.After.Columns[1].Name != "other" || len(named.Key) != 1 {
		t.Fatalf("a named row was changed: %v", named)
	}
	if positional.After.Columns[0].Name != "k" || positional.After.Columns[1].Name != "v" {
		t.Fatalf("positional row not named: %v", positional)
	}
	if len(positional.Key) != 1 || positional.Key[0] != positional.After.Columns[0] {
		t.Fatalf("positional key not taken from the row: %v", positional.Key)
	}
	if b.Columns != nil || b.KeyColumns != nil {
		t.Fatal("Expand left the template on the batch")
	}

	bad := &Event{Op: Op_OP_SNAPSHOT, After: &Row{Columns: []*Column{{Value: Int(3)}}}}
	(&Batch{Events: []*Event{bad}, Columns: []string{"k"}, KeyColumns: []uint32{5}}).Expand()
	if bad.Key != nil || bad.After.Columns[0].Name != "k" {
		t.Fatalf("malformed key positions: %v", bad)
	}
}

// In a batch of several transactions, the events of each one after the
// first carry their own commit fields: Expand keeps them and fills in the
// shared ones of the others.
func TestExpandKeepsOwnCommit(t *testing.T) {
	origin := &Origin{Schema: "public", Table: "t"}
	first := &Event{Op: Op_OP_UPDATE}
	later := &Event{Op: Op_OP_UPDATE, Version: 9, Position: "0/9", CommitTimeUs: 900, TxId: "9"}
	b := &Batch{Shared: &Event{Origin: origin, Version: 5, Position: "0/5", CommitTimeUs: 500, TxId: "5"}, Events: []*Event{first, later}}
	b.Expand()
	if first.Origin != origin || first.Version != 5 || first.Position != "0/5" || first.CommitTimeUs != 500 || first.TxId != "5" {
		t.Errorf("first transaction's event: %v", first)
	}
	if later.Origin != origin || later.Version != 9 || later.Position != "0/9" || later.CommitTimeUs != 900 || later.TxId != "9" {
		t.Errorf("later transaction's event: %v", later)
	}
}
