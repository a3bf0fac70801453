package testkit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// HTTPFaultProxy is an HTTP reverse proxy in the test process, in front of
// a real Elasticsearch/OpenSearch cluster, that injects faults into bulk
// requests (POST/PUT .../_bulk). Every other request passes through
// untouched.
//
// For a bulk request it can:
//   - answer single items with 429 (es_rejected_execution_exception), 500,
//     or a synthetic 400 mapper_parsing_exception, without forwarding them:
//     the request body is rewritten without those items and their results
//     are merged into the cluster's real answer at their positions, so the
//     response items keep request order;
//   - reset the connection (TCP RST) before forwarding (nothing applied) or
//     after forwarding (applied, but the client never hears of it);
//   - delay the response.
//
// Decisions are deterministic for a seed: each request draws from a random
// source seeded with the seed, a hash of the body and how many times that
// body was seen before (so a retried request gets a fresh draw, and the same
// sequence of requests gets the same faults). Injected faults are counted
// (Counts) only once the client received them; the items answered with a
// synthetic 400 are listed by Rejected.
//
// A proxy owns its serving goroutines; Close (also run at test cleanup)
// stops them and waits.
type HTTPFaultProxy struct {
	target  *url.URL
	ln      net.Listener
	srv     *http.Server
	pass    *httputil.ReverseProxy
	client  *http.Client
	closing chan struct{}
	stop    context.CancelFunc
	ctx     context.Context
	wg      sync.WaitGroup // Serve and in-flight handlers
	once    sync.Once

	mu       sync.Mutex
	closed   bool // no new handler may start
	faults   HTTPFaults
	seen     map[uint64]uint64 // body hash -> times seen
	nBulk    uint64            // bulk requests seen
	counts   FaultCounts
	rejected map[BulkItemRef]struct{}
}

// HTTPFaults says which faults a HTTPFaultProxy injects into bulk requests.
// Probabilities are in [0, 1]; the zero value injects nothing.
type HTTPFaults struct {
	// Seed makes the decisions reproducible.
	Seed uint64
	// Item429 and Item500 are the probabilities that one bulk item is
	// answered with 429 es_rejected_execution_exception or 500 instead of
	// being forwarded (a client must retry it).
	Item429, Item500 float64
	// Reject selects the items (by index and _id, as in the action line)
	// that are always answered with a synthetic 400 mapper_parsing_exception
	// (a client must dead-letter them). Nil rejects nothing.
	Reject func(index, id string) bool
	// ResetBefore, ResetAfter and Delay are per-request probabilities
	// (mutually exclusive, drawn once per request): reset the connection
	// without forwarding, reset it after the cluster answered, or answer
	// after a random delay of up to MaxDelay (default 1s; keep it below the
	// client's request timeout, or the client gives up first).
	ResetBefore, ResetAfter, Delay float64
	MaxDelay                       time.Duration
	// First forces the request-level fault of the first bulk requests, in
	// arrival order (FaultNone for none), whatever the probabilities say:
	// it guarantees that each kind happens at least once.
	First []RequestFault
}

// RequestFault is a fault applied to a whole bulk request.
type RequestFault int

// Request-level faults.
const (
	FaultNone RequestFault = iota
	FaultResetBefore
	FaultResetAfter
	FaultDelay
)

func (f RequestFault) String() string {
	switch f {
	case FaultResetBefore:
		return "reset-before"
	case FaultResetAfter:
		return "reset-after"
	case FaultDelay:
		return "delay"
	}
	return "none"
}

// FaultCounts counts what a HTTPFaultProxy did to bulk requests.
type FaultCounts struct {
	Bulk      int // bulk requests received
	Forwarded int // bulk requests forwarded to the cluster (possibly rewritten)
	// Items answered by the proxy (counted when the client got the answer).
	Item429, Item500, Item400 int
	// Request faults.
	ResetBefore, ResetAfter, Delay int
	// UpstreamErrors are requests the cluster did not answer (answered 502
	// by the proxy); ProxyErrors are answers the proxy could not merge
	// (answered 502): a non-zero value means the proxy, not the client, is
	// broken.
	UpstreamErrors, ProxyErrors int
}

func (c FaultCounts) String() string {
	return fmt.Sprintf("bulk=%d forwarded=%d item429=%d item500=%d item400=%d reset_before=%d reset_after=%d delay=%d upstream_errors=%d proxy_errors=%d",
		c.Bulk, c.Forwarded, c.Item429, c.Item500, c.Item400, c.ResetBefore, c.ResetAfter, c.Delay, c.UpstreamErrors, c.ProxyErrors)
}

