package elasticsearch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/tidegate/tidegate/internal/sink"
)

// This file is the one place where responses and transport errors are
// classified as success, stale, retryable or permanent.

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("elasticsearch sink is closed")

// maxReasonLen bounds the error text kept from a response: reasons can quote
// the offending document.
const maxReasonLen = 2048

// esError is the "error" object of an Elasticsearch or OpenSearch response.
type esError struct {
	Type     string   `json:"type"`
	Reason   string   `json:"reason"`
	CausedBy *esError `json:"caused_by"`
}

// String renders "<type>: <reason> (caused by <type>: <reason>)".
func (e *esError) String() string {
	if e == nil {
		return ""
	}
	var b strings.Builder
	for depth, cur := 0, e; cur != nil && depth < 4; depth, cur = depth+1, cur.CausedBy {
		if depth > 0 {
			b.WriteString(" (caused by ")
		}
		b.WriteString(cur.Type)
		if cur.Reason != "" {
			b.WriteString(": ")
			b.WriteString(cur.Reason)
		}
	}
	for depth, cur := 1, e.CausedBy; cur != nil && depth < 4; depth, cur = depth+1, cur.CausedBy {
		b.WriteByte(')')
	}
	return truncateReason(b.String())
}

func truncateReason(s string) string {
	if len(s) <= maxReasonLen {
		return s
	}
	cut := maxReasonLen
	for cut > 0 && s[cut]&0xC0 == 0x80 { // do not split a UTF-8 sequence
		cut--
	}
	return s[:cut] + "…"
}

// errorBody is the body of a failed (non-2xx) request. "error" is an object
// on Elasticsearch 7.10+ and OpenSearch, but a plain string for a few
// endpoints (e.g. "no handler found"), and proxies answer with anything.
type errorBody struct {
	Error  json.RawMessage `json:"error"`
	Status int             `json:"status"`
}

// parseError extracts the error of a failed response body.
func parseError(body []byte) *esError {
	var eb errorBody
	if json.Unmarshal(body, &eb) != nil || len(eb.Error) == 0 {
		s := strings.TrimSpace(string(body))
		if s == "" {
			return nil
		}
		return &esError{Type: "unparsed_response", Reason: truncateReason(s)}
	}
	var e esError
	if json.Unmarshal(eb.Error, &e) == nil && e.Type != "" {
		return &e
	}
	var s string
	if json.Unmarshal(eb.Error, &s) == nil {
		return &esError{Type: "error", Reason: s}
	}
	return &esError{Type: "unparsed_error", Reason: truncateReason(string(eb.Error))}
}

// verdict is what to do with a whole request.
type verdict int

const (
	// verdictOK: the request was processed; look at the items.
	verdictOK verdict = iota
	// verdictRetry: send the same request again after a backoff.
	verdictRetry
	// verdictSplit: the request as a whole was rejected because of its
	// content (too large, one invalid operation): split it in halves; a
	// single operation that is rejected is a permanent failure.
	verdictSplit
)

// requestError describes a failed request.
type requestError struct {
	Status int    // 0 for transport errors
	Reason string // for logs and permanent errors
	// Cause is the metric label: connection, timeout, status_429,
	// status_5xx, auth, too_large, rejected, unexpected_status, bad_response.
	Cause string
	Err   error // transport error, when there was no response
}

func (e *requestError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("HTTP %d: %s", e.Status, e.Reason)
	}
	return e.Reason
}

func (e *requestError) Unwrap() error { return e.Err }

// authFailure reports whether the error is a 401/403 that an operator must
// fix (credentials or privileges).
func (e *requestError) authFailure() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

// splittable400 lists the error types with which Elasticsearch rejects a
// whole bulk request because of one of its operations (an _id that is too
// long, an unparsable action line). Any other 4xx is assumed to be about the
// request's destination (a proxy, a missing privilege) and is retried rather
// than sending every event of the request to the dead-letter queue.
var splittable400 = map[string]bool{
	"action_request_validation_exception": true,
	"illegal_argument_exception":          true,
	"x_content_parse_exception":           true,
	"json_parse_exception":                true,
	"parse_exception":                     true,
	"mapper_parsing_exception":            true,
	"document_parsing_exception":          true,
}

