package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/admin/adminpb"
	"github.com/tidegate/tidegate/internal/admin/adminpb/adminpbconnect"
	"github.com/tidegate/tidegate/internal/bus"
)

// DeadLetters is the dead-letter store the API works on (*bus.Bus). See
// the bus methods of the same names for the contract.
type DeadLetters interface {
	ScanDLQ(ctx context.Context, pipeline string, f bus.DLQFilter, fn func(bus.StoredDeadLetter) (bool, error)) error
	DLQLastSeq(ctx context.Context, pipeline string) (uint64, error)
	DLQCount(ctx context.Context, pipeline, sink string) (uint64, error)
	GetDLQ(ctx context.Context, pipeline string, seq uint64) (bus.StoredDeadLetter, error)
	DiscardDLQ(ctx context.Context, pipeline string, seq uint64) error
	ReplayDLQ(ctx context.Context, d bus.StoredDeadLetter) error
}

// Pipeline is a configured pipeline, as the API knows it.
type Pipeline struct {
	Name  string
	Sinks []string
}

// Limits of one call.
const (
	defaultPageSize = 50
	maxPageSize     = 1000
	// maxPageBytes ends a page early once its events add up to this much.
	maxPageBytes = 4 << 20
	// maxItemErrors listed in a bulk response (all are counted).
	maxItemErrors = 100
)

// api implements the AdminService.
type api struct {
	dlq       DeadLetters
	pipelines []Pipeline // sorted by name
	log       *slog.Logger
}

var _ adminpbconnect.AdminServiceHandler = (*api)(nil)

func newAPI(dlq DeadLetters, pipelines []Pipeline, log *slog.Logger) *api {
	ps := slices.Clone(pipelines)
	slices.SortFunc(ps, func(a, b Pipeline) int { return strings.Compare(a.Name, b.Name) })
	return &api{dlq: dlq, pipelines: ps, log: log}
}

func (a *api) names() string {
	var n []string
	for _, p := range a.pipelines {
		n = append(n, p.Name)
	}
	if len(n) == 0 {
		return "none is configured"
	}
	return "configured: " + strings.Join(n, ", ")
}

func (a *api) hasSink(pipeline, sink string) bool {
	for _, p := range a.pipelines {
		if p.Name == pipeline {
			return slices.Contains(p.Sinks, sink)
		}
	}
	return false
}

// selectPipelines returns the pipelines a filter covers.
func (a *api) selectPipelines(name string) ([]string, error) {
	var out []string
	for _, p := range a.pipelines {
		if name == "" || p.Name == name {
			out = append(out, p.Name)
		}
	}
	if name != "" && len(out) == 0 {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("pipeline %q is not configured (%s)", name, a.names()))
	}
	return out, nil
}

// onePipeline resolves the pipeline of explicit sequences: the named one,
// or the only one configured.
func (a *api) onePipeline(name string) (string, error) {
	if name != "" {
		ps, err := a.selectPipelines(name)
		if err != nil {
			return "", err
		}
		return ps[0], nil
	}
	if len(a.pipelines) == 1 {
		return a.pipelines[0].Name, nil
	}
	return "", connect.NewError(connect.CodeInvalidArgument,
		fmt.Errorf("name the pipeline of the dead letters (sequences are per pipeline; %s)", a.names()))
}

func (a *api) ListDeadLetters(ctx context.Context, req *connect.Request[adminpb.ListDeadLettersRequest]) (*connect.Response[adminpb.ListDeadLettersResponse], error) {
	f := req.Msg.GetFilter()
	pipes, err := a.selectPipelines(f.GetPipeline())
	if err != nil {
		return nil, err
	}
	size := int(req.Msg.GetPageSize())
	if size <= 0 {
		size = defaultPageSize
	}
	size = min(size, maxPageSize)
	start, from := 0, uint64(1)
	if tok := req.Msg.GetPageToken(); tok != "" {
		p, seq, err := parsePageToken(tok)
		if err != nil {
			return nil, err
		}
		start = slices.Index(pipes, p)
		if start < 0 {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("page token %q names pipeline %s, which the filter does not cover: pass the same filter as for the previous page", tok, p))
		}
		from = seq
	}
	resp := &adminpb.ListDeadLettersResponse{}
	for _, p := range pipes {
		n, err := a.dlq.DLQCount(ctx, p, f.GetSink())
		if err != nil {
			return nil, busError(err)
		}
		resp.Total += n
	}
	bytes := 0
	for i := start; i < len(pipes) && resp.NextPageToken == ""; i++ {
		p := pipes[i]
		if i > start {
			from = 1
		}
		err := a.dlq.ScanDLQ(ctx, p, bus.DLQFilter{Sink: f.GetSink(), From: from}, func(d bus.StoredDeadLetter) (bool, error) {
			if len(resp.DeadLetters) >= size || (len(resp.DeadLetters) > 0 && bytes+len(d.Data) > maxPageBytes) {
				resp.NextPageToken = p + ":" + strconv.FormatUint(d.Seq, 10)
				return false, nil
			}
			resp.DeadLetters = append(resp.DeadLetters, toProto(d, req.Msg.GetWithEvents()))
			bytes += len(d.Data)
			return true, nil
		})
		if err != nil {
			return nil, busError(err)
		}
	}
	return connect.NewResponse(resp), nil
}

