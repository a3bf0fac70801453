package event

import "strconv"

// AppendEventJSON appends the whole envelope as deterministic JSON, for
// sinks that carry events rather than documents (webhooks, Kafka, NATS).
// Field order is fixed; empty fields are omitted.
func AppendEventJSON(b []byte, e *Event) []byte {
	b = append(b, `{"id":`...)
	b = AppendString(b, e.ID())
	b = append(b, `,"op":`...)
	b = AppendString(b, OpName(e.GetOp()))
	if o := e.GetOrigin(); o != nil {
		b = append(b, `,"origin":{"source":`...)
		b = AppendString(b, o.GetSource())
		b = append(b, `,"kind":`...)
		b = AppendString(b, o.GetKind())
		b = append(b, `,"database":`...)
		b = AppendString(b, o.GetDatabase())
		b = append(b, `,"schema":`...)
		b = AppendString(b, o.GetSchema())
		b = append(b, `,"table":`...)
		b = AppendString(b, o.GetTable())
		b = append(b, '}')
	}
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, e.GetVersion(), 10)
	if e.GetPosition() != "" {
		b = append(b, `,"position":`...)
		b = AppendString(b, e.GetPosition())
	}
	if !e.CommitTime().IsZero() {
		b = append(b, `,"commit_time":"`...)
		b = AppendTimestamp(b, &Timestamp{UnixMicros: e.GetCommitTimeUs()})
		b = append(b, '"')
	}
	if e.GetTxId() != "" {
		b = append(b, `,"tx_id":`...)
		b = AppendString(b, e.GetTxId())
	}
	if len(e.GetKey()) > 0 {
		b = append(b, `,"key":`...)
		b = AppendRowJSON(b, &Row{Columns: e.GetKey()})
	}
	if e.GetBefore() != nil {
		b = append(b, `,"before":`...)
		b = AppendRowJSON(b, e.GetBefore())
	}
	if e.GetAfter() != nil {
		b = append(b, `,"after":`...)
		b = AppendRowJSON(b, e.GetAfter())
	}
	if len(e.GetUnchanged()) > 0 {
		b = append(b, `,"unchanged":[`...)
		for i, u := range e.GetUnchanged() {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendString(b, u)
		}
		b = append(b, ']')
	}
	if s := e.GetSchema(); s != nil {
		b = append(b, `,"schema":{"id":`...)
		b = AppendString(b, s.GetId())
		b = append(b, `,"version":`...)
		b = strconv.AppendUint(b, uint64(s.GetVersion()), 10)
		b = append(b, `,"fingerprint":`...)
		b = AppendString(b, s.GetFingerprint())
		b = append(b, '}')
	}
	if len(e.GetMeta()) > 0 {
		b = append(b, `,"meta":{`...)
		for i, k := range sortedKeys(e.GetMeta()) {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendString(b, k)
			b = append(b, ':')
			b = AppendString(b, e.GetMeta()[k])
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// OpName returns the lower-case name of an op: insert, update, delete,
// snapshot, truncate.
func OpName(op Op) string {
	switch op {
	case Op_OP_INSERT:
		return "insert"
	case Op_OP_UPDATE:
		return "update"
	case Op_OP_DELETE:
		return "delete"
	case Op_OP_SNAPSHOT:
		return "snapshot"
	case Op_OP_TRUNCATE:
		return "truncate"
	case Op_OP_SWEEP:
		return "sweep"
	}
	return "unspecified"
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	// insertion sort: meta maps are tiny
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