// classifyRequest decides what to do with the outcome of one request: parent
// is the caller's context (a request that ended because the caller gave up
// is not a failure of the cluster), status and body the response when there
// was one.
func classifyRequest(parent context.Context, status int, body []byte, err error) (verdict, *requestError) {
	if err != nil {
		re := &requestError{Reason: err.Error(), Cause: "connection", Err: err}
		if parent.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || isTimeout(err)) {
			re.Cause = "timeout"
		}
		return verdictRetry, re
	}
	if status >= 200 && status < 300 {
		return verdictOK, nil
	}
	e := parseError(body)
	re := &requestError{Status: status, Reason: e.String()}
	if re.Reason == "" {
		re.Reason = http.StatusText(status)
	}
	switch {
	case status == http.StatusRequestEntityTooLarge:
		re.Cause = "too_large"
		re.Reason = "request body larger than the cluster's http.max_content_length"
		return verdictSplit, re
	case status == http.StatusTooManyRequests:
		re.Cause = "status_429"
		return verdictRetry, re
	case status >= 500 || status == http.StatusRequestTimeout:
		re.Cause = "status_5xx"
		return verdictRetry, re
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		re.Cause = "auth"
		return verdictRetry, re
	case status == http.StatusBadRequest && e != nil && splittable400[e.Type]:
		re.Cause = "rejected"
		return verdictSplit, re
	default:
		re.Cause = "unexpected_status"
		return verdictRetry, re
	}
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// itemOutcome is the fate of one operation of a bulk request.
type itemOutcome uint8

const (
	itemOK itemOutcome = iota // applied, stale (409) or a delete of nothing
	itemRetry
	itemIndexMissing // the index vanished: create it again, then retry
	itemPermanent
	itemStale // an opProbe answered 409: a tombstone at the same or a newer version
)

// retryableItemTypes are per-item errors that go away by themselves (or
// after an operator acts) and must not send events to the dead-letter queue.
var retryableItemTypes = map[string]bool{
	"es_rejected_execution_exception":         true,
	"unavailable_shards_exception":            true,
	"no_shard_available_action_exception":     true,
	"circuit_breaking_exception":              true,
	"process_cluster_event_timeout_exception": true,
	"node_not_connected_exception":            true,
	"node_closed_exception":                   true,
	"connect_transport_exception":             true,
	"receive_timeout_transport_exception":     true,
	"shard_not_in_primary_mode_exception":     true,
	"primary_missing_action_exception":        true,
	"retry_on_primary_exception":              true,
	// A closed index or a write block (index.blocks.write, read_only,
	// read_only_allow_delete after a disk watermark) is an operator's doing
	// and is undone by an operator: retry until then instead of moving every
	// event of the index to the dead-letter queue.
	"index_closed_exception":  true,
	"cluster_block_exception": true,
}

// classifyItem classifies one bulk response item of an operation of kind k.
func classifyItem(k opKind, it *bulkItem) (itemOutcome, error) {
	if it == nil {
		return itemRetry, errors.New("bulk response has no result for this operation")
	}
	if it.Status >= 200 && it.Status < 300 && it.Error == nil {
		return itemOK, nil
	}
	var typ string
	if it.Error != nil {
		typ = it.Error.Type
	}
	switch {
	case it.Status == http.StatusConflict && k == opProbe:
		return itemStale, nil
	case it.Status == http.StatusConflict && (typ == "version_conflict_engine_exception" || typ == ""):
		return itemOK, nil // stale: the index holds the same or a newer version
	case it.Status == http.StatusNotFound && (k == opDelete || k == opProbe):
		return itemOK, nil // nothing to delete (document or index missing)
	case typ == "index_not_found_exception":
		return itemIndexMissing, errors.New(it.Error.String())
	case it.Status == http.StatusTooManyRequests || it.Status >= 500 || retryableItemTypes[typ]:
		return itemRetry, fmt.Errorf("HTTP %d: %s", it.Status, it.Error.String())
	}
	reason := it.Error.String()
	if reason == "" {
		reason = fmt.Sprintf("HTTP %d without an error description", it.Status)
	}
	return itemPermanent, &sink.PermanentError{Reason: reason, Status: it.Status}
}

// classifyGetError classifies the error of one document of an _mget
// response (a read has no per-document status): a missing index, a
// transient state to retry (as for bulk items; refused privileges are
// retried too, as for requests), or a permanent failure (an invalid index
// name, ...).
func classifyGetError(e *esError) itemOutcome {
	switch {
	case e.Type == "index_not_found_exception":
		return itemIndexMissing
	case retryableItemTypes[e.Type] || e.Type == "security_exception":
		return itemRetry
	}
	return itemPermanent
}

// permanent builds the PermanentError of an event that is rejected before
// it is sent.
func permanent(format string, args ...any) error {
	return &sink.PermanentError{Reason: fmt.Sprintf(format, args...)}
}
