package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"golang.org/x/sync/errgroup"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/source/postgres/pgdecode"
	"github.com/tidegate/tidegate/internal/testkit"
)

// The latency floor of the machine at the moment of a run: a minimal
// change relay, with nothing but what any relay of PostgreSQL changes to
// Elasticsearch must do. It reads pgoutput over a replication connection,
// renders each row as tidegate does (pgdecode + event.AppendRowJSON, ids
// from event.DocumentID) and POSTs index actions to _bulk: at most two
// requests in flight (the sink's default concurrency), what arrives while
// both are busy joins the next one, and a request cut while none is in
// flight waits up to relayLinger (the default batch_linger) for more.
// (Without a backlog tidegate's sink writes one batch at a time; the relay
// uses both slots, as a relay with nothing else to weigh would.) It has no
// bus, no versions, no dead letters and keeps no position. It updates its
// own copy of the order items (relayTable, outside tidegate's publication)
// at the same rate, just before tidegate's run, so that both meet the
// machine in the same state.
const (
	relayTable       = "relay_items"
	relayPublication = "bench_relay"
	relayIndex       = "bench-relay"
	relaySlot        = "bench_relay"
	relayLinger      = 5 * time.Millisecond // config.DefaultBatchLinger
)

// prepareRelay creates relayTable, a copy of the order items the latency
// runs update (order ids up to maxOrder), and its publication.
func prepareRelay(ctx context.Context, conn *pgx.Conn, maxOrder int64) error {
	for _, q := range []string{
		"DROP PUBLICATION IF EXISTS " + relayPublication,
		"DROP TABLE IF EXISTS " + relayTable,
		"CREATE TABLE " + relayTable + " (LIKE order_items INCLUDING ALL)",
		fmt.Sprintf("INSERT INTO %s SELECT * FROM order_items WHERE order_id <= %d", relayTable, maxOrder),
		"ANALYZE " + relayTable,
		"CREATE PUBLICATION " + relayPublication + " FOR TABLE " + relayTable,
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("preparing the relay: %s: %w", q, err)
		}
	}
	return nil
}

// relayRun is what one relay run measured.
type relayRun struct {
	latencies  []time.Duration // commit → bulk acknowledgement, one per update
	sendDelays []time.Duration // commit → PostgreSQL's send time, one per transaction
	rtts       []time.Duration // the load generator's round trips
	took       time.Duration   // issuing the updates
	requests   int64
	esCPU      float64
}

// relay is a running minimal relay. It stays connected during tidegate's
// run too (receiving nothing: its publication has only relayTable), so
// that PostgreSQL decodes the WAL for two slots in both runs.
type relay struct {
	repl     *pgconn.PgConn
	stop     context.CancelFunc
	g        *errgroup.Group
	gctx     context.Context
	q        *relayQueue
	mu       sync.Mutex
	run      relayRun // of the measure in progress
	acked    int64
	want     int64
	allAcked chan struct{}
}

// startRelay creates the relay's index and temporary slot and starts
// receiving and writing.
func startRelay(ctx context.Context, o options, conn *pgx.Conn, dsn string) (*relay, error) {
	_ = o.search.DeleteIndex(ctx, relayIndex)
	if err := createIndex(ctx, o.search.URL, relayIndex); err != nil {
		return nil, err
	}
	// The column types, loaded before the clock starts.
	_, types, err := testkit.TableTypes(ctx, conn, relayTable)
	if err != nil {
		return nil, err
	}
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["replication"] = "database"
	repl, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("relay: replication connection: %w", err)
	}
	slot, err := pglogrepl.CreateReplicationSlot(ctx, repl, relaySlot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Temporary: true, Mode: pglogrepl.LogicalReplication})
	if err == nil {
		var start pglogrepl.LSN
		if start, err = pglogrepl.ParseLSN(slot.ConsistentPoint); err == nil {
			err = pglogrepl.StartReplication(ctx, repl, relaySlot, start, pglogrepl.StartReplicationOptions{
				Mode:       pglogrepl.LogicalReplication,
				PluginArgs: []string{"proto_version '1'", "publication_names '" + relayPublication + "'"},
			})
		}
	}
	if err != nil {
		repl.Close(context.Background())
		return nil, fmt.Errorf("relay: starting replication: %w", err)
	}
	r := &relay{repl: repl, q: &relayQueue{wake: make(chan struct{}, 1)}}
	rctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	r.g, r.gctx = errgroup.WithContext(rctx)
	r.g.Go(func() error { return relayReceive(r.gctx, repl, types, r.q, r.sent) })
	r.g.Go(func() error { return relayWrite(r.gctx, o.search.URL, r.q, r.ack) })
	return r, nil
}

