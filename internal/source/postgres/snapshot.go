package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/source/postgres/pgdecode"
)

// snapshotState is the persistent progress of a snapshot.
type snapshotState struct {
	// Version is the LSN every snapshot row carries: the slot position
	// streaming resumes from once the snapshot is complete.
	Version  uint64 `json:"version"`
	Complete bool   `json:"complete"`
	// Sweep: once every row is read, sinks delete the documents older than
	// Version (rows deleted while changes could not be streamed).
	Sweep  bool             `json:"sweep,omitempty"`
	Tables []*tableSnapshot `json:"tables"`
}

// tableSnapshot is the chunk plan and progress of one table.
type tableSnapshot struct {
	Table string `json:"table"`
	// Bounds are the inclusive upper keys (as text) of chunks 0..n-2; the
	// last chunk is open-ended. A table that fits in one chunk has none.
	Bounds [][]string `json:"bounds"`
	Done   []bool     `json:"done"`
	Rows   int64      `json:"rows"`
}

// chunkRef is the position Mark'ed after a chunk's rows.
type chunkRef struct {
	table, chunk int
	rows         int64
}

// snapshotRun is one running snapshot.
type snapshotRun struct {
	st *sourceState // saved whole by saveState
	// snap is the snapshot being read: st.Snapshot, or st.Added for
	// tables added to the configuration later.
	snap    *snapshotState
	mu      sync.Mutex
	changed chan struct{}
	rows    atomic.Int64
}

func (r *snapshotRun) chunkDurable(c chunkRef) {
	r.mu.Lock()
	ts := r.snap.Tables[c.table]
	if !ts.Done[c.chunk] {
		ts.Done[c.chunk] = true
		ts.Rows += c.rows
	}
	r.mu.Unlock()
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// save writes the progress to the state store.
func (s *Source) saveState(ctx context.Context, run *snapshotRun) error {
	run.mu.Lock()
	defer run.mu.Unlock()
	return s.opts.State.Put(ctx, s.stateKey(), run.st)
}

// runSnapshot reads every table not yet done into the emitter. With
// exported == "" it takes a new snapshot (a resumed or repeated snapshot);
// otherwise it reads through the slot's exported snapshot.
func (s *Source) runSnapshot(ctx context.Context, conn *pgx.Conn, st *sourceState, exported string) error {
	s.listSnapshotTables(st.Snapshot)
	return s.readSnapshot(ctx, conn, st, st.Snapshot, exported)
}

// readSnapshot reads the tables of snap (part of st) not yet done, through
// the exported snapshot, or a new one when exported is "".
func (s *Source) readSnapshot(ctx context.Context, conn *pgx.Conn, st *sourceState, snap *snapshotState, exported string) error {
	if exported == "" {
		if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
			return fmt.Errorf("starting the snapshot transaction: %w", err)
		}
		defer conn.Exec(context.Background(), "COMMIT") //nolint:errcheck // read-only
		if err := conn.QueryRow(ctx, "SELECT pg_export_snapshot()").Scan(&exported); err != nil {
			return fmt.Errorf("exporting a snapshot: %w", err)
		}
	}
	// The readers, plus one connection that plans each table's chunks just
	// before its turn (so reading starts at once, whatever the table sizes).
	workers := make([]*pgx.Conn, s.cfg.SnapshotWorkers+1)
	defer func() {
		for _, w := range workers {
			if w != nil {
				w.Close(context.Background())
			}
		}
	}()
	for i := range workers {
		w, err := s.connect(ctx)
		if err != nil {
			return err
		}
		workers[i] = w
		if _, err := w.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
			return fmt.Errorf("starting a snapshot reader: %w", err)
		}
		if _, err := w.Exec(ctx, "SET TRANSACTION SNAPSHOT "+quoteLiteral(exported)); err != nil {
			return fmt.Errorf("joining snapshot %s: %w", exported, err)
		}
	}

	// (Not reslicing workers: the deferred close must see the planner too,
	// or its open transaction keeps locks that block DDL on the tables.)
	planner, readers := workers[0], workers[1:]
	// The snapshot's rows carry the catalog shape's registry version.
	for _, ts := range snap.Tables {
		if err := s.registerSnapshotSchema(ctx, planner, s.byName[ts.Table], pglogrepl.LSN(snap.Version)); err != nil {
			return err
		}
	}
	run := &snapshotRun{st: st, snap: snap, changed: make(chan struct{}, 1)}
	s.snap.Store(run)
	defer s.snap.Store(nil)
	if err := s.saveState(ctx, run); err != nil {
		return err
	}

	var estimated, already int64
	type job struct{ table, chunk int }
	for _, ts := range snap.Tables {
		estimated += max(s.byName[ts.Table].EstimatedRows, 0)
		already += ts.Rows
	}
	s.log.Info("snapshot starting", "tables", len(snap.Tables),
		"estimated_rows", estimated, "version_lsn", pglogrepl.LSN(snap.Version), "workers", len(readers))
	run.rows.Store(already)
	started := time.Now()

	g, gctx := errgroup.WithContext(ctx)
	// The planner runs ahead of the readers (planning a big table is a
	// pass over its key index: the readers would wait for it).
	planned := make(chan int, len(snap.Tables))
	g.Go(func() error {
		defer close(planned)
		for ti, ts := range snap.Tables {
			if ts.Done == nil {
				if err := s.planTable(gctx, planner, run, ts); err != nil {
					return err
				}
			}
			planned <- ti
		}
		return nil
	})
	queue := make(chan job)
	g.Go(func() error {
		defer close(queue)
		for ti := range planned {
			run.mu.Lock() // readers mark chunks done meanwhile
			done := slices.Clone(snap.Tables[ti].Done)
			run.mu.Unlock()
			for ci, d := range done {
				if d {
					continue
				}
				select {
				case queue <- job{ti, ci}:
				case <-gctx.Done():
					return gctx.Err()
				}
			}
		}
		return nil
	})
	for _, w := range readers {
		em := s.lane()
		g.Go(func() error {
			for j := range queue {
				if err := s.readChunk(gctx, w, em, snap, j.table, j.chunk, run); err != nil {
					return err
				}
			}
			return nil
		})
	}
	// Progress and state saving until the readers finish.
	readersDone := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(1)
	go func() {
		defer bg.Done()
		s.snapshotProgress(ctx, run, estimated, already, started, readersDone)
	}()
	err := g.Wait()
	if err == nil {
		err = s.emitSweeps(ctx, snap)
	}
	if err == nil {
		err = s.opts.Emitter.Flush(ctx)
	}
	close(readersDone)
	bg.Wait()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			_ = s.saveState(context.Background(), run)
		}
		return fmt.Errorf("snapshot: %w", err)
	}
	run.mu.Lock()
	for _, ts := range snap.Tables {
		for ci, d := range ts.Done {
			if !d {
				run.mu.Unlock()
				return fmt.Errorf("snapshot: chunk %d of %s was read but never confirmed durable", ci, ts.Table)
			}
		}
	}
	snap.Complete = true
	run.mu.Unlock()
	if err := s.saveState(ctx, run); err != nil {
		return err
	}
	elapsed := time.Since(started)
	rows := run.rows.Load() - already
	s.log.Info("snapshot complete", "rows", rows, "duration", elapsed.Round(time.Millisecond),
		"rows_per_second", int64(float64(rows)/max(elapsed.Seconds(), 1e-3)))
	if s.opts.Progress != nil {
		s.opts.Progress(Progress{RowsDone: run.rows.Load(), RowsEstimated: estimated, Done: true})
	}
	s.opts.Metrics.SnapshotProgress.WithLabelValues(s.opts.Pipeline).Set(1)
	return nil
}

