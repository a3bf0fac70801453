package elasticsearch

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/tidegate/tidegate/event"
)

// A truncate deletes every document of the table's index whose version is
// not newer than the truncate's: the index is refreshed (so that documents
// written just before are visible), scrolled in _doc order, and each page is
// deleted with bulk deletes carrying version=<truncate version> and
// version_type=external_gte. Documents written after the truncate (a higher
// version, e.g. when a batch is replayed) survive, and the tombstones keep
// older replays from resurrecting rows.
//
// This is what _delete_by_query does on the server, plus the version guard;
// it also works on clusters without the reindex module.

const (
	scrollKeepAlive = 5 * time.Minute
	scrollPageSize  = 1000
)

// truncate applies a truncate or sweep event (a sweep is a truncate that
// spares the rows its snapshot rewrote, and is never ignored). It sets *result to a permanent error
// when the event cannot be applied and returns an error only when ctx is
// done.
func (s *Sink) truncate(ctx context.Context, e *event.Event, result *error) error {
	if s.cfg.Truncate == TruncateIgnore && e.GetOp() == event.Op_OP_TRUNCATE {
		return nil // the pipeline counts skipped truncates
	}
	index, err := s.namer.name(e.GetOrigin())
	if err != nil {
		*result = err
		return nil
	}
	v := e.GetVersion()
	switch {
	case v == 0:
		*result = permanent("truncate event has no version: it cannot be ordered against the rows it deletes")
		return nil
	case v > math.MaxInt64:
		*result = permanent("version %d is larger than Elasticsearch's maximum external version %d", v, int64(math.MaxInt64))
		return nil
	}
	for {
		restart, err := s.truncatePass(ctx, index, v, result)
		if err != nil {
			return fmt.Errorf("truncating index %s: %w", index, err)
		}
		if !restart {
			return nil
		}
	}
}

// scrollPage is one page of a scroll search.
type scrollPage struct {
	ScrollID string `json:"_scroll_id"`
	Hits     struct {
		Hits []scrollHit `json:"hits"`
	} `json:"hits"`
}

type scrollHit struct {
	Index   string `json:"_index"`
	ID      string `json:"_id"`
	Version int64  `json:"_version"`
}

// truncatePass deletes what one scroll over the index finds. restart is set
// when the scroll was lost (it expired during a long outage) and the pass
// must begin again; deleting again is harmless.
func (s *Sink) truncatePass(ctx context.Context, index string, v uint64, result *error) (restart bool, err error) {
	status, _, err := s.call(ctx, "refreshing index "+index, func(ctx context.Context) (*response, error) {
		return s.backend.refresh(ctx, index)
	}, http.StatusNotFound)
	if err != nil || status == http.StatusNotFound {
		return false, err // no index: nothing to delete
	}
	size := min(scrollPageSize, s.cfg.BulkMaxActions)
	query := []byte(`{"size":` + strconv.Itoa(size) + `,"sort":["_doc"],"_source":false,"version":true,"query":{"match_all":{}}}`)
	status, body, err := s.call(ctx, "searching index "+index, func(ctx context.Context) (*response, error) {
		return s.backend.search(ctx, index, query, scrollKeepAlive)
	}, http.StatusNotFound)
	if err != nil || status == http.StatusNotFound {
		return false, err
	}
	var page scrollPage
	if err := json.Unmarshal(body, &page); err != nil {
		return false, fmt.Errorf("decoding search response: %w", err)
	}
	scrollID := page.ScrollID
	defer func() { s.clearScroll(ctx, scrollID) }()
	for len(page.Hits.Hits) > 0 {
		if err := s.deleteHits(ctx, page.Hits.Hits, v, result); err != nil {
			return false, err
		}
		status, body, err := s.call(ctx, "scrolling index "+index, func(ctx context.Context) (*response, error) {
			return s.backend.scroll(ctx, scrollID, scrollKeepAlive)
		}, http.StatusNotFound)
		if err != nil {
			return false, err
		}
		if status == http.StatusNotFound { // search_context_missing_exception
			s.log.Warn("truncate: the scroll expired; starting the pass again", "index", index)
			return true, nil
		}
		page = scrollPage{}
		if err := json.Unmarshal(body, &page); err != nil {
			return false, fmt.Errorf("decoding scroll response: %w", err)
		}
		if page.ScrollID != "" {
			scrollID = page.ScrollID
		}
	}
	// Like _delete_by_query?refresh=true: make the deletions visible.
	_, _, err = s.call(ctx, "refreshing index "+index, func(ctx context.Context) (*response, error) {
		return s.backend.refresh(ctx, index)
	}, http.StatusNotFound)
	return false, err
}

// deleteHits deletes the hits not newer than version v, retrying items that
// fail with a retryable error. A permanent failure becomes the truncate's
// result (the first one) and the other deletions go on.
func (s *Sink) deleteHits(ctx context.Context, hits []scrollHit, v uint64, result *error) error {
	ops := make([]op, 0, len(hits))
	for _, h := range hits {
		if h.Version <= int64(v) {
			ops = append(ops, op{kind: opDelete, index: h.Index, id: h.ID, version: v})
		}
	}
	return s.sendUntilSettled(ctx, "truncate deletes", ops, func(_ int32, res opResult) bool {
		switch res.outcome {
		case itemRetry, itemIndexMissing:
			return true
		case itemPermanent:
			if *result == nil {
				*result = res.err
			}
		}
		return false
	})
}

// call runs one non-bulk request until it succeeds or answers one of the
// accepted statuses, retrying anything else with backoff.
func (s *Sink) call(ctx context.Context, what string, fn func(context.Context) (*response, error), accept ...int) (int, []byte, error) {
	for attempt := 1; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		res, err := fn(rctx)
		cancel()
		var status int
		var body []byte
		if res != nil {
			status, body = res.status, res.body
		}
		if err == nil {
			if status >= 200 && status < 300 {
				return status, body, nil
			}
			for _, a := range accept {
				if status == a {
					return status, body, nil
				}
			}
		}
		v, re := classifyRequest(ctx, status, body, err)
		if ctx.Err() != nil {
			return 0, nil, fmt.Errorf("%s: %w", what, ctx.Err())
		}
		if v == verdictSplit {
			re.Cause = "unexpected_status"
		}
		if err := s.retryWait(ctx, what, attempt, re); err != nil {
			return 0, nil, err
		}
	}
}

// clearScroll releases a scroll context, best effort (it expires anyway).
func (s *Sink) clearScroll(ctx context.Context, scrollID string) {
	if scrollID == "" {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := s.backend.clearScroll(cctx, scrollID); err != nil {
		s.log.Debug("truncate: clearing the scroll failed; it will expire", "error", err)
	}
}