// BulkItemRef identifies one bulk operation: the document and the
// external version of the action line (0 when it has none).
type BulkItemRef struct {
	Index, ID string
	Version   int64
}

// InjectedMarker is part of the reason of every item error the proxy
// makes up, so that a dead letter can be traced back to the proxy.
const InjectedMarker = "injected by testkit.HTTPFaultProxy"

// NewHTTPFaultProxy listens on 127.0.0.1 and proxies to targetURL (e.g.
// http://127.0.0.1:19200) with faults f. It is closed at test cleanup.
func NewHTTPFaultProxy(t testing.TB, targetURL string, f HTTPFaults) *HTTPFaultProxy {
	t.Helper()
	target, err := url.Parse(targetURL)
	if err != nil || target.Host == "" {
		t.Fatalf("http fault proxy: target %q is not a URL like http://127.0.0.1:9200 (%v)", targetURL, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("http fault proxy: listening on 127.0.0.1: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	tr := http.DefaultTransport.(*http.Transport).Clone()
	p := &HTTPFaultProxy{
		target:   target,
		ln:       ln,
		client:   &http.Client{Transport: tr},
		closing:  make(chan struct{}),
		ctx:      ctx,
		stop:     stop,
		faults:   f,
		seen:     map[uint64]uint64{},
		rejected: map[BulkItemRef]struct{}{},
	}
	quiet := log.New(io.Discard, "", 0)
	p.pass = &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Host = target.Host },
		Transport: tr,
		ErrorLog:  quiet,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			writeProxyError(w, fmt.Sprintf("forwarding to %s: %v", target.Host, err))
		},
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serveHTTP), ReadHeaderTimeout: 30 * time.Second, ErrorLog: quiet}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_ = p.srv.Serve(ln) // returns when Close closes the server
	}()
	t.Cleanup(p.Close)
	return p
}

// URL is the proxy's base URL, to give the client instead of the cluster's.
func (p *HTTPFaultProxy) URL() string { return "http://" + p.ln.Addr().String() }

// SetFaults replaces the faults (e.g. the zero value to stop injecting).
// The count of bulk requests seen, used by First, is kept.
func (p *HTTPFaultProxy) SetFaults(f HTTPFaults) {
	p.mu.Lock()
	p.faults = f
	p.mu.Unlock()
}

// Counts returns what the proxy did so far.
func (p *HTTPFaultProxy) Counts() FaultCounts {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts
}

// Rejected returns the distinct items answered with a synthetic 400 that
// the client received, sorted.
func (p *HTTPFaultProxy) Rejected() []BulkItemRef {
	p.mu.Lock()
	out := make([]BulkItemRef, 0, len(p.rejected))
	for r := range p.rejected {
		out = append(out, r)
	}
	p.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Index != b.Index {
			return a.Index < b.Index
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Version < b.Version
	})
	return out
}

// Close stops the proxy: it closes the listener and every connection,
// cancels delays and forwarded requests, and waits for its goroutines.
// Idempotent.
func (p *HTTPFaultProxy) Close() {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		close(p.closing)
		p.stop()
		_ = p.srv.Close()
		p.wg.Wait()
		p.client.CloseIdleConnections()
	})
}

func (p *HTTPFaultProxy) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		reset(w)
		return
	}
	p.wg.Add(1) // before Close's Wait: closed is checked under the same lock
	p.mu.Unlock()
	defer p.wg.Done()
	if (r.Method == http.MethodPost || r.Method == http.MethodPut) && (r.URL.Path == "/_bulk" || strings.HasSuffix(r.URL.Path, "/_bulk")) &&
		r.Header.Get("Content-Encoding") == "" {
		p.bulk(w, r)
		return
	}
	p.pass.ServeHTTP(w, r)
}

// bulkOp is one operation of a bulk body: its lines and what it is about.
type bulkOp struct {
	action string // index, create, update, delete
	ref    BulkItemRef
	lines  []byte // action line and, except for delete, the source line
}

// plan is what the proxy does with one bulk request.
type plan struct {
	req     RequestFault
	delay   time.Duration
	answers []json.RawMessage // per operation: the synthetic result, nil = forward
	kinds   []int             // per operation: 0 forward, 429, 500, 400
}

