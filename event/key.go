package event

import "strconv"

// DocumentID returns the sink document id for a primary key:
//   - a single-column key renders as its plain text (42, "abc", a UUID);
//   - a composite key renders as a JSON array of its values ([7,"x"]), which
//     cannot be ambiguous whatever the values contain.
func DocumentID(key []*Column) string {
	return string(AppendDocumentID(make([]byte, 0, 32), key))
}

// AppendDocumentID appends DocumentID(key) to b.
func AppendDocumentID(b []byte, key []*Column) []byte {
	if len(key) == 1 {
		return appendScalarText(b, key[0].Value)
	}
	b = append(b, '[')
	for i, c := range key {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendValueJSON(b, c.Value)
	}
	return append(b, ']')
}

// appendScalarText renders a value as text without JSON quoting.
func appendScalarText(b []byte, v *Value) []byte {
	switch k := v.GetKind().(type) {
	case *Value_Text:
		return append(b, k.Text...)
	case *Value_Int:
		return strconv.AppendInt(b, k.Int, 10)
	case *Value_Uint:
		return strconv.AppendUint(b, k.Uint, 10)
	case *Value_Decimal:
		return append(b, k.Decimal...)
	case *Value_Uuid:
		return AppendUUID(b, k.Uuid)
	case *Value_Timestamp:
		return AppendTimestamp(b, k.Timestamp)
	case *Value_Date:
		return AppendDate(b, k.Date)
	case *Value_Time:
		return AppendTime(b, k.Time)
	}
	// Everything else (bytes, bool, floats, json...) as its JSON text, unquoted
	// where it is a JSON string.
	j := AppendValueJSON(nil, v)
	if len(j) >= 2 && j[0] == '"' && j[len(j)-1] == '"' {
		j = j[1 : len(j)-1]
	}
	return append(b, j...)
}

// ID returns the event's id: Id, or for a snapshot row, which leaves it
// empty on the bus, "<source>:snap:<position>:<schema>.<table>:<document
// id>" (unique: a snapshot reads each row once at one position).
func (e *Event) ID() string {
	if e.GetId() != "" || e.GetOp() != Op_OP_SNAPSHOT {
		return e.GetId()
	}
	o := e.GetOrigin()
	b := make([]byte, 0, 64)
	b = append(b, o.GetSource()...)
	b = append(b, ":snap:"...)
	b = append(b, e.GetPosition()...)
	b = append(b, ':')
	b = append(b, o.GetSchema()...)
	b = append(b, '.')
	b = append(b, o.GetTable()...)
	b = append(b, ':')
	return string(AppendDocumentID(b, e.GetKey()))
}
