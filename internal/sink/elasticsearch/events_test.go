package elasticsearch

import (
	"fmt"

	"github.com/tidegate/tidegate/event"
)

// Helpers that build events for the tests.

func origin(table string) *event.Origin {
	return &event.Origin{Source: "shop", Kind: "postgres", Database: "app", Schema: "public", Table: table}
}

// row builds a row from name, value pairs.
func row(kv ...any) *event.Row {
	r := &event.Row{}
	for i := 0; i < len(kv); i += 2 {
		r.Columns = append(r.Columns, &event.Column{Name: kv[i].(string), Value: val(kv[i+1])})
	}
	return r
}

func val(v any) *event.Value {
	switch x := v.(type) {
	case nil:
		return event.Null()
	case *event.Value:
		return x
	case int:
		return event.Int(int64(x))
	case int64:
		return event.Int(x)
	case uint64:
		return event.Uint(x)
	case string:
		return event.Text(x)
	case bool:
		return event.Bool(x)
	case float64:
		return event.Float(x)
	}
	panic(fmt.Sprintf("val: unsupported %T", v))
}

func keyOf(id any) []*event.Column {
	return []*event.Column{{Name: "id", Value: val(id)}}
}

// upsert is an insert/update/snapshot of table with primary key id.
func upsert(op event.Op, table string, version uint64, id any, kv ...any) *event.Event {
	return &event.Event{
		Op:      op,
		Origin:  origin(table),
		Version: version,
		Key:     keyOf(id),
		After:   row(append([]any{"id", id}, kv...)...),
	}
}

func ins(table string, version uint64, id any, kv ...any) *event.Event {
	return upsert(event.Op_OP_INSERT, table, version, id, kv...)
}

func upd(table string, version uint64, id any, kv ...any) *event.Event {
	return upsert(event.Op_OP_UPDATE, table, version, id, kv...)
}

func del(table string, version uint64, id any) *event.Event {
	return &event.Event{Op: event.Op_OP_DELETE, Origin: origin(table), Version: version, Key: keyOf(id)}
}

func truncateEvent(table string, version uint64) *event.Event {
	return &event.Event{Op: event.Op_OP_TRUNCATE, Origin: origin(table), Version: version}
}
