package elasticsearch

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// logEvery is the shortest interval between two retry log lines of the same
// level: an outage of hours logs a line every 10s, not one per attempt.
const logEvery = 10 * time.Second

// backoff returns the delay before retry number attempt (1-based):
// exponential from initial to maxDelay, with "equal jitter" (between half
// and all of the exponential delay) so that writers do not retry in step.
func backoff(initial, maxDelay time.Duration, attempt int) time.Duration {
	d := maxDelay
	if attempt < 31 {
		if e := initial << (attempt - 1); e > 0 && e < maxDelay {
			d = e
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// logLimiter lets one log line through per interval.
type logLimiter struct {
	every time.Duration
	last  atomic.Int64 // unix nanoseconds of the last line
}

func (l *logLimiter) allow() bool {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if last != 0 && now-last < int64(l.every) {
		return false
	}
	return l.last.CompareAndSwap(last, now)
}

// retryWait records a failed attempt (metric, rate-limited log line) and
// waits for the backoff delay. It returns an error only when ctx is done;
// the error names what was being retried and its last failure.
func (s *Sink) retryWait(ctx context.Context, what string, attempt int, re *requestError) error {
	s.metrics.retries.WithLabelValues(re.Cause).Inc()
	switch {
	case re.authFailure():
		if s.errorLog.allow() {
			s.log.Error("Elasticsearch/OpenSearch refuses the sink's credentials; retrying until fixed",
				"op", what, "attempt", attempt, "status", re.Status, "error", re.Reason,
				"hint", "check username/password or api_key, and that the user may create indexes and write to them")
		}
	case re.Cause == "unexpected_status" || re.Cause == "index_config":
		if s.errorLog.allow() {
			s.log.Error("unexpected answer from Elasticsearch/OpenSearch; retrying",
				"op", what, "attempt", attempt, "status", re.Status, "error", re.Reason,
				"hint", "check that urls point at the cluster and not at a proxy or another service")
		}
	default:
		if s.warnLog.allow() {
			s.log.Warn("Elasticsearch/OpenSearch request failed; retrying",
				"op", what, "attempt", attempt, "cause", re.Cause, "error", re.Error())
		}
	}
	if err := sleep(ctx, backoff(s.cfg.RetryInitial, s.cfg.RetryMax, attempt)); err != nil {
		return fmt.Errorf("%s: gave up after %d attempts (last error: %v): %w", what, attempt, re, err)
	}
	return nil
}
