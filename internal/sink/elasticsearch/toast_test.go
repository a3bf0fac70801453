package elasticsearch

import (
	"strings"
	"testing"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/sink"
)

// valuesFromBatch takes each unchanged column from the latest earlier event
// of the document that carries it.
func TestValuesFromBatch(t *testing.T) {
	body := func(v string) []any { return []any{"body", v} }
	tests := []struct {
		name    string
		events  []*event.Event // about document 1; the current one is picked as usual
		reject  int            // reject the current event this many times first
		want    string         // the body found; "" when it must come from the index
		wantErr string
	}{
		{"earlier full image", []*event.Event{
			ins("t", 10, 1, body("A")...), partial("t", 11, 1, []string{"body"}, "n", 1),
		}, 0, "A", ""},
		{"nothing earlier", []*event.Event{
			partial("t", 11, 1, []string{"body"}, "n", 1),
		}, 0, "", ""},
		{"latest by version, then arrival; stale replay ignored", []*event.Event{
			ins("t", 10, 1, body("A")...), upd("t", 20, 1, body("B")...), upd("t", 15, 1, body("C")...),
			partial("t", 20, 1, []string{"body"}, "n", 1),
		}, 0, "B", ""},
		{"skips events that lack the column too", []*event.Event{
			ins("t", 10, 1, body("A")...), partial("t", 11, 1, []string{"body"}, "n", 1), partial("t", 12, 1, []string{"body"}, "n", 2),
		}, 0, "A", ""},
		{"delete before the full image", []*event.Event{
			del("t", 9, 1), ins("t", 10, 1, body("A")...), partial("t", 11, 1, []string{"body"}, "n", 1),
		}, 0, "A", ""},
		{"delete after the full image", []*event.Event{
			ins("t", 10, 1, body("A")...), del("t", 11, 1), partial("t", 12, 1, []string{"body"}, "n", 1),
		}, 0, "", "deleted earlier in the batch"},
		{"a later event rejected by the cluster is not a source", []*event.Event{
			partial("t", 10, 1, []string{"body"}, "n", 1), upd("t", 20, 1, body("B")...),
		}, 1, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSink()
			p := s.newPlan(tt.events, nil, make([]error, len(tt.events)))
			if len(p.docs) != 1 {
				t.Fatalf("%d documents, want 1", len(p.docs))
			}
			for range tt.reject {
				p.reject(0, &sink.PermanentError{Reason: "mapper_parsing_exception"})
			}
			vals, missing, err := p.valuesFromBatch(0, p.docs[0].cur)
			if tt.wantErr != "" {
				if !sink.IsPermanent(err) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want a permanent error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if missing != 1 || vals[0] != nil {
					t.Fatalf("found %v (missing %d), want the value to come from the index", vals[0], missing)
				}
				return
			}
			if missing != 0 || vals[0].GetText() != tt.want {
				t.Fatalf("found %v (missing %d), want %q", vals[0], missing, tt.want)
			}
		})
	}
}

// An operation whose unchanged columns were not filled in is never encoded:
// the document would lose them.
func TestAppendOpRefusesUnfilled(t *testing.T) {
	o := op{kind: opIndex, index: "i", id: "1", version: 1, row: row("id", 1), unchanged: []string{"body"}}
	b, err := appendOp([]byte("prefix"), &o)
	if !sink.IsPermanent(err) || string(b) != "prefix" {
		t.Fatalf("appendOp = %q, %v; want the buffer unchanged and a permanent error", b, err)
	}
}

func TestClassifyGetError(t *testing.T) {
	for typ, want := range map[string]itemOutcome{
		"index_not_found_exception":           itemIndexMissing,
		"no_shard_available_action_exception": itemRetry,
		"index_closed_exception":              itemRetry,
		"security_exception":                  itemRetry,
		"invalid_index_name_exception":        itemPermanent,
		"illegal_argument_exception":          itemPermanent,
	} {
		if got := classifyGetError(&esError{Type: typ}); got != want {
			t.Errorf("%s: %d, want %d", typ, got, want)
		}
	}
}