// snapshotProgress saves progress as chunks become durable and reports it.
func (s *Source) snapshotProgress(ctx context.Context, run *snapshotRun, estimated, already int64, started time.Time, done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastLog := time.Now()
	for {
		select {
		case <-done:
			return
		case <-ctx.Done():
			return
		case <-run.changed:
			if err := s.saveState(ctx, run); err != nil && ctx.Err() == nil {
				s.log.Warn("saving snapshot progress failed (will retry at the next chunk)", "error", err)
			}
		case <-tick.C:
			rows := run.rows.Load()
			total := max(estimated, rows)
			if total > 0 {
				s.opts.Metrics.SnapshotProgress.WithLabelValues(s.opts.Pipeline).Set(float64(rows) / float64(total))
			}
			if s.opts.Progress != nil {
				s.opts.Progress(Progress{RowsDone: rows, RowsEstimated: total})
			}
			if time.Since(lastLog) >= 10*time.Second {
				lastLog = time.Now()
				el := time.Since(started).Seconds()
				rate := float64(rows-already) / max(el, 1e-3)
				eta := "unknown"
				if rate > 0 && total > rows {
					eta = (time.Duration(float64(total-rows)/rate) * time.Second).String()
				}
				s.log.Info("snapshot progress", "rows", rows, "estimated_total", total, "rows_per_second", int64(rate), "eta", eta)
			}
		}
	}
}

// listSnapshotTables aligns the snapshot's table list with the configured
// tables, keeping the plans and progress of tables already known.
func (s *Source) listSnapshotTables(st *snapshotState) {
	known := map[string]*tableSnapshot{}
	for _, ts := range st.Tables {
		known[ts.Table] = ts
	}
	tables := make([]*tableSnapshot, 0, len(s.tables))
	for _, t := range s.tables {
		if ts, ok := known[t.QualifiedName()]; ok {
			tables = append(tables, ts)
			continue
		}
		tables = append(tables, &tableSnapshot{Table: t.QualifiedName()})
	}
	st.Tables = tables
}

