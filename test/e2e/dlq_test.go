package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/testkit"
)

// The dead-letter loop through the CLI: events the index rejects (a
// mapping conflict) are listed by `tidegate dlq list`; once the mapping is
// fixed, `tidegate dlq replay --all` makes the index converge to the table
// and empties the DLQ; a replayed event older than the document in the
// index does not overwrite it. The admin API runs with a token.
func TestDLQReplayAfterFixingTheMapping(t *testing.T) {
	for flavor, clusterURL := range clusters(t) {
		t.Run(flavor, func(t *testing.T) {
			e := newDLQEnv(t, clusterURL)
			ctx := context.Background()
			// Rows 5 and 6 do not fit the integer mapping of qty: their
			// snapshot events fail; so does the update of row 4.
			testkit.Exec(t, e.conn, `INSERT INTO gadgets (id, name, qty) VALUES
				(1, 'one', '1'), (2, 'two', '2'), (3, 'three', '3'), (4, 'four', '4'), (5, 'five', 'many'), (6, 'six', 'lots')`)
			p := e.start()
			e.waitMetric(p, convergeTimeout, 2, "tidegate_events_total", `stage="dlq:search"`)
			testkit.Exec(t, e.conn, `UPDATE gadgets SET qty = 'a few' WHERE id = 4`)
			e.waitMetric(p, convergeTimeout, 3, "tidegate_events_total", `stage="dlq:search"`)

			// The CLI lists them, with the reason.
			list := e.dlqList(p)
			if list.Total != 3 || len(list.DeadLetters) != 3 {
				t.Fatalf("dlq list: total %d, %d listed, want 3: %+v", list.Total, len(list.DeadLetters), list)
			}
			byKey := map[string]dlqEntry{}
			for _, d := range list.DeadLetters {
				if d.Table != "public.gadgets" || d.Sink != "search" || d.Pipeline != e.source ||
					!strings.Contains(d.Error, "failed to parse field [qty]") || len(d.Event) == 0 {
					t.Errorf("dead letter: %+v", d)
				}
				byKey[compact(d.Key)] = d
			}
			for _, k := range []string{`{"id":4}`, `{"id":5}`, `{"id":6}`} {
				if _, ok := byKey[k]; !ok {
					t.Fatalf("dlq list has no dead letter for key %s: %+v", k, list.DeadLetters)
				}
			}
			out, err := e.dlq("list")
			if err != nil || !strings.Contains(out, "public.gadgets") || !strings.Contains(out, "3 of 3 dead letters") {
				t.Errorf("dlq list (table): %v\n%s", err, out)
			}
			six := byKey[`{"id":6}`]
			out, err = e.dlq("show", fmt.Sprint(six.Sequence))
			if err != nil || !strings.Contains(out, `"qty": "lots"`) || !strings.Contains(out, "failed to parse field [qty]") {
				t.Errorf("dlq show %d: %v\n%s", six.Sequence, err, out)
			}
			// Without the token the API refuses.
			if out, err := e.dlqWith([]string{"TIDEGATE_ADMIN_TOKEN=", dlqTokenEnv + "="}, "list", "--admin", e.adminAddr); err == nil || !strings.Contains(out, "refused") {
				t.Errorf("dlq list without a token: %v\n%s", err, out)
			}

			// Fix the cause: the index accepts malformed quantities (kept
			// in _source, not indexed).
			e.searchDo(http.MethodPut, "/"+url.PathEscape(e.index("public.gadgets"))+"/_mapping",
				`{"properties":{"qty":{"type":"integer","ignore_malformed":true}}}`)
			// Row 6 changes again: the index holds a newer version than
			// its dead letter.
			testkit.Exec(t, e.conn, `UPDATE gadgets SET name = 'six, newer', qty = 'dozens' WHERE id = 6`)
			e.waitDoc(e.index("public.gadgets"), "6", `"six, newer"`)

			out, err = e.dlq("replay", "--all")
			if err != nil || !strings.Contains(out, "replayed 3 dead letters") {
				t.Fatalf("dlq replay --all: %v\n%s", err, out)
			}
			// A change made after the replay is applied after it (one
			// ordered stream): once it is in the index, so are the replays.
			testkit.Exec(t, e.conn, `INSERT INTO gadgets (id, name, qty) VALUES (7, 'seven', '7')`)
			e.waitGadgetsConverged()
			docs, err := e.search.AllDocs(ctx, e.index("public.gadgets"))
			if err != nil {
				t.Fatal(err)
			}
			if d := docs["6"]; !bytes.Contains(d.Source, []byte(`"six, newer"`)) || uint64(d.Version) <= six.Version {
				t.Errorf("document 6 after replaying its older dead letter (version %d): version %d, %s", six.Version, d.Version, d.Source)
			}
			if l := e.dlqList(p); l.Total != 0 || len(l.DeadLetters) != 0 {
				t.Errorf("the DLQ is not empty after the replay: %+v", l)
			}
			if n, err := e.metric("tidegate_events_total", `stage="dlq:search"`); err != nil || n != 3 {
				t.Errorf("dead-lettered events after the replay: %v (%v), want still 3", n, err)
			}
			p.stop()
		})
	}
}

