package event

// EncodedRow is an after row left in its encoding by
// (*Decoder).DecodeKeepingAfter: a sink that renders rows (JSON) reads it
// with AppendEncodedRowJSON, without building Columns and Values it would
// only read once. (Decoding and then clearing those was about a third of
// a snapshot's CPU time in the Elasticsearch sink.)
type EncodedRow struct {
	// Data is the encoding of the Row message; nil when there is none
	// (the event has no after row, or it was decoded in full).
	Data []byte
	// Names are the batch's column names (Batch.columns) for a row
	// encoded by position.
	Names []string
}

// Decode returns the row as (*Batch).Expand leaves a decoded one: its
// columns named from Names when it is encoded by position. It returns nil
// for an empty EncodedRow, and an error when Data is not a Row's encoding.
func (e EncodedRow) Decode() (*Row, error) {
	if e.Data == nil {
		return nil, nil
	}
	r := &Row{}
	if err := r.UnmarshalVT(e.Data); err != nil {
		return nil, err
	}
	nameColumns(r, e.Names)
	return r, nil
}

// DecodeKeepingAfter decodes data as Decode does, except that the after
// rows of the events the fast path reads stay encoded: after[i] is that of
// b.Events[i], whose After is then nil. An event decoded in full (an
// unusual shape) has its After and an empty after[i]. Keys that a batch
// takes from the after rows (Batch.key_columns) are decoded into the
// events' Key, so that Expand has nothing to take from the rows.
//
// The after rows are not checked: a damaged one fails when it is read
// (EncodedRow.Decode, AppendEncodedRowJSON). after is valid until the next
// call; its Data share data's memory, as the batch's strings do.
func (x *Decoder) DecodeKeepingAfter(data []byte) (b *Batch, after []EncodedRow, err error) {
	d := &x.d
	d.keepAfter, d.encoded = true, d.encoded[:0]
	defer func() { d.keepAfter, d.after = false, nil }()
	b = d.batches.next()
	if d.batch(data, b) && d.keysFromEncoded(b) {
		return b, d.encoded, nil
	}
	b = &Batch{}
	if err := b.UnmarshalVT(data); err != nil {
		return nil, nil, err
	}
	d.encoded = append(d.encoded[:0], make([]EncodedRow, len(b.Events))...)
	return b, d.encoded, nil
}

// keysFromEncoded gives each event of b with an encoded after row the
// names of b's columns and, when the batch takes keys from the rows, the
// key Expand would take (keyOf): the columns at b.KeyColumns of a row
// encoded by position. false: a row is malformed (the batch then goes to
// the generated decoder).
func (d *decoder) keysFromEncoded(b *Batch) bool {
	for i, ev := range b.Events {
		enc := &d.encoded[i]
		if enc.Data == nil {
			continue
		}
		enc.Names = b.Columns
		if len(ev.Key) > 0 || len(b.KeyColumns) == 0 {
			continue
		}
		// Split first: a row with anything besides columns goes to the
		// generated decoder, which names (and keys) it by its columns
		// alone, as byPosition's count then does.
		cols, ok := d.columnsOf(enc.Data)
		if !ok {
			return false
		}
		if !byPosition(enc.Data, b.Columns) {
			continue
		}
		start := -1
		for _, p := range b.KeyColumns {
			if int(p) >= len(cols) {
				start = -1 // as keyOf: a malformed batch's event has no key
				break
			}
			c := d.cols.next()
			if !d.column(cols[p], c) {
				return false
			}
			c.Name = b.Columns[p]
			d.appendPtr(&start, c)
		}
		if start >= 0 {
			ev.Key = cut(&d.ptrs, start)
		}
	}
	return true
}

// columnsOf splits an encoded row into its columns' encodings (in
// d.colBytes).
func (d *decoder) columnsOf(row []byte) ([][]byte, bool) {
	cols := d.colBytes[:0]
	ok := eachElement(row, func(_ int, col []byte) bool {
		cols = append(cols, col)
		return true
	})
	d.colBytes = cols
	return cols, ok
}