func (r *relay) sent(d time.Duration) {
	r.mu.Lock()
	r.run.sendDelays = append(r.run.sendDelays, d)
	r.mu.Unlock()
}

func (r *relay) ack(commits []time.Time, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.run.requests++
	for _, c := range commits {
		r.run.latencies = append(r.run.latencies, at.Sub(c))
	}
	r.acked += int64(len(commits))
	if r.acked >= r.want && r.allAcked != nil {
		close(r.allAcked)
		r.allAcked = nil
	}
}

// measure runs total single-row updates of relayTable at rate and waits
// until the relay has indexed them all.
func (r *relay) measure(ctx context.Context, o options, dsn string, rate int, total int64) (relayRun, error) {
	done := make(chan struct{})
	r.mu.Lock()
	r.run, r.acked, r.want, r.allAcked = relayRun{}, 0, total, done
	r.mu.Unlock()
	esCPU := newESCPU()
	took, rtts, err := pacedUpdates(ctx, dsn, relayTable, rate, total)
	if err != nil {
		return relayRun{}, err
	}
	select {
	case <-done:
	case <-r.gctx.Done():
		return relayRun{}, r.close()
	case <-ctx.Done():
		return relayRun{}, ctx.Err()
	case <-time.After(o.waitTimeout):
		return relayRun{}, fmt.Errorf("relay: not all of %d updates acknowledged after %s", total, o.waitTimeout)
	}
	esCPU.sample()
	r.mu.Lock()
	defer r.mu.Unlock()
	run := r.run
	run.took, run.rtts, run.esCPU = took, rtts, esCPU.seconds()
	return run, nil
}

// close stops the relay (its slot goes with the connection) and returns
// what made it fail, if anything did.
func (r *relay) close() error {
	r.stop()
	err := r.g.Wait()
	r.repl.Close(context.Background())
	return err
}

// relayQueue is what the relay received and has not sent yet.
type relayQueue struct {
	mu      sync.Mutex
	lines   []byte      // NDJSON: an index action and its document per row
	commits []time.Time // per row
	since   time.Time   // when the oldest queued row arrived
	wake    chan struct{}
}