func parsePageToken(tok string) (string, uint64, error) {
	p, s, ok := strings.Cut(tok, ":")
	seq, err := strconv.ParseUint(s, 10, 64)
	if !ok || p == "" || err != nil || seq == 0 {
		return "", 0, connect.NewError(connect.CodeInvalidArgument,
			fmt.Errorf("page token %q is not <pipeline>:<sequence>: pass next_page_token of the previous page as it is", tok))
	}
	return p, seq, nil
}

func (a *api) GetDeadLetter(ctx context.Context, req *connect.Request[adminpb.GetDeadLetterRequest]) (*connect.Response[adminpb.GetDeadLetterResponse], error) {
	p, err := a.onePipeline(req.Msg.GetPipeline())
	if err != nil {
		return nil, err
	}
	d, err := a.dlq.GetDLQ(ctx, p, req.Msg.GetSequence())
	if err != nil {
		return nil, busError(err)
	}
	return connect.NewResponse(&adminpb.GetDeadLetterResponse{DeadLetter: toProto(d, true)}), nil
}

func (a *api) ReplayDeadLetters(ctx context.Context, req *connect.Request[adminpb.ReplayDeadLettersRequest]) (*connect.Response[adminpb.ReplayDeadLettersResponse], error) {
	r, err := a.each(ctx, req.Msg.GetSelection(), func(d bus.StoredDeadLetter) error {
		// A sink removed from the configuration may keep its consumer in
		// the bus, which would hold the replay forever: refuse.
		if !a.hasSink(d.Pipeline, d.Sink) {
			return fmt.Errorf("%w: %s is not a sink of pipeline %s in the running configuration; discard its dead letters", bus.ErrNotReplayable, d.Sink, d.Pipeline)
		}
		return a.dlq.ReplayDLQ(ctx, d)
	})
	if err != nil {
		return nil, err
	}
	a.log.Info("dead letters replayed", "filter", describe(req.Msg.GetSelection()), "replayed", r.done, "failed", r.failedCount)
	return connect.NewResponse(&adminpb.ReplayDeadLettersResponse{Replayed: r.done, Failed: r.failed, FailedCount: r.failedCount}), nil
}

func (a *api) DiscardDeadLetters(ctx context.Context, req *connect.Request[adminpb.DiscardDeadLettersRequest]) (*connect.Response[adminpb.DiscardDeadLettersResponse], error) {
	r, err := a.each(ctx, req.Msg.GetSelection(), func(d bus.StoredDeadLetter) error { return a.dlq.DiscardDLQ(ctx, d.Pipeline, d.Seq) })
	if err != nil {
		return nil, err
	}
	a.log.Info("dead letters discarded", "filter", describe(req.Msg.GetSelection()), "discarded", r.done, "failed", r.failedCount)
	return connect.NewResponse(&adminpb.DiscardDeadLettersResponse{Discarded: r.done, Failed: r.failed, FailedCount: r.failedCount}), nil
}

func describe(s *adminpb.DeadLetterSelection) string {
	var parts []string
	if p := s.GetFilter().GetPipeline(); p != "" {
		parts = append(parts, "pipeline="+p)
	}
	if k := s.GetFilter().GetSink(); k != "" {
		parts = append(parts, "sink="+k)
	}
	switch seqs := s.GetSequences(); {
	case s.GetAll():
		parts = append(parts, "all")
	case len(seqs) > 10:
		parts = append(parts, fmt.Sprintf("sequences=%v... (%d)", seqs[:10], len(seqs)))
	default:
		parts = append(parts, fmt.Sprintf("sequences=%v", seqs))
	}
	return strings.Join(parts, " ")
}

