package elasticsearch

import (
	"context"
	"io"
	"time"
)

// backend is what the sink needs from a cluster. It is implemented once per
// flavor over the official client (backend_es.go, backend_os.go), so that the
// rest of the package does not know which flavor it talks to.
//
// Every method returns the HTTP status and body of the response; err is
// non-nil only when there was no response (connection refused, reset,
// timeout, ctx done). Judging the status is left to errors.go.
type backend interface {
	// bulk sends an index-agnostic NDJSON body to POST /_bulk; the response
	// keeps only "errors" and the status/error of each item.
	bulk(ctx context.Context, body []byte) (*response, error)
	// indexExists is HEAD /<index>: 200 or 404.
	indexExists(ctx context.Context, index string) (*response, error)
	// createIndex is PUT /<index> with a {"settings","mappings"} body.
	createIndex(ctx context.Context, index string, body []byte) (*response, error)
	// refresh is POST /<index>/_refresh.
	refresh(ctx context.Context, index string) (*response, error)
	// search starts a scroll over <index> with the given body.
	search(ctx context.Context, index string, body []byte, keepAlive time.Duration) (*response, error)
	// scroll fetches the next page of a scroll.
	scroll(ctx context.Context, scrollID string, keepAlive time.Duration) (*response, error)
	// clearScroll releases a scroll context.
	clearScroll(ctx context.Context, scrollID string) (*response, error)
	// mget is POST /_mget with a {"docs":[{"_index","_id"}...]} body, in
	// real time (the documents written last are seen without a refresh).
	mget(ctx context.Context, body []byte) (*response, error)
	// close releases the client.
	close() error
}

// response is a buffered HTTP response.
type response struct {
	status int
	body   []byte
}

// readResponse buffers and closes a response body.
func readResponse(status int, body io.ReadCloser) (*response, error) {
	if body == nil {
		return &response{status: status}, nil
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	return &response{status: status, body: b}, nil
}

// bulkFilterPath trims bulk responses to what the sink reads.
var bulkFilterPath = []string{"errors", "items.*.status", "items.*.error"}