// A replayed event that fails again returns to the DLQ: nothing silent.
func TestDLQReplayFailingAgainReturns(t *testing.T) {
	e := newDLQEnv(t, testkit.ElasticURL(t))
	testkit.Exec(t, e.conn, `INSERT INTO gadgets (id, name, qty) VALUES (1, 'one', '1'), (2, 'two', 'two')`)
	p := e.start()
	e.waitMetric(p, convergeTimeout, 1, "tidegate_events_total", `stage="dlq:search"`)
	first := e.dlqList(p)
	if len(first.DeadLetters) != 1 {
		t.Fatalf("dlq list: %+v, want one dead letter", first)
	}
	out, err := e.dlq("replay", "--all")
	if err != nil || !strings.Contains(out, "replayed 1 dead letters") {
		t.Fatalf("dlq replay --all: %v\n%s", err, out)
	}
	// The replay is written (and rejected) before a later change.
	testkit.Exec(t, e.conn, `INSERT INTO gadgets (id, name, qty) VALUES (3, 'three', '3')`)
	e.waitDoc(e.index("public.gadgets"), "3", `"three"`)
	e.waitMetric(p, convergeTimeout, 2, "tidegate_events_total", `stage="dlq:search"`)
	again := e.dlqList(p)
	if len(again.DeadLetters) != 1 {
		t.Fatalf("after replaying an event that fails again the DLQ holds %d dead letters, want 1 "+
			"(if 0: the DLQ stream's message-id de-duplication dropped the second failure; "+
			"the DLQ message id must differ per failure, e.g. include the failed message's stream sequence)", len(again.DeadLetters))
	}
	d := again.DeadLetters[0]
	if d.Sequence <= first.DeadLetters[0].Sequence || d.EventID != first.DeadLetters[0].EventID || !strings.Contains(d.Error, "[qty]") {
		t.Errorf("dead letter after failing again: %+v, first %+v", d, first.DeadLetters[0])
	}
	p.stop()
}

const dlqTokenEnv = "TIDEGATE_E2E_ADMIN_TOKEN"