func (q *relayQueue) push(lines []byte, commits []time.Time) {
	q.mu.Lock()
	if len(q.commits) == 0 {
		q.since = time.Now()
	}
	q.lines = append(q.lines, lines...)
	q.commits = append(q.commits, commits...)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take removes up to bulkMaxActions rows (the queue splits only at row
// boundaries: each row is two lines).
func (q *relayQueue) take() (body []byte, commits []time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := min(len(q.commits), bulkMaxActions)
	if n == 0 {
		return nil, nil
	}
	cut := len(q.lines)
	if n < len(q.commits) {
		cut = 0
		for range 2 * n {
			cut += bytes.IndexByte(q.lines[cut:], '\n') + 1
		}
	}
	body, commits = slices.Clone(q.lines[:cut]), slices.Clone(q.commits[:n])
	q.lines, q.commits = append(q.lines[:0], q.lines[cut:]...), append(q.commits[:0], q.commits[n:]...)
	if len(q.commits) > 0 {
		q.since = time.Now()
	}
	return body, commits
}

// relayReceive decodes pgoutput and queues each transaction's rows at its
// commit.
func relayReceive(ctx context.Context, repl *pgconn.PgConn, types *pgdecode.Types, q *relayQueue, sent func(time.Duration)) error {
	type relation struct {
		names []string
		oids  []uint32
		key   []int
	}
	rels := map[uint32]*relation{}
	var (
		lines   []byte
		commits []time.Time
		commit  time.Time
		last    pglogrepl.LSN
		cols    []*event.Column
	)
	index, _ := json.Marshal(relayIndex)
	// Receives end by the connection's read deadline, as tidegate's do (a
	// cancellable context would cost a watch per message).
	conn := repl.Conn()
	stopWatch := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer stopWatch()
	nextStatus := time.Now()
	for {
		if ctx.Err() != nil {
			return nil
		}
		if time.Now().After(nextStatus) {
			if err := pglogrepl.SendStandbyStatusUpdate(ctx, repl, pglogrepl.StandbyStatusUpdate{WALWritePosition: last}); err != nil {
				return relayErr(ctx, "status update", err)
			}
			nextStatus = time.Now().Add(time.Second)
			_ = conn.SetReadDeadline(nextStatus)
		}
		raw, err := repl.ReceiveMessage(context.Background())
		if err != nil {
			if pgconn.Timeout(err) && ctx.Err() == nil {
				continue
			}
			return relayErr(ctx, "receiving", err)
		}
		cd, ok := raw.(*pgproto3.CopyData)
		if !ok {
			if e, isErr := raw.(*pgproto3.ErrorResponse); isErr {
				return fmt.Errorf("relay: %w", pgconn.ErrorResponseToPgError(e))
			}
			continue
		}
		if len(cd.Data) == 0 || cd.Data[0] != pglogrepl.XLogDataByteID {
			continue // keepalives: the status goes every second anyway
		}
		xld, err := pglogrepl.ParseXLogData(cd.Data[1:])
		if err != nil {
			return err
		}
		msg, err := pglogrepl.Parse(xld.WALData)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *pglogrepl.RelationMessage:
			r := &relation{}
			for i, c := range m.Columns {
				r.names = append(r.names, c.Name)
				r.oids = append(r.oids, c.DataType)
				if c.Flags&1 != 0 {
					r.key = append(r.key, i)
				}
			}
			rels[m.RelationID] = r
		case *pglogrepl.BeginMessage:
			commit = m.CommitTime
			lines, commits = lines[:0], commits[:0]
			sent(xld.ServerTime.Sub(commit))
		case *pglogrepl.UpdateMessage:
			r := rels[m.RelationID]
			if r == nil || m.NewTuple == nil {
				return fmt.Errorf("relay: update of unknown relation %d", m.RelationID)
			}
			cols = cols[:0]
			for i, c := range m.NewTuple.Columns {
				var text []byte
				if c.DataType == pglogrepl.TupleDataTypeText {
					text = c.Data
				}
				v, err := types.Decode(r.oids[i], text)
				if err != nil {
					return fmt.Errorf("relay: decoding %s: %w", r.names[i], err)
				}
				cols = append(cols, &event.Column{Name: r.names[i], Value: v})
			}
			key := make([]*event.Column, len(r.key))
			for i, k := range r.key {
				key[i] = cols[k]
			}
			lines = appendIndexAction(lines, index, event.DocumentID(key))
			lines = event.AppendRowJSON(lines, &event.Row{Columns: cols})
			lines = append(lines, '\n')
			commits = append(commits, commit)
		case *pglogrepl.CommitMessage:
			last = m.TransactionEndLSN
			if len(commits) > 0 {
				q.push(lines, commits)
			}
		}
	}
}

// relayWrite sends the queue's rows as bulk requests, bulkConcurrency at a
// time, and calls acked with the commit times of each acknowledged request.
func relayWrite(ctx context.Context, esURL string, q *relayQueue, acked func(commits []time.Time, at time.Time)) error {
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 2 * bulkConcurrency}}
	slots := make(chan struct{}, bulkConcurrency)
	g, gctx := errgroup.WithContext(ctx)
	defer func() { _ = g.Wait() }()
	for {
		if gctx.Err() != nil {
			return relayErr(ctx, "writing", g.Wait())
		}
		q.mu.Lock()
		queued, since := len(q.commits), q.since
		q.mu.Unlock()
		if queued == 0 {
			select {
			case <-gctx.Done():
			case <-q.wake:
			}
			continue
		}
		// Nothing in flight and not a full request: linger, as the sink.
		if wait := relayLinger - time.Since(since); len(slots) == 0 && queued < bulkMaxActions && wait > 0 {
			select {
			case <-gctx.Done():
			case <-time.After(wait):
			}
			continue
		}
		// Wait for a free slot: what arrives meanwhile joins the request.
		select {
		case <-gctx.Done():
			continue
		case slots <- struct{}{}:
		}
		body, commits := q.take()
		g.Go(func() error {
			defer func() { <-slots }()
			if err := postBulk(gctx, client, esURL, body); err != nil {
				return fmt.Errorf("relay: %w", err)
			}
			acked(commits, time.Now())
			return nil
		})
	}
}

