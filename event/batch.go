package event

import "cmp"

// Expand restores what a batch's events left out so that every event
// stands alone: the shared fields (Batch.shared), the column names of rows
// encoded by position (Batch.columns) and keys taken from the after row
// (Batch.key_columns). Events share the Origin and SchemaRef messages and
// their key columns are those of their after row: treat them as read-only.
// A batch without these fields is left as it is.
func (b *Batch) Expand() {
	if sh := b.GetShared(); sh != nil {
		for _, ev := range b.Events {
			// An event's own field wins: a batch of several transactions
			// carries the commit fields of each one after the first.
			ev.Origin, ev.Schema = cmp.Or(ev.Origin, sh.Origin), cmp.Or(ev.Schema, sh.Schema)
			ev.Version, ev.Position = cmp.Or(ev.Version, sh.Version), cmp.Or(ev.Position, sh.Position)
			ev.CommitTimeUs, ev.TxId = cmp.Or(ev.CommitTimeUs, sh.CommitTimeUs), cmp.Or(ev.TxId, sh.TxId)
		}
		b.Shared = nil
	}
	if len(b.Columns) == 0 {
		return
	}
	var keys []*Column // one array for the batch's keys
	for _, ev := range b.Events {
		nameColumns(ev.GetBefore(), b.Columns)
		if nameColumns(ev.GetAfter(), b.Columns) && len(ev.Key) == 0 && len(b.KeyColumns) > 0 {
			if len(keys) < len(b.KeyColumns) {
				keys = make([]*Column, len(b.KeyColumns)*len(b.Events))
			}
			ev.Key = keyOf(ev.After.Columns, b.KeyColumns, keys[:len(b.KeyColumns):len(b.KeyColumns)])
			keys = keys[len(b.KeyColumns):]
		}
	}
	b.Columns, b.KeyColumns = nil, nil
}

// nameColumns gives a row encoded by position (columns without names) the
// batch's column names, and reports whether it did.
func nameColumns(r *Row, names []string) bool {
	if r == nil || len(r.Columns) != len(names) || len(names) == 0 || r.Columns[0].GetName() != "" {
		return false
	}
	for i, c := range r.Columns {
		if c == nil {
			c = &Column{}
			r.Columns[i] = c
		}
		c.Name = names[i]
	}
	return true
}

// keyOf picks the key columns of a row by position into key; nil when a
// position is out of range (a malformed batch: the event then has no key,
// which the sinks report).
func keyOf(cols []*Column, positions []uint32, key []*Column) []*Column {
	for i, p := range positions {
		if int(p) >= len(cols) {
			return nil
		}
		key[i] = cols[p]
	}
	return key
}
