package elasticsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/tidegate/tidegate/internal/sink"
)

// bulkItem is the result of one operation in a bulk response.
type bulkItem struct {
	Status int      `json:"status"`
	Error  *esError `json:"error"`
}

// bulkResponse is a bulk response trimmed by bulkFilterPath.
type bulkResponse struct {
	Errors bool `json:"errors"`
	Items  []struct {
		Index  *bulkItem `json:"index"`
		Create *bulkItem `json:"create"`
		Update *bulkItem `json:"update"`
		Delete *bulkItem `json:"delete"`
	} `json:"items"`
}

// opResult is the fate of one operation of a request.
type opResult struct {
	outcome itemOutcome
	err     error
}

// parseBulk reads the per-operation results of a 2xx bulk response.
func parseBulk(body []byte, kinds []opKind) ([]opResult, error) {
	results := make([]opResult, len(kinds))
	// Fast path: Elasticsearch writes "errors" first (after "took", which
	// bulkFilterPath removes); when it is false every item succeeded.
	head := body[:min(len(body), 48)]
	if bytes.Contains(head, []byte(`"errors":false`)) {
		return results, nil
	}
	var res bulkResponse
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, fmt.Errorf("decoding bulk response: %w", err)
	}
	if !res.Errors && len(res.Items) == 0 {
		return results, nil
	}
	if len(res.Items) != len(kinds) {
		return nil, fmt.Errorf("bulk response has %d items for %d operations", len(res.Items), len(kinds))
	}
	for i := range res.Items {
		it := &res.Items[i]
		item := it.Index
		switch {
		case it.Delete != nil:
			item = it.Delete
		case it.Create != nil:
			item = it.Create
		case it.Update != nil:
			item = it.Update
		}
		results[i].outcome, results[i].err = classifyItem(kinds[i], item)
	}
	return results, nil
}

// execute sends requests, at most cfg.Concurrency at a time, each retried
// until it gets an answer per operation or ctx is done. It returns the
// results of each request's operations.
func (s *Sink) execute(ctx context.Context, reqs []*bulkRequest) ([][]opResult, error) {
	results := make([][]opResult, len(reqs))
	if len(reqs) == 1 {
		r, err := s.send(ctx, reqs[0], 0, reqs[0].len())
		results[0] = r
		return results, err
	}
	var g errgroup.Group
	g.SetLimit(s.cfg.Concurrency)
	for i, r := range reqs {
		g.Go(func() error {
			var err error
			results[i], err = s.send(ctx, r, 0, r.len())
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return results, nil
}

// send sends operations [lo, hi) of r until the cluster answers for each of
// them. Request-level failures are retried with backoff; a request rejected
// as a whole (413, or a 400 caused by one operation) is split in halves, and
// a single operation rejected that way is a permanent failure.
func (s *Sink) send(ctx context.Context, r *bulkRequest, lo, hi int) ([]opResult, error) {
	body := r.part(lo, hi)
	for attempt := 1; ; attempt++ {
		status, resBody, err := s.bulkOnce(ctx, body)
		v, re := classifyRequest(ctx, status, resBody, err)
		if ctx.Err() != nil {
			s.metrics.requests.WithLabelValues(outcomeCanceled).Inc()
			if re != nil {
				return nil, fmt.Errorf("sending bulk request: gave up after %d attempts (last error: %v): %w", attempt, re, ctx.Err())
			}
			return nil, fmt.Errorf("sending bulk request: %w", ctx.Err())
		}
		switch v {
		case verdictOK:
			results, perr := parseBulk(resBody, r.kinds[lo:hi])
			if perr == nil {
				s.metrics.requests.WithLabelValues(requestOutcome(results)).Inc()
				return results, nil
			}
			re = &requestError{Status: status, Reason: perr.Error(), Cause: "bad_response"}
		case verdictSplit:
			s.metrics.requests.WithLabelValues(outcomeRejected).Inc()
			if re.Cause == "too_large" && hi-lo > 1 && s.warnLog.allow() {
				s.log.Warn("bulk request too large for the cluster; splitting it",
					"bytes", len(body), "operations", hi-lo,
					"hint", "set bulk_max_bytes below the cluster's http.max_content_length")
			}
			if hi-lo == 1 {
				reason := re.Reason
				if re.Cause == "too_large" {
					reason = fmt.Sprintf("document too large: the operation is %d bytes, more than the cluster accepts (http.max_content_length)", len(body))
				}
				return []opResult{{outcome: itemPermanent, err: &sink.PermanentError{Reason: reason, Status: re.Status}}}, nil
			}
			mid := lo + (hi-lo)/2
			left, err := s.send(ctx, r, lo, mid)
			if err != nil {
				return nil, err
			}
			right, err := s.send(ctx, r, mid, hi)
			if err != nil {
				return nil, err
			}
			return append(left, right...), nil
		}
		s.metrics.requests.WithLabelValues(outcomeError).Inc()
		if err := s.retryWait(ctx, "bulk request", attempt, re); err != nil {
			return nil, err
		}
	}
}

func requestOutcome(results []opResult) string {
	for _, r := range results {
		if r.outcome != itemOK {
			return outcomePartial
		}
	}
	return outcomeSuccess
}

// bulkOnce sends one bulk request with the request timeout.
func (s *Sink) bulkOnce(ctx context.Context, body []byte) (int, []byte, error) {
	select {
	case s.requests <- struct{}{}:
	case <-ctx.Done():
		return 0, nil, ctx.Err()
	}
	defer func() { <-s.requests }()
	rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	start := time.Now()
	res, err := s.backend.bulk(rctx, body)
	s.metrics.duration.Observe(time.Since(start).Seconds())
	s.metrics.bytes.Add(float64(len(body)))
	if err != nil {
		return 0, nil, err
	}
	return res.status, res.body, nil
}

// sendUntilSettled sends ops (deletes, probes: operations that cannot fail
// to encode) in bulk requests until each is settled: settle sees every
// result and returns true to send that operation again, after a backoff
// (what names the work in logs).
func (s *Sink) sendUntilSettled(ctx context.Context, what string, ops []op, settle func(i int32, res opResult) (again bool)) error {
	pending := make([]int32, len(ops))
	for i := range ops {
		pending[i] = int32(i)
	}
	for attempt := 1; len(pending) > 0; attempt++ {
		b := requestBuilder{pool: &s.bufs, maxBytes: s.cfg.BulkMaxBytes, maxActions: s.cfg.BulkMaxActions}
		for _, i := range pending {
			if err := b.add(&ops[i], i); err != nil {
				return err
			}
		}
		reqs := b.finish()
		out, err := s.execute(ctx, reqs)
		pending = pending[:0]
		var lastErr error
		for ri, r := range reqs {
			if err == nil {
				for j, res := range out[ri] {
					if settle(r.tags[j], res) {
						pending = append(pending, r.tags[j])
						lastErr = res.err
					}
				}
			}
			b.release(r)
		}
		if err != nil {
			return err
		}
		if len(pending) > 0 {
			reason := "retrying"
			if lastErr != nil {
				reason = lastErr.Error()
			}
			if err := s.retryWait(ctx, what, attempt, &requestError{Cause: "item", Reason: reason}); err != nil {
				return err
			}
		}
	}
	return nil
}
