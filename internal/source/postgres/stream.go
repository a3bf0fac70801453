package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/source/postgres/pgdecode"
)

// relation is a table as the replication stream describes it.
type relation struct {
	table *Table // nil when the relation is not captured
	cols  []Column
	// key holds indexes into cols of the key columns.
	key    []int
	origin *event.Origin
	// schema is the registry version of this shape (every event carries it).
	schema *event.SchemaRef
}

// txState is the transaction being received.
type txState struct {
	active     bool
	version    uint64
	position   string
	commitTime int64
	xid        string
	seq        int
}

// streamer is the state of the streaming loop (owned by one goroutine).
type streamer struct {
	s         *Source
	conn      *pgx.Conn
	repl      *pgconn.PgConn
	relations map[uint32]*relation
	tx        txState
	// marked is the highest commit end LSN passed to Mark.
	marked pglogrepl.LSN
	// received is the end of the last message received.
	received     pglogrepl.LSN
	lastActivity time.Time
	lastReported pglogrepl.LSN
	// serverDelay observes commit → PostgreSQL sending the transaction.
	serverDelay prometheus.Observer
	// newTup and oldTup build the events of one message's tuples; they are
	// reused for the next message (Emit does not retain events).
	newTup, oldTup tupleBuilder
}

// tupleBuilder decodes tuples into one event it reuses, with the values in
// an arena: a change costs no allocation besides its arrays and ids.
type tupleBuilder struct {
	arena pgdecode.Arena
	ev    event.Event
	row   event.Row
	store []event.Column
	cols  []*event.Column
	byIdx []*event.Column
	key   []*event.Column
	unch  []string
}

// stream runs pgoutput replication from start until ctx is done.
func (s *Source) stream(ctx context.Context, conn *pgx.Conn, repl *pgconn.PgConn, start pglogrepl.LSN) error {
	err := pglogrepl.StartReplication(ctx, repl, s.cfg.Slot, start, pglogrepl.StartReplicationOptions{
		Mode: pglogrepl.LogicalReplication,
		PluginArgs: []string{
			"proto_version '1'",
			"publication_names " + quoteLiteral(s.cfg.Publication),
			"messages 'true'",
		},
	})
	if err != nil {
		return fmt.Errorf("starting replication from slot %s at %s: %w", s.cfg.Slot, start, err)
	}
	if err := s.markStreaming(ctx); err != nil {
		return err
	}
	s.Durable(start)
	st := &streamer{s: s, conn: conn, repl: repl, relations: map[uint32]*relation{}, marked: start, received: start, lastActivity: time.Now(),
		serverDelay: s.opts.Metrics.SourceServer.WithLabelValues(s.opts.Pipeline)}
	s.log.Info("streaming", "slot", s.cfg.Slot, "from", start)
	return st.loop(ctx)
}

func (st *streamer) loop(ctx context.Context) error {
	s := st.s
	nextStatus := time.Now().Add(s.cfg.StatusInterval)
	lagEvery := time.NewTicker(s.cfg.StatusInterval)
	defer lagEvery.Stop()
	// Receives end at the next status update by the connection's read
	// deadline, set once per interval, and at once when ctx ends. (A
	// receive given a cancellable context registers and removes a watch
	// on it every message: a sixth of the streaming CPU time. Given
	// context.Background, pgconn does not watch.)
	conn := st.repl.Conn()
	stopWatch := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })
	defer func() {
		stopWatch() // first, or it could set a deadline after the reset
		_ = conn.SetReadDeadline(time.Time{})
	}()
	var deadline time.Time
	for {
		if err := ctx.Err(); err != nil {
			st.sendStatus(context.Background(), false)
			return err
		}
		// Report progress early when something became durable.
		if pglogrepl.LSN(s.durable.Load()) > st.lastReported && time.Until(nextStatus) > time.Second {
			nextStatus = time.Now().Add(time.Second)
		}
		if time.Now().After(nextStatus) {
			if err := st.sendStatus(ctx, false); err != nil {
				return err
			}
			nextStatus = time.Now().Add(s.cfg.StatusInterval)
		}
		select {
		case <-lagEvery.C:
			st.housekeeping(ctx)
		default:
		}

		if !nextStatus.Equal(deadline) {
			deadline = nextStatus
			_ = conn.SetReadDeadline(deadline)
			if ctx.Err() != nil {
				continue // ended meanwhile: the deadline just set may be later
			}
		}
		raw, err := st.repl.ReceiveMessage(context.Background())
		if err != nil {
			if pgconn.Timeout(err) && ctx.Err() == nil {
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("receiving from replication slot %s: %w", s.cfg.Slot, err)
		}
		switch msg := raw.(type) {
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("replication slot %s: %w", s.cfg.Slot, pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.CopyData:
			if len(msg.Data) == 0 {
				continue
			}
			switch msg.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("parsing keepalive: %w", err)
				}
				st.idleAdvance(ka.ServerWALEnd)
				if ka.ReplyRequested {
					if err := st.sendStatus(ctx, false); err != nil {
						return err
					}
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(msg.Data[1:])
				if err != nil {
					return fmt.Errorf("parsing XLogData: %w", err)
				}
				if err := st.handle(ctx, xld); err != nil {
					return err
				}
			}
		}
	}
}

