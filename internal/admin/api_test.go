package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/admin/adminpb"
	"github.com/tidegate/tidegate/internal/admin/adminpb/adminpbconnect"
	"github.com/tidegate/tidegate/internal/bus"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// The NATS server and client keep a few process-wide goroutines.
		goleak.IgnoreTopFunction("github.com/nats-io/nats-server/v2/server.(*Server).logRejectedTLSConns"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats-server/v2/server.(*Server).startGoRoutine.func1"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

const testToken = "s3cret-token"

// world is a real embedded bus with pipelines "p" (sinks a, b) and "q"
// (sink a), and an admin server on it.
type world struct {
	t    *testing.T
	b    *bus.Bus
	srv  *Server
	http *http.Client
	h2c  *http.Client
}

func newWorld(t *testing.T, token string) *world {
	t.Helper()
	ctx := context.Background()
	b, err := bus.Open(ctx, bus.Config{URL: "embedded", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	pipes := []Pipeline{{Name: "q", Sinks: []string{"a"}}, {Name: "p", Sinks: []string{"a", "b"}}}
	for _, p := range pipes {
		if err := b.EnsurePipeline(ctx, p.Name, bus.StreamConfig{MaxBytes: 64 << 20, DuplicateWindow: time.Minute}); err != nil {
			t.Fatal(err)
		}
		for _, s := range p.Sinks {
			if _, err := b.EnsureConsumer(ctx, p.Name, s, bus.ConsumerConfig{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	srv, err := Start(Options{
		Addr: "127.0.0.1:0", Token: token, Registry: prometheus.NewRegistry(), Health: func() error { return nil },
		Logger: slog.New(slog.DiscardHandler), DeadLetters: b, Pipelines: pipes,
	})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, b: b, srv: srv, http: &http.Client{}}
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	w.h2c = &http.Client{Transport: tr}
	t.Cleanup(func() {
		w.http.CloseIdleConnections()
		w.h2c.CloseIdleConnections()
		if err := srv.Close(); err != nil {
			t.Errorf("closing the admin server: %v", err)
		}
	})
	return w
}

func (w *world) url() string { return "http://" + w.srv.Addr() }

// client is a Connect-protocol client (HTTP/1.1), with the token if set.
func (w *world) client(token string, opts ...connect.ClientOption) adminpbconnect.AdminServiceClient {
	if token != "" {
		opts = append(opts, connect.WithInterceptors(bearer(token)))
	}
	return adminpbconnect.NewAdminServiceClient(w.http, w.url(), opts...)
}

func bearer(token string) connect.UnaryInterceptorFunc {
	return func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	}
}

// dead stores a dead letter of pipeline/sink for key id at version v.
func (w *world) dead(pipeline, sink string, id int, v uint64) *event.Event {
	w.t.Helper()
	ev := &event.Event{
		Id: fmt.Sprintf("src:%d:%d", v, id), Op: event.Op_OP_INSERT, Version: v,
		Origin: &event.Origin{Source: "src", Kind: "postgres", Schema: "public", Table: "items"},
		Key:    []*event.Column{{Name: "id", Value: &event.Value{Kind: &event.Value_Int{Int: int64(id)}}}},
		After: &event.Row{Columns: []*event.Column{
			{Name: "id", Value: &event.Value{Kind: &event.Value_Int{Int: int64(id)}}},
			{Name: "qty", Value: &event.Value{Kind: &event.Value_Text{Text: "many"}}},
		}},
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		w.t.Fatal(err)
	}
	err = w.b.PublishDLQ(context.Background(), bus.DeadLetter{
		Pipeline: pipeline, Sink: sink, EventID: ev.GetId(), Subject: bus.Subject(pipeline, "public", "items"),
		Error: "document_parsing_exception: failed to parse field [qty] of type [integer]", Attempts: 1, Data: data,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	return ev
}

func wantCode(t *testing.T, what string, err error, code connect.Code) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Errorf("%s: %v (code %v), want code %v", what, err, connect.CodeOf(err), code)
	}
}

// With a token configured, every API call (Connect, gRPC, plain HTTP/JSON)
// and the profiles need it; /metrics and /healthz stay open.
func TestAPIRequiresToken(t *testing.T) {
	w := newWorld(t, testToken)
	ctx := context.Background()
	w.dead("p", "a", 1, 1)
	// A fresh request each time: interceptors set headers on the request.
	list := func() *connect.Request[adminpb.ListDeadLettersRequest] {
		return connect.NewRequest(&adminpb.ListDeadLettersRequest{})
	}

	_, err := w.client("").ListDeadLetters(ctx, list())
	wantCode(t, "connect call without a token", err, connect.CodeUnauthenticated)
	_, err = w.client("wrong-token").ListDeadLetters(ctx, list())
	wantCode(t, "connect call with a wrong token", err, connect.CodeUnauthenticated)
	_, err = adminpbconnect.NewAdminServiceClient(w.h2c, w.url(), connect.WithGRPC()).ListDeadLetters(ctx, list())
	wantCode(t, "gRPC call without a token", err, connect.CodeUnauthenticated)
	if err != nil && !strings.Contains(err.Error(), "TIDEGATE_ADMIN_TOKEN") {
		t.Errorf("the 401 does not say how to pass the token: %v", err)
	}

	status := func(method, path, token, body string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, w.url()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := w.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	const listPath = "/tidegate.v1.AdminService/ListDeadLetters"
	for _, c := range []struct {
		method, path, token string
		want                int
	}{
		{http.MethodPost, listPath, "", http.StatusUnauthorized},
		{http.MethodPost, listPath, "s3cret-tokeN", http.StatusUnauthorized},
		{http.MethodPost, listPath, testToken, http.StatusOK},
		{http.MethodGet, "/debug/pprof/", "", http.StatusUnauthorized},
		{http.MethodGet, "/debug/pprof/", testToken, http.StatusOK},
		{http.MethodGet, "/metrics", "", http.StatusOK},
		{http.MethodGet, "/healthz", "", http.StatusOK},
	} {
		if got := status(c.method, c.path, c.token, "{}"); got != c.want {
			t.Errorf("%s %s with token %q: HTTP %d, want %d", c.method, c.path, c.token, got, c.want)
		}
	}

	// With the token: Connect and gRPC both answer.
	resp, err := w.client(testToken).ListDeadLetters(ctx, list())
	if err != nil || len(resp.Msg.GetDeadLetters()) != 1 {
		t.Fatalf("connect call with the token: %v, %v", resp, err)
	}
	grpc := adminpbconnect.NewAdminServiceClient(w.h2c, w.url(), connect.WithGRPC(), connect.WithInterceptors(bearer(testToken)))
	resp, err = grpc.ListDeadLetters(ctx, list())
	if err != nil || len(resp.Msg.GetDeadLetters()) != 1 {
		t.Fatalf("gRPC call with the token: %v, %v", resp, err)
	}
}

// Without a token the server starts only on a loopback address.
func TestAPIWithoutTokenOnlyOnLoopback(t *testing.T) {
	for _, c := range []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:7070", "", true},
		{"[::1]:7070", "", true},
		{"localhost:7070", "", true},
		{":7070", "", false},
		{"0.0.0.0:7070", "", false},
		{"10.1.2.3:7070", "", false},
		{"0.0.0.0:7070", "tok", true},
	} {
		err := checkExposure(c.addr, c.token)
		if (err == nil) != c.ok {
			t.Errorf("checkExposure(%q, token set: %v) = %v, want ok=%v", c.addr, c.token != "", err, c.ok)
		}
		if err != nil && (!errors.Is(err, ErrOpenAPI) || !strings.Contains(err.Error(), "admin.token")) {
			t.Errorf("checkExposure(%q): %v does not say to set admin.token", c.addr, err)
		}
	}
	// Start refuses before listening.
	if _, err := Start(Options{Addr: "0.0.0.0:0", Registry: prometheus.NewRegistry(), Health: func() error { return nil }}); !errors.Is(err, ErrOpenAPI) {
		t.Errorf("Start on 0.0.0.0 without a token: %v, want ErrOpenAPI", err)
	}
	// On loopback, no token is needed.
	w := newWorld(t, "")
	if _, err := w.client("").ListDeadLetters(context.Background(), connect.NewRequest(&adminpb.ListDeadLettersRequest{})); err != nil {
		t.Errorf("call on loopback without a token: %v", err)
	}
}

// List pages through every pipeline in order with a stable token, filters
// by pipeline and sink, counts the total, and shows events as JSON; get,
// replay and discard by sequence and by filter.
func TestAPIDeadLetters(t *testing.T) {
	w := newWorld(t, testToken)
	ctx := context.Background()
	c := w.client(testToken)
	for i := range 4 {
		w.dead("p", "a", i, uint64(10+i))
	}
	w.dead("p", "b", 9, 19)
	w.dead("q", "a", 7, 70)
	w.dead("q", "a", 8, 80)
	// Sink b of q was removed from the configuration (its consumer is
	// still in the bus): its dead letter can be discarded, not replayed.
	if _, err := w.b.EnsureConsumer(ctx, "q", "b", bus.ConsumerConfig{}); err != nil {
		t.Fatal(err)
	}
	w.dead("q", "b", 5, 50)

	// Pages of 3 over everything: p (5) then q (2).
	var got []string
	token := ""
	pages := 0
	for {
		resp, err := c.ListDeadLetters(ctx, connect.NewRequest(&adminpb.ListDeadLettersRequest{PageSize: 3, PageToken: token}))
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if resp.Msg.GetTotal() != 8 {
			t.Errorf("total = %d, want 8", resp.Msg.GetTotal())
		}
		for _, d := range resp.Msg.GetDeadLetters() {
			got = append(got, fmt.Sprintf("%s/%s/%d", d.GetPipeline(), d.GetSink(), d.GetVersion()))
			if d.GetEventJson() != "" {
				t.Errorf("list without with_events carries event JSON")
			}
		}
		token = resp.Msg.GetNextPageToken()
		if token == "" {
			break
		}
		if pages > 5 {
			t.Fatalf("pagination does not end: token %q", token)
		}
	}
	want := "[p/a/10 p/a/11 p/a/12 p/a/13 p/b/19 q/a/70 q/a/80 q/b/50]"
	if fmt.Sprint(got) != want || pages != 3 {
		t.Errorf("pages: %v in %d pages, want %s in 3", got, pages, want)
	}

	// Filters.
	resp, err := c.ListDeadLetters(ctx, connect.NewRequest(&adminpb.ListDeadLettersRequest{
		Filter: &adminpb.DeadLetterFilter{Pipeline: "p", Sink: "a"}, WithEvents: true}))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.Msg.GetDeadLetters()); n != 4 || resp.Msg.GetTotal() != 4 || resp.Msg.GetNextPageToken() != "" {
		t.Fatalf("p/a: %d dead letters, total %d, token %q; want 4, 4, none", n, resp.Msg.GetTotal(), resp.Msg.GetNextPageToken())
	}
	first := resp.Msg.GetDeadLetters()[0]
	if first.GetTable() != "public.items" || first.GetOp() != "insert" || first.GetKeyJson() != `{"id":0}` ||
		!strings.Contains(first.GetError(), "failed to parse field [qty]") || first.GetAttempts() != 1 ||
		first.GetFailedAt() == nil || first.GetOriginalSubject() != bus.Subject("p", "public", "items") ||
		!strings.Contains(first.GetEventJson(), `"after":{"id":0,"qty":"many"}`) || first.GetEventId() != "src:10:0" {
		t.Errorf("dead letter as listed: %v", first)
	}
	_, err = c.ListDeadLetters(ctx, connect.NewRequest(&adminpb.ListDeadLettersRequest{Filter: &adminpb.DeadLetterFilter{Pipeline: "nope"}}))
	wantCode(t, "list of an unknown pipeline", err, connect.CodeNotFound)
	_, err = c.ListDeadLetters(ctx, connect.NewRequest(&adminpb.ListDeadLettersRequest{PageToken: "garbage"}))
	wantCode(t, "list with a bad page token", err, connect.CodeInvalidArgument)

	// Get: the pipeline is required (two are configured).
	_, err = c.GetDeadLetter(ctx, connect.NewRequest(&adminpb.GetDeadLetterRequest{Sequence: first.GetSequence()}))
	wantCode(t, "get without pipeline", err, connect.CodeInvalidArgument)
	g, err := c.GetDeadLetter(ctx, connect.NewRequest(&adminpb.GetDeadLetterRequest{Pipeline: "p", Sequence: first.GetSequence()}))
	if err != nil || g.Msg.GetDeadLetter().GetEventJson() == "" || g.Msg.GetDeadLetter().GetEventId() != first.GetEventId() {
		t.Fatalf("get: %v, %v", g, err)
	}
	_, err = c.GetDeadLetter(ctx, connect.NewRequest(&adminpb.GetDeadLetterRequest{Pipeline: "p", Sequence: 999}))
	wantCode(t, "get of a missing sequence", err, connect.CodeNotFound)

	// Replay two of p/a by sequence, one of them with the wrong sink.
	seqs := []uint64{resp.Msg.GetDeadLetters()[0].GetSequence(), resp.Msg.GetDeadLetters()[1].GetSequence()}
	r, err := c.ReplayDeadLetters(ctx, connect.NewRequest(&adminpb.ReplayDeadLettersRequest{Selection: &adminpb.DeadLetterSelection{
		Filter: &adminpb.DeadLetterFilter{Pipeline: "p"}, Sequences: seqs}}))
	if err != nil || r.Msg.GetReplayed() != 2 || r.Msg.GetFailedCount() != 0 {
		t.Fatalf("replay by sequence: %v, %v", r, err)
	}
	r, err = c.ReplayDeadLetters(ctx, connect.NewRequest(&adminpb.ReplayDeadLettersRequest{Selection: &adminpb.DeadLetterSelection{
		Filter: &adminpb.DeadLetterFilter{Pipeline: "p"}, Sequences: seqs}}))
	if err != nil || r.Msg.GetReplayed() != 0 || r.Msg.GetFailedCount() != 2 || !strings.Contains(r.Msg.GetFailed()[0].GetError(), "already replayed or discarded") {
		t.Errorf("replaying them again: %v, %v (want 2 failures: not found)", r, err)
	}
	_, err = c.ReplayDeadLetters(ctx, connect.NewRequest(&adminpb.ReplayDeadLettersRequest{Selection: &adminpb.DeadLetterSelection{
		Filter: &adminpb.DeadLetterFilter{Pipeline: "p"}, Sequences: seqs, All: true}}))
	wantCode(t, "replay with sequences and all", err, connect.CodeInvalidArgument)
	_, err = c.ReplayDeadLetters(ctx, connect.NewRequest(&adminpb.ReplayDeadLettersRequest{}))
	wantCode(t, "replay of nothing", err, connect.CodeInvalidArgument)

	r, err = c.ReplayDeadLetters(ctx, connect.NewRequest(&adminpb.ReplayDeadLettersRequest{Selection: &adminpb.DeadLetterSelection{
		Filter: &adminpb.DeadLetterFilter{Pipeline: "q", Sink: "b"}, All: true}}))
	if err != nil || r.Msg.GetReplayed() != 0 || r.Msg.GetFailedCount() != 1 || !strings.Contains(r.Msg.GetFailed()[0].GetError(), "not a sink of pipeline q") {
		t.Errorf("replay for a sink removed from the configuration: %v, %v (want refused)", r, err)
	}

	// Replay all of sink a (p and q), then discard the rest (p/b, q/b).
	r, err = c.ReplayDeadLetters(ctx, connect.NewRequest(&adminpb.ReplayDeadLettersRequest{Selection: &adminpb.DeadLetterSelection{
		Filter: &adminpb.DeadLetterFilter{Sink: "a"}, All: true}}))
	if err != nil || r.Msg.GetReplayed() != 4 || r.Msg.GetFailedCount() != 0 {
		t.Fatalf("replay all of sink a: %v, %v (want 4 replayed)", r, err)
	}
	d, err := c.DiscardDeadLetters(ctx, connect.NewRequest(&adminpb.DiscardDeadLettersRequest{Selection: &adminpb.DeadLetterSelection{All: true}}))
	if err != nil || d.Msg.GetDiscarded() != 2 {
		t.Fatalf("discard all: %v, %v (want 2 discarded)", d, err)
	}
	resp, err = c.ListDeadLetters(ctx, connect.NewRequest(&adminpb.ListDeadLettersRequest{}))
	if err != nil || len(resp.Msg.GetDeadLetters()) != 0 || resp.Msg.GetTotal() != 0 {
		t.Errorf("after replay and discard: %v, %v (want empty)", resp, err)
	}
	// The replays are on the pipeline streams: 4 of p/a, 2 of q/a.
	for p, want := range map[string]uint64{"p": 4, "q": 2} {
		s, err := w.b.JetStream().Stream(ctx, bus.StreamName(p))
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs != want {
			t.Errorf("stream of %s holds %d replayed messages, want %d", p, info.State.Msgs, want)
		}
	}
}