func (p *HTTPFaultProxy) bulk(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		reset(w)
		return
	}
	ops, perr := parseBulkBody(body)
	pl := p.decide(body, ops, perr == nil)

	if pl.req == FaultResetBefore {
		p.count(func(c *FaultCounts) { c.ResetBefore++ })
		reset(w)
		return
	}
	if pl.req == FaultDelay {
		t := time.NewTimer(pl.delay)
		select {
		case <-t.C:
		case <-p.closing:
			t.Stop()
			reset(w)
			return
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}

	// Forward what the proxy does not answer itself.
	var fwd []byte
	nfwd := 0
	if perr != nil {
		fwd = body // not a body the proxy understands: forward as is
	} else {
		for i, op := range ops {
			if pl.answers[i] == nil {
				fwd = append(fwd, op.lines...)
				nfwd++
			}
		}
	}
	status, header, resBody := http.StatusOK, http.Header{"Content-Type": {"application/json"}}, []byte(nil)
	if perr != nil || nfwd > 0 {
		status, header, resBody, err = p.forward(r, fwd)
		if err != nil {
			if p.ctx.Err() != nil {
				reset(w)
				return
			}
			p.count(func(c *FaultCounts) { c.UpstreamErrors++ })
			writeProxyError(w, fmt.Sprintf("forwarding the bulk request to %s: %v", p.target.Host, err))
			return
		}
		p.count(func(c *FaultCounts) { c.Forwarded++ })
	}
	if pl.req == FaultResetAfter {
		p.count(func(c *FaultCounts) { c.ResetAfter++ })
		reset(w)
		return
	}
	synthetic := perr == nil && nfwd < len(ops)
	if synthetic && status >= 200 && status < 300 {
		resBody, err = mergeBulk(resBody, ops, pl.answers, nfwd)
		if err != nil {
			p.count(func(c *FaultCounts) { c.ProxyErrors++ })
			writeProxyError(w, "merging synthetic items into the cluster's bulk answer: "+err.Error())
			return
		}
		header.Del("Content-Encoding")
	} else if synthetic {
		// The cluster refused the request as a whole: pass its answer on,
		// the synthetic items were not delivered.
		synthetic = false
	}
	for k, vs := range header {
		if k == "Content-Length" || k == "Transfer-Encoding" || k == "Connection" {
			continue
		}
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(resBody)))
	w.WriteHeader(status)
	_, werr := w.Write(resBody)
	if werr == nil {
		werr = http.NewResponseController(w).Flush()
	}
	if werr != nil {
		return // the client is gone: nothing was delivered
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pl.req == FaultDelay {
		p.counts.Delay++
	}
	if !synthetic {
		return
	}
	for i, k := range pl.kinds {
		switch k {
		case 429:
			p.counts.Item429++
		case 500:
			p.counts.Item500++
		case 400:
			p.counts.Item400++
			p.rejected[ops[i].ref] = struct{}{}
		}
	}
}

// decide draws the faults of one request.
func (p *HTTPFaultProxy) decide(body []byte, ops []bulkOp, parsed bool) plan {
	h := fnv.New64a()
	_, _ = h.Write(body)
	sum := h.Sum64()
	p.mu.Lock()
	f := p.faults
	n := p.seen[sum]
	p.seen[sum] = n + 1
	k := p.nBulk
	p.nBulk++
	p.counts.Bulk++
	p.mu.Unlock()

	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], n)
	_, _ = h.Write(b[:])
	rnd := rand.New(rand.NewPCG(f.Seed, h.Sum64()))

	pl := plan{}
	x := rnd.Float64()
	switch {
	case k < uint64(len(f.First)):
		pl.req = f.First[k]
	case x < f.ResetBefore:
		pl.req = FaultResetBefore
	case x < f.ResetBefore+f.ResetAfter:
		pl.req = FaultResetAfter
	case x < f.ResetBefore+f.ResetAfter+f.Delay:
		pl.req = FaultDelay
	}
	maxDelay := f.MaxDelay
	if maxDelay <= 0 {
		maxDelay = time.Second
	}
	if d := time.Duration(rnd.Int64N(int64(maxDelay))) + 1; pl.req == FaultDelay {
		pl.delay = d
	}
	if !parsed {
		return pl
	}
	pl.answers = make([]json.RawMessage, len(ops))
	pl.kinds = make([]int, len(ops))
	for i, op := range ops {
		y := rnd.Float64()
		switch {
		case f.Reject != nil && f.Reject(op.ref.Index, op.ref.ID):
			pl.kinds[i] = 400
			pl.answers[i] = itemAnswer(op, 400, "mapper_parsing_exception",
				"failed to parse field [injected] of type [long] in document with id '"+op.ref.ID+"' ("+InjectedMarker+")",
				&esErr{Type: "illegal_argument_exception", Reason: "For input string: \"injected\""})
		case y < f.Item429:
			pl.kinds[i] = 429
			pl.answers[i] = itemAnswer(op, 429, "es_rejected_execution_exception",
				"rejected execution of primary operation ("+"429 "+InjectedMarker+")", nil)
		case y < f.Item429+f.Item500:
			pl.kinds[i] = 500
			pl.answers[i] = itemAnswer(op, 500, "exception", "internal error (500 "+InjectedMarker+")", nil)
		}
	}
	return pl
}