// planTable splits a table into key ranges and records the plan durably
// before any of its chunks is read.
func (s *Source) planTable(ctx context.Context, conn *pgx.Conn, run *snapshotRun, ts *tableSnapshot) error {
	bounds, err := s.chunkBounds(ctx, conn, s.byName[ts.Table])
	if err != nil {
		return err
	}
	run.mu.Lock()
	ts.Bounds = bounds
	ts.Done = make([]bool, len(bounds)+1)
	run.mu.Unlock()
	return s.saveState(ctx, run)
}

// chunkBounds returns every SnapshotChunkRows-th key in key order. With a
// btree index on the key, each bound is one short query: an index-only scan
// that skips SnapshotChunkRows keys past the previous bound (OFFSET).
// Together they are one pass over the index; a window function
// (row_number) over the whole table cost PostgreSQL as much CPU as reading
// the table. Without such an index (a configured key of a REPLICA IDENTITY
// FULL table) each of those queries would sort the table, so the window
// function's single sort is used instead.
func (s *Source) chunkBounds(ctx context.Context, conn *pgx.Conn, t *Table) ([][]string, error) {
	indexed, err := keyIndexed(ctx, conn, t)
	if err != nil {
		return nil, fmt.Errorf("planning snapshot chunks of %s: %w", t.QualifiedName(), err)
	}
	keys := t.keyList()
	if !indexed {
		return collectBounds(ctx, conn, t, "SELECT "+keys+" FROM (SELECT "+keys+", row_number() OVER (ORDER BY "+keys+") AS tidegate_rn FROM "+
			t.quotedName()+") s WHERE tidegate_rn % "+strconv.Itoa(s.cfg.SnapshotChunkRows)+" = 0 ORDER BY "+keys, nil, nil)
	}
	tail := " ORDER BY " + keys + " OFFSET " + strconv.Itoa(s.cfg.SnapshotChunkRows-1) + " LIMIT 1"
	first := "SELECT " + keys + " FROM " + t.quotedName() + tail
	cond, oids := t.keyRange(">", 0)
	next := "SELECT " + keys + " FROM " + t.quotedName() + " WHERE " + cond + tail
	var bounds [][]string
	for {
		sql, params := first, [][]byte(nil)
		if len(bounds) > 0 {
			sql = next
			for _, v := range bounds[len(bounds)-1] {
				params = append(params, []byte(v))
			}
		}
		b, err := collectBounds(ctx, conn, t, sql, params, oids[:len(params)])
		if err != nil {
			return nil, fmt.Errorf("%w (after %d chunks)", err, len(bounds))
		}
		if len(b) == 0 {
			return bounds, nil
		}
		bounds = append(bounds, b[0])
	}
}

// collectBounds runs a query (with text parameters of the given types)
// returning bounds as rows of key columns.
func collectBounds(ctx context.Context, conn *pgx.Conn, t *Table, sql string, params [][]byte, oids []uint32) ([][]string, error) {
	rr := conn.PgConn().ExecParams(ctx, sql, params, oids, nil, nil)
	var bounds [][]string
	for rr.NextRow() {
		vals := rr.Values()
		b := make([]string, len(vals))
		for i, v := range vals {
			b[i] = string(v)
		}
		bounds = append(bounds, b)
	}
	if _, err := rr.Close(); err != nil {
		return nil, fmt.Errorf("planning snapshot chunks of %s: %w", t.QualifiedName(), err)
	}
	return bounds, nil
}

// keyIndexed reports whether a valid, non-partial btree index starts with
// the table's key columns, in order and in their own collations (an index
// in another collation cannot give ORDER BY's order).
func keyIndexed(ctx context.Context, conn *pgx.Conn, t *Table) (bool, error) {
	names := make([]string, len(t.Key))
	for i, k := range t.Key {
		names[i] = t.Columns[k].Name
	}
	var ok bool
	err := conn.QueryRow(ctx, `
		SELECT EXISTS (
			SELECT 1 FROM pg_index i
			JOIN pg_class ic ON ic.oid = i.indexrelid
			JOIN pg_am am ON am.oid = ic.relam
			WHERE i.indrelid = $1::regclass AND am.amname = 'btree' AND i.indisvalid AND i.indpred IS NULL
			  AND (SELECT array_agg(a.attname::text ORDER BY k.ord)
			       FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
			       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
			       WHERE k.ord <= $2 AND (i.indcollation::oid[])[k.ord - 1] = a.attcollation) = $3::text[])`, t.quotedName(), len(names), names).Scan(&ok)
	return ok, err
}