// idleAdvance: between transactions, with everything marked durable, the
// server's sent position can be confirmed: all captured changes before it
// were received. That keeps WAL from piling up behind an idle slot.
func (st *streamer) idleAdvance(walEnd pglogrepl.LSN) {
	if st.tx.active || walEnd <= st.marked {
		return
	}
	if pglogrepl.LSN(st.s.durable.Load()) < st.marked {
		return
	}
	st.marked = walEnd
	st.s.Durable(walEnd)
}

func (st *streamer) sendStatus(ctx context.Context, reply bool) error {
	pos := pglogrepl.LSN(st.s.durable.Load())
	if pos == 0 {
		return nil
	}
	err := pglogrepl.SendStandbyStatusUpdate(ctx, st.repl, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: pos, WALFlushPosition: pos, WALApplyPosition: pos, ReplyRequested: reply,
	})
	if err != nil {
		return fmt.Errorf("confirming position %s to slot %s: %w", pos, st.s.cfg.Slot, err)
	}
	st.lastReported = pos
	st.s.opts.Metrics.ConfirmedLSN.WithLabelValues(st.s.opts.Pipeline).Set(float64(pos))
	return nil
}

// housekeeping emits a heartbeat when idle (lag.go reports the slot lag).
func (st *streamer) housekeeping(ctx context.Context) {
	s := st.s
	if time.Since(st.lastActivity) >= s.cfg.HeartbeatInterval && !st.tx.active {
		// A non-transactional logical message: decoded by our walsender,
		// it gives a position to confirm even when other databases of the
		// cluster write all the WAL.
		if _, err := st.conn.Exec(ctx, `SELECT pg_logical_emit_message(false, 'tidegate_heartbeat', '')`); err != nil && ctx.Err() == nil {
			s.log.Warn("heartbeat failed", "error", err)
		}
		st.lastActivity = time.Now()
	}
}