type bulkResult struct {
	done        uint64
	failed      []*adminpb.ItemError
	failedCount uint64
}

func (r *bulkResult) fail(pipeline string, seq uint64, err error) {
	r.failedCount++
	if len(r.failed) < maxItemErrors {
		r.failed = append(r.failed, &adminpb.ItemError{Pipeline: pipeline, Sequence: seq, Error: err.Error()})
	}
}

// each applies op to the selected dead letters, one at a time. A failure
// of one dead letter is recorded and the others go on; a failure of the
// bus itself (or a cancelled call) ends the call with an error.
func (a *api) each(ctx context.Context, sel *adminpb.DeadLetterSelection, op func(bus.StoredDeadLetter) error) (*bulkResult, error) {
	f := sel.GetFilter()
	r := &bulkResult{}
	switch {
	case sel.GetAll() && len(sel.GetSequences()) > 0:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("give either sequences or all, not both"))
	case sel.GetAll():
		pipes, err := a.selectPipelines(f.GetPipeline())
		if err != nil {
			return nil, err
		}
		for _, p := range pipes {
			// Only what exists now: a replay that fails again is dead-lettered
			// again, after this bound, and must not be replayed in a loop.
			last, err := a.dlq.DLQLastSeq(ctx, p)
			if err != nil {
				return nil, busError(err)
			}
			if last == 0 {
				continue
			}
			err = a.dlq.ScanDLQ(ctx, p, bus.DLQFilter{Sink: f.GetSink(), To: last}, func(d bus.StoredDeadLetter) (bool, error) {
				if err := op(d); err != nil {
					if ctx.Err() != nil {
						return false, ctx.Err()
					}
					r.fail(p, d.Seq, err)
					// A full stream stays full for the next ones: stop here.
					return !errors.Is(err, bus.ErrStreamFull), nil
				}
				r.done++
				return true, nil
			})
			if err != nil {
				return nil, busError(err)
			}
		}
	case len(sel.GetSequences()) > 0:
		p, err := a.onePipeline(f.GetPipeline())
		if err != nil {
			return nil, err
		}
		for _, seq := range sel.GetSequences() {
			if err := ctx.Err(); err != nil {
				return nil, busError(err)
			}
			d, err := a.dlq.GetDLQ(ctx, p, seq)
			if err != nil {
				r.fail(p, seq, err)
				continue
			}
			if s := f.GetSink(); s != "" && d.Sink != s {
				r.fail(p, seq, fmt.Errorf("dead letter %d belongs to sink %s, not %s", seq, d.Sink, s))
				continue
			}
			if err := op(d); err != nil {
				r.fail(p, seq, err)
				if errors.Is(err, bus.ErrStreamFull) {
					break
				}
				continue
			}
			r.done++
		}
	default:
		return nil, connect.NewError(connect.CodeInvalidArgument, errors.New("select dead letters: give their sequences, or all (with an optional pipeline and sink filter)"))
	}
	return r, nil
}

// busError maps a bus error to an RPC error.
func busError(err error) error {
	switch {
	case errors.Is(err, bus.ErrDeadLetterNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	return connect.NewError(connect.CodeUnavailable, fmt.Errorf("reading the bus: %w", err))
}

// toProto renders a dead letter; the event's JSON only with withEvent.
func toProto(d bus.StoredDeadLetter, withEvent bool) *adminpb.DeadLetter {
	out := &adminpb.DeadLetter{
		Pipeline:        d.Pipeline,
		Sink:            d.Sink,
		Sequence:        d.Seq,
		EventId:         d.EventID,
		Error:           d.Error,
		Attempts:        uint32(max(d.Attempts, 0)),
		OriginalSubject: d.OriginalSubject,
		SizeBytes:       uint32(len(d.Data)),
	}
	if !d.FailedAt.IsZero() {
		out.FailedAt = timestamppb.New(d.FailedAt)
	}
	ev, err := d.Event()
	if err != nil {
		out.BodyError = err.Error()
		return out
	}
	if out.EventId == "" {
		out.EventId = ev.GetId()
	}
	out.Table = ev.GetOrigin().GetSchema() + "." + ev.GetOrigin().GetTable()
	out.Op = event.OpName(ev.GetOp())
	out.Version = ev.GetVersion()
	out.KeyJson = string(event.AppendRowJSON(nil, &event.Row{Columns: ev.GetKey()}))
	if withEvent {
		out.EventJson = string(event.AppendEventJSON(nil, ev))
	}
	return out
}