// newDLQEnv is an env that also captures public.gadgets, whose index is
// created beforehand with qty as an integer while the column is text; the
// admin API requires a token (from the environment, through the config).
func newDLQEnv(t *testing.T, clusterURL string) *env {
	t.Helper()
	e := newEnv(t, clusterURL)
	testkit.Exec(t, e.conn, `CREATE TABLE gadgets (id bigint PRIMARY KEY, name text NOT NULL, qty text)`)
	e.tables = append(e.tables, "public.gadgets")
	e.searchDo(http.MethodPut, "/"+url.PathEscape(e.index("public.gadgets")),
		`{"settings":{"number_of_replicas":0},"mappings":{"properties":{"id":{"type":"long"},"qty":{"type":"integer"}}}}`)
	t.Setenv(dlqTokenEnv, "e2e-"+testkit.RandomSuffix())
	e.writeConfig()
	data, err := os.ReadFile(e.configPath)
	if err != nil {
		t.Fatal(err)
	}
	admin := fmt.Sprintf("admin: { listen: %q }", e.adminListen)
	withToken := strings.Replace(string(data), admin, fmt.Sprintf("admin: { listen: %q, token: \"${%s}\" }", e.adminListen, dlqTokenEnv), 1)
	if withToken == string(data) {
		t.Fatalf("the harness's config has no line %q to add the token to", admin)
	}
	if err := os.WriteFile(e.configPath, []byte(withToken), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// dlq runs `tidegate dlq ARGS -c CONFIG` (the address and token come from
// the config) and returns its combined output.
func (e *env) dlq(args ...string) (string, error) {
	return e.dlqWith(nil, args...)
}

// dlqWith runs `tidegate dlq ARGS -c CONFIG` against the running
// tidegate's admin address (the config's admin.listen has port 0), unless
// ARGS name one; the token comes from the config.
func (e *env) dlqWith(env []string, args ...string) (string, error) {
	e.t.Helper()
	if !slices.Contains(args, "--admin") && e.adminAddr != "" {
		args = append(args, "--admin", e.adminAddr)
	}
	return e.command(env, append([]string{"dlq"}, args...)...)
}

// command runs `tidegate ARGS -c CONFIG` with extra environment variables
// and returns its combined output.
func (e *env) command(env []string, args ...string) (string, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), convergeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append(args, "-c", e.configPath)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

type dlqEntry struct {
	Pipeline string          `json:"pipeline"`
	Sink     string          `json:"sink"`
	Sequence uint64          `json:"sequence"`
	EventID  string          `json:"event_id"`
	Table    string          `json:"table"`
	Version  uint64          `json:"version"`
	Key      json.RawMessage `json:"key"`
	Error    string          `json:"error"`
	Event    json.RawMessage `json:"event"`
}

type dlqListing struct {
	DeadLetters []dlqEntry `json:"dead_letters"`
	Total       uint64     `json:"total"`
	NextPage    string     `json:"next_page_token"`
}

// dlqList runs `tidegate dlq list --json` and decodes it.
func (e *env) dlqList(p *proc) dlqListing {
	e.t.Helper()
	out, err := e.dlq("list", "--json")
	if err != nil {
		if p.exited() {
			p.dumpLog()
		}
		e.t.Fatalf("tidegate dlq list --json: %v\n%s", err, out)
	}
	var l dlqListing
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		e.t.Fatalf("tidegate dlq list --json printed no JSON: %v\n%s", err, out)
	}
	return l
}

func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// searchDo sends one request to the search cluster and fails on an error.
func (e *env) searchDo(method, path, body string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.search.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		e.t.Fatalf("%s %s: %s: %s", method, path, resp.Status, data)
	}
}

// waitDoc waits until document id of index contains want.
func (e *env) waitDoc(index, id, want string) {
	e.t.Helper()
	deadline := time.Now().Add(convergeTimeout)
	for {
		doc, err := e.search.Get(context.Background(), index, id)
		if err == nil && bytes.Contains(doc, []byte(want)) {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("document %s of %s never contained %s (last %s, %v)", id, index, want, doc, err)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition
	}
}

// waitGadgetsConverged waits until public.gadgets equals its index.
func (e *env) waitGadgetsConverged() {
	e.t.Helper()
	d, err := testkit.WaitConverged(context.Background(), e.conn, "public.gadgets", []string{"id"}, e.search, e.index("public.gadgets"), convergeTimeout)
	if err != nil {
		e.t.Fatalf("comparing public.gadgets: %v", err)
	}
	if !d.Empty() {
		e.dumpMetrics()
		e.t.Fatalf("public.gadgets not converged after %s:\n%s", convergeTimeout, d)
	}
	e.t.Logf("verified: public.gadgets %d rows = %d documents", d.Rows, d.Docs)
}