func (st *streamer) handle(ctx context.Context, xld pglogrepl.XLogData) error {
	m, err := pglogrepl.Parse(xld.WALData)
	if err != nil {
		return fmt.Errorf("decoding pgoutput message at %s: %w", xld.WALStart, err)
	}
	s := st.s
	switch m := m.(type) {
	case *pglogrepl.RelationMessage:
		return st.relation(ctx, m, xld.WALStart)
	case *pglogrepl.BeginMessage:
		st.tx = txState{
			active:     true,
			version:    uint64(m.FinalLSN),
			position:   m.FinalLSN.String(),
			commitTime: m.CommitTime.UnixMicro(),
			xid:        strconv.FormatUint(uint64(m.Xid), 10),
		}
		st.lastActivity = time.Now()
		if !xld.ServerTime.IsZero() {
			st.serverDelay.Observe(xld.ServerTime.Sub(m.CommitTime).Seconds())
		}
	case *pglogrepl.CommitMessage:
		st.tx.active = false
		if m.TransactionEndLSN > st.marked {
			st.marked = m.TransactionEndLSN
		}
		return s.opts.Emitter.Mark(ctx, m.TransactionEndLSN)
	case *pglogrepl.InsertMessage:
		rel, err := st.rel(m.RelationID)
		if err != nil || rel.table == nil {
			return err
		}
		ev, err := st.tupleEvent(rel, m.Tuple, &st.newTup)
		if err != nil {
			return err
		}
		ev.Op = event.Op_OP_INSERT
		return st.emit(ctx, rel, ev)
	case *pglogrepl.UpdateMessage:
		rel, err := st.rel(m.RelationID)
		if err != nil || rel.table == nil {
			return err
		}
		newTuple := m.NewTuple
		if m.OldTupleType == pglogrepl.UpdateMessageTupleTypeOld {
			// REPLICA IDENTITY FULL: the old tuple carries every column,
			// detoasted, so unchanged TOAST values need not stay unknown.
			newTuple = withUnchangedFromOld(m.NewTuple, m.OldTuple)
		}
		ev, err := st.tupleEvent(rel, newTuple, &st.newTup)
		if err != nil {
			return err
		}
		ev.Op = event.Op_OP_UPDATE
		if m.OldTuple != nil {
			old, err := st.tupleEvent(rel, m.OldTuple, &st.oldTup)
			if err != nil {
				return err
			}
			if m.OldTupleType == pglogrepl.UpdateMessageTupleTypeOld {
				ev.Before = old.After
			}
			if event.DocumentID(old.Key) != event.DocumentID(ev.Key) {
				// The key changed: the old document goes away.
				del := &event.Event{Op: event.Op_OP_DELETE, Key: old.Key, Before: ev.Before}
				if err := st.emit(ctx, rel, del); err != nil {
					return err
				}
			}
		}
		return st.emit(ctx, rel, ev)
	case *pglogrepl.DeleteMessage:
		rel, err := st.rel(m.RelationID)
		if err != nil || rel.table == nil {
			return err
		}
		if m.OldTuple == nil {
			return fmt.Errorf("delete on %s carries no key (REPLICA IDENTITY NOTHING?): set REPLICA IDENTITY DEFAULT or FULL", rel.table.QualifiedName())
		}
		old, err := st.tupleEvent(rel, m.OldTuple, &st.oldTup)
		if err != nil {
			return err
		}
		ev := &event.Event{Op: event.Op_OP_DELETE, Key: old.Key}
		if m.OldTupleType == pglogrepl.DeleteMessageTupleTypeOld {
			ev.Before = old.After
		}
		return st.emit(ctx, rel, ev)
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			rel, err := st.rel(id)
			if err != nil {
				return err
			}
			if rel.table == nil {
				continue
			}
			if err := st.emit(ctx, rel, &event.Event{Op: event.Op_OP_TRUNCATE}); err != nil {
				return err
			}
		}
	case *pglogrepl.LogicalDecodingMessage:
		if !m.Transactional && !st.tx.active && xld.WALStart > st.marked {
			// A heartbeat (ours or anyone's): a safe point to confirm once
			// everything before it is durable.
			st.marked = xld.WALStart
			return s.opts.Emitter.Mark(ctx, xld.WALStart)
		}
	case *pglogrepl.TypeMessage, *pglogrepl.OriginMessage:
	}
	return nil
}

func (st *streamer) rel(id uint32) (*relation, error) {
	rel, ok := st.relations[id]
	if !ok {
		return nil, fmt.Errorf("change for relation %d before its relation message (protocol error)", id)
	}
	return rel, nil
}

// relation records (or updates, after DDL) a relation's columns, and its
// version in the schema registry. at is where the message was received.
func (st *streamer) relation(ctx context.Context, m *pglogrepl.RelationMessage, at pglogrepl.LSN) error {
	s := st.s
	t := s.byName[m.Namespace+"."+m.RelationName]
	rel := &relation{table: t}
	if t == nil {
		st.relations[m.RelationID] = rel
		return nil
	}
	var oids []uint32
	for _, c := range m.Columns {
		rel.cols = append(rel.cols, Column{Name: c.Name, TypeOID: c.DataType, TypeMod: c.TypeModifier})
		oids = append(oids, c.DataType)
	}
	// A relation message follows DDL: forget what we knew of its types
	// (ALTER TYPE on a composite or enum) and look them up again.
	s.types.Forget(oids...)
	if err := s.types.Load(ctx, st.conn, oids...); err != nil {
		return fmt.Errorf("loading column types of %s: %w", t.QualifiedName(), err)
	}
	key, err := t.streamKey(m.Columns)
	if err != nil {
		return err
	}
	rel.key = key
	rel.origin = s.origins[t]
	// pgoutput sends a relation inside the transaction that first uses it:
	// the shape holds from that transaction's commit on.
	pos := at
	if st.tx.active {
		pos = pglogrepl.LSN(st.tx.version)
	}
	ref, err := s.recordSchema(ctx, st.conn, t, rel.schemaColumns(), pos)
	if err != nil {
		return err
	}
	rel.schema = ref
	st.relations[m.RelationID] = rel
	return nil
}

// schemaColumns is the relation's shape for the schema registry.
func (rel *relation) schemaColumns() []SchemaColumn {
	out := make([]SchemaColumn, len(rel.cols))
	for i, c := range rel.cols {
		out[i] = SchemaColumn{Name: c.Name, TypeOID: c.TypeOID, TypeMod: c.TypeMod}
	}
	for _, k := range rel.key {
		out[k].Key = true
	}
	return out
}