func (p *HTTPFaultProxy) count(fn func(*FaultCounts)) {
	p.mu.Lock()
	fn(&p.counts)
	p.mu.Unlock()
}

// forward sends body to the cluster with r's method, path, query and
// headers, and reads the whole answer.
func (p *HTTPFaultProxy) forward(r *http.Request, body []byte) (int, http.Header, []byte, error) {
	u := *p.target
	u.Path = strings.TrimSuffix(p.target.Path, "/") + r.URL.Path
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(p.ctx, r.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	for k, vs := range r.Header {
		switch k {
		case "Content-Length", "Accept-Encoding", "Connection":
			continue // recomputed; the transport decompresses answers itself
		}
		out.Header[k] = vs
	}
	res, err := p.client.Do(out)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return 0, nil, nil, err
	}
	return res.StatusCode, res.Header, data, nil
}

// parseBulkBody splits an NDJSON bulk body into operations.
func parseBulkBody(body []byte) ([]bulkOp, error) {
	var ops []bulkOp
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var action map[string]struct {
			Index   string `json:"_index"`
			ID      string `json:"_id"`
			Version int64  `json:"version"`
		}
		if err := json.Unmarshal(line, &action); err != nil || len(action) != 1 {
			return nil, fmt.Errorf("bulk action line %q is not an action", truncate(line, 200))
		}
		var op bulkOp
		for name, meta := range action {
			op.action = name
			op.ref = BulkItemRef{Index: meta.Index, ID: meta.ID, Version: meta.Version}
		}
		op.lines = append(append(op.lines, line...), '\n')
		if op.action != "delete" {
			if !sc.Scan() {
				return nil, fmt.Errorf("bulk %s action without a source line", op.action)
			}
			op.lines = append(append(op.lines, sc.Bytes()...), '\n')
		}
		ops = append(ops, op)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return ops, nil
}

type esErr struct {
	Type     string  `json:"type"`
	Reason   string  `json:"reason"`
	CausedBy *esErr  `json:"caused_by,omitempty"`
	Index    *string `json:"index,omitempty"`
}

// itemAnswer renders one bulk response item the way Elasticsearch does.
func itemAnswer(op bulkOp, status int, typ, reason string, cause *esErr) json.RawMessage {
	item := map[string]any{op.action: map[string]any{
		"_index": op.ref.Index,
		"_id":    op.ref.ID,
		"status": status,
		"error":  &esErr{Type: typ, Reason: reason, CausedBy: cause},
	}}
	b, _ := json.Marshal(item)
	return b
}

// mergeBulk merges the synthetic answers into the cluster's answer to the
// forwarded operations (nfwd of them), in request order.
func mergeBulk(real []byte, ops []bulkOp, answers []json.RawMessage, nfwd int) ([]byte, error) {
	var res struct {
		Errors bool              `json:"errors"`
		Items  []json.RawMessage `json:"items"`
	}
	if nfwd > 0 {
		if err := json.Unmarshal(real, &res); err != nil {
			return nil, fmt.Errorf("decoding %q: %w", truncate(real, 200), err)
		}
		if len(res.Items) == 0 && !res.Errors {
			// A filter_path without items: every forwarded item succeeded.
			for i, op := range ops {
				if answers[i] == nil {
					res.Items = append(res.Items, json.RawMessage(`{"`+op.action+`":{"status":200}}`))
				}
			}
		}
		if len(res.Items) != nfwd {
			return nil, fmt.Errorf("the cluster answered %d items for %d forwarded operations", len(res.Items), nfwd)
		}
	}
	var out bytes.Buffer
	out.WriteString(`{"errors":true,"items":[`)
	j := 0
	for i, a := range answers {
		if i > 0 {
			out.WriteByte(',')
		}
		if a != nil {
			out.Write(a)
			continue
		}
		out.Write(res.Items[j])
		j++
	}
	out.WriteString("]}")
	return out.Bytes(), nil
}

// reset closes the client's connection with a TCP RST, without an answer.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // closes the connection
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func writeProxyError(w http.ResponseWriter, reason string) {
	b, _ := json.Marshal(map[string]any{"error": &esErr{Type: "proxy_error", Reason: reason + " (testkit.HTTPFaultProxy)"}, "status": 502})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadGateway)
	_, _ = w.Write(b)
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