// readChunk reads one key range and emits its rows, then marks the chunk.
func (s *Source) readChunk(ctx context.Context, conn *pgx.Conn, em Emitter, st *snapshotState, ti, ci int, run *snapshotRun) error {
	ts := st.Tables[ti]
	t := s.byName[ts.Table]
	sql := "SELECT " + t.columnList() + " FROM " + t.quotedName()
	var params [][]byte
	var oids []uint32
	where := " WHERE "
	bound := func(op string, b []string) {
		cond, o := t.keyRange(op, len(oids))
		sql += where + cond
		where = " AND "
		oids = append(oids, o...)
		for _, v := range b {
			params = append(params, []byte(v))
		}
	}
	if ci > 0 {
		bound(">", ts.Bounds[ci-1])
	}
	if ci < len(ts.Bounds) {
		bound("<=", ts.Bounds[ci])
	}

	origin := s.origins[t]
	schema := t.snapshotSchemaRef()
	version := st.Version
	position := pglogrepl.LSN(version).String()
	rowsMetric := s.opts.Metrics.SnapshotRows.WithLabelValues(s.opts.Pipeline, ts.Table)
	formats := resultFormats(t)
	rr := conn.PgConn().ExecParams(ctx, sql, params, oids, nil, formats)
	var n int64
	rb := rowBuilder{formats: formats}
	for rr.NextRow() {
		ev, err := rb.build(s, t, rr.Values())
		if err != nil {
			rr.Close()
			return err
		}
		ev.Op = event.Op_OP_SNAPSHOT
		ev.Origin = origin
		ev.Schema = schema
		ev.Version = version
		ev.Position = position
		// No Id: snapshot rows derive theirs (event.Event.ID).
		if err := em.Emit(ctx, ev); err != nil {
			rr.Close()
			return err
		}
		n++
		if n%1024 == 0 {
			run.rows.Add(1024)
			rowsMetric.Add(1024)
		}
	}
	run.rows.Add(n % 1024)
	rowsMetric.Add(float64(n % 1024))
	if _, err := rr.Close(); err != nil {
		return fmt.Errorf("reading chunk %d of %s: %w", ci, ts.Table, err)
	}
	return em.Mark(ctx, chunkRef{table: ti, chunk: ci, rows: n})
}

// resultFormats are the result formats a snapshot reader asks for: binary
// (1) for the columns pgdecode reads in binary (integers, booleans, dates,
// timestamps: cheaper for both sides than text), text for the others; nil
// when all are text.
func resultFormats(t *Table) []int16 {
	var formats []int16
	for i, c := range t.Columns {
		if pgdecode.Binary(c.TypeOID) {
			if formats == nil {
				formats = make([]int16, len(t.Columns))
			}
			formats[i] = 1
		}
	}
	return formats
}

// rowBuilder decodes the rows a snapshot reader reads into one event it
// reuses, with the values in an arena reset for every row (Emit does not
// retain events): a row costs no allocation besides its arrays.
type rowBuilder struct {
	arena pgdecode.Arena
	ev    event.Event
	row   event.Row
	cols  []*event.Column
	store []event.Column
	key   []*event.Column
	// formats are the result formats of the columns (1: binary), nil when
	// all are text.
	formats []int16
}

// build decodes a full row (each column in its result format) into the
// event's key and after; the other fields of the event are reset.
func (b *rowBuilder) build(s *Source, t *Table, vals [][]byte) (*event.Event, error) {
	if len(vals) != len(t.Columns) {
		return nil, fmt.Errorf("%s: got %d columns, expected %d (did the table change during the snapshot?)", t.QualifiedName(), len(vals), len(t.Columns))
	}
	if len(b.store) != len(vals) {
		b.store = make([]event.Column, len(vals))
		b.cols = make([]*event.Column, len(vals))
		for i := range b.store {
			b.cols[i] = &b.store[i]
		}
	}
	if len(b.key) != len(t.Key) {
		b.key = make([]*event.Column, len(t.Key))
	}
	b.arena.Reset()
	for i, raw := range vals {
		var v *event.Value
		var err error
		if b.formats != nil && b.formats[i] == 1 {
			v, err = s.types.DecodeBinaryIn(&b.arena, t.Columns[i].TypeOID, raw)
		} else {
			v, err = s.types.DecodeIn(&b.arena, t.Columns[i].TypeOID, raw)
		}
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", t.QualifiedName(), t.Columns[i].Name, err)
		}
		b.store[i].Name, b.store[i].Value = t.Columns[i].Name, v
	}
	for i, k := range t.Key {
		b.key[i] = b.cols[k]
	}
	b.row.Columns = b.cols
	b.ev = event.Event{Key: b.key, After: &b.row}
	return &b.ev, nil
}

func quoteLiteral(s string) string {
	out := []byte{'\''}
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			out = append(out, '\'')
		}
		out = append(out, s[i])
	}
	return string(append(out, '\''))
}