// withUnchangedFromOld returns the new tuple of an UPDATE with its unchanged
// TOAST columns ('u') taken from the old tuple where that one carries the
// value: with REPLICA IDENTITY FULL, PostgreSQL logs the whole old row with
// out-of-line values inlined (heap_update flattens it), so pgoutput sends
// them in full even though the new tuple leaves them out. A column that is
// 'u' in both stays unchanged (listed in Event.unchanged). newTup is not
// modified: pglogrepl owns it.
func withUnchangedFromOld(newTup, oldTup *pglogrepl.TupleData) *pglogrepl.TupleData {
	if newTup == nil || oldTup == nil || len(oldTup.Columns) != len(newTup.Columns) {
		return newTup // tupleEvent reports the mismatch
	}
	var merged []*pglogrepl.TupleDataColumn
	for i, c := range newTup.Columns {
		if c.DataType != pglogrepl.TupleDataTypeToast {
			continue
		}
		if o := oldTup.Columns[i]; o.DataType == pglogrepl.TupleDataTypeText {
			if merged == nil {
				merged = make([]*pglogrepl.TupleDataColumn, len(newTup.Columns))
				copy(merged, newTup.Columns)
			}
			merged[i] = o
		}
	}
	if merged == nil {
		return newTup
	}
	return &pglogrepl.TupleData{ColumnNum: newTup.ColumnNum, Columns: merged}
}

// tupleEvent decodes a tuple into an event's key and after row. Unchanged
// TOAST columns are listed in Unchanged and left out of After.
func (st *streamer) tupleEvent(rel *relation, tup *pglogrepl.TupleData, b *tupleBuilder) (*event.Event, error) {
	if tup == nil {
		return nil, errors.New("missing tuple data")
	}
	if len(tup.Columns) != len(rel.cols) {
		return nil, fmt.Errorf("%s: tuple has %d columns, relation %d", rel.table.QualifiedName(), len(tup.Columns), len(rel.cols))
	}
	n := len(rel.cols)
	if cap(b.store) < n {
		b.store = make([]event.Column, n)
		b.byIdx = make([]*event.Column, n)
	}
	b.store, b.byIdx = b.store[:n], b.byIdx[:n]
	b.cols, b.key, b.unch = b.cols[:0], b.key[:0], b.unch[:0]
	b.arena.Reset()
	for i, c := range tup.Columns {
		col := rel.cols[i]
		b.byIdx[i] = nil
		var v *event.Value
		switch c.DataType {
		case 'n':
			v, _ = st.s.types.DecodeIn(&b.arena, col.TypeOID, nil)
		case 'u':
			b.unch = append(b.unch, col.Name)
			continue
		case 't':
			var err error
			v, err = st.s.types.DecodeIn(&b.arena, col.TypeOID, c.Data)
			if err != nil {
				return nil, fmt.Errorf("%s.%s: %w", rel.table.QualifiedName(), col.Name, err)
			}
		default:
			return nil, fmt.Errorf("%s.%s: unexpected tuple data kind %q", rel.table.QualifiedName(), col.Name, c.DataType)
		}
		ec := &b.store[i]
		*ec = event.Column{Name: col.Name, Value: v}
		b.byIdx[i] = ec
		b.cols = append(b.cols, ec)
	}
	for _, k := range rel.key {
		if b.byIdx[k] == nil {
			return nil, fmt.Errorf("%s: key column %s not in the tuple", rel.table.QualifiedName(), rel.cols[k].Name)
		}
		b.key = append(b.key, b.byIdx[k])
	}
	b.row = event.Row{Columns: b.cols}
	b.ev = event.Event{After: &b.row, Key: b.key}
	if len(b.unch) > 0 {
		b.ev.Unchanged = b.unch
	}
	return &b.ev, nil
}

func (st *streamer) emit(ctx context.Context, rel *relation, ev *event.Event) error {
	ev.Origin = rel.origin
	ev.Schema = rel.schema
	ev.Version = st.tx.version
	ev.Position = st.tx.position
	ev.CommitTimeUs = st.tx.commitTime
	ev.TxId = st.tx.xid
	ev.Id = st.s.opts.SourceName + ":" + st.tx.position + ":" + strconv.Itoa(st.tx.seq)
	st.tx.seq++
	return st.s.opts.Emitter.Emit(ctx, ev)
}