// relayErr is nil when the relay was stopped, else err with what failed.
func relayErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil || err == nil {
		return nil
	}
	return fmt.Errorf("relay: %s: %w", what, err)
}

// bucketed counts durations into cumulative buckets with the given upper
// bounds (seconds), the shape quantiles reads.
func bucketed(ds []time.Duration, bounds []float64) map[float64]float64 {
	h := make(map[float64]float64, len(bounds))
	for _, le := range bounds {
		h[le] = 0
	}
	for _, d := range ds {
		s := d.Seconds()
		for _, le := range bounds {
			if s <= le {
				h[le]++
			}
		}
	}
	return h
}

// summary describes a relay run: exact quantiles (not bucketed), where the
// time went, and the CPU PostgreSQL (pgCPU seconds) and Elasticsearch used.
func (r relayRun) summary(pgCPU float64) string {
	lat, send, rtts := sorted(r.latencies), sorted(r.sendDelays), sorted(r.rtts)
	q := exactQuantileMs
	return fmt.Sprintf("%d updates at %.0f/s achieved; exact p50 %.1f ms, p99 %.1f ms, max %.1f ms; PostgreSQL's send delay p50 %.1f ms, p99 %.1f ms; "+
		"UPDATE round trip p99 %.1f ms; %d bulk requests (%.1f updates each); CPU used: PostgreSQL %.1f s, Elasticsearch %.1f s",
		len(lat), float64(len(r.rtts))/r.took.Seconds(), q(lat, 0.5), q(lat, 0.99), q(lat, 1), q(send, 0.5), q(send, 0.99),
		q(rtts, 0.99), r.requests, float64(len(lat))/float64(max(r.requests, 1)), pgCPU, r.esCPU)
}

// sendDelayP99 is the exact p99 of PostgreSQL's send delay (seconds).
func (r relayRun) sendDelayP99() float64 {
	return exactQuantileMs(sorted(r.sendDelays), 0.99) / 1e3
}

// sorted returns a sorted copy of ds.
func sorted(ds []time.Duration) []time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s
}

// exactQuantileMs is the p quantile of sorted durations in milliseconds
// (nearest rank; p 1 is the maximum), NaN when there are none.
func exactQuantileMs(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	return ms(sorted[min(len(sorted)-1, int(p*float64(len(sorted))))])
}

// bounds returns a histogram's upper bounds.
func bounds(h map[float64]float64) []float64 {
	out := make([]float64, 0, len(h))
	for le := range h {
		out = append(out, le)
	}
	return out
}
