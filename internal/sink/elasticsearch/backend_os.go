package elasticsearch

import (
	"bytes"
	"context"
	"net/http"
	"time"

	"github.com/opensearch-project/opensearch-go/v4"
	"github.com/opensearch-project/opensearch-go/v4/opensearchapi"
)

// osBackend talks to OpenSearch through the official opensearch-go client
// (opensearchapi requests).
type osBackend struct {
	client *opensearch.Client
}

var _ backend = (*osBackend)(nil)

func newOSBackend(cfg Config, conn *connection) (*osBackend, error) {
	c, err := opensearch.NewClient(opensearch.Config{
		Addresses:    cfg.URLs,
		Username:     cfg.Username,
		Password:     cfg.Password,
		Transport:    conn.transport,
		DisableRetry: true, // the sink retries, with backoff and metrics
	})
	if err != nil {
		return nil, err
	}
	return &osBackend{client: c}, nil
}

func (b *osBackend) do(ctx context.Context, method string, req opensearch.Request) (*response, error) {
	res, err := opensearch.Do[opensearch.NoBody](ctx, b.client, method, req, nil)
	if res == nil {
		return nil, err
	}
	if err != nil { // a response whose body could not be read
		if res.Body != nil {
			res.Body.Close()
		}
		return nil, err
	}
	return readResponse(res.StatusCode, res.Body)
}

func (b *osBackend) bulk(ctx context.Context, body []byte) (*response, error) {
	return b.do(ctx, http.MethodPost, opensearchapi.BulkReq{
		Body:   bytes.NewReader(body),
		Params: opensearchapi.BulkParams{FilterPath: bulkFilterPath},
	})
}

func (b *osBackend) indexExists(ctx context.Context, index string) (*response, error) {
	return b.do(ctx, http.MethodHead, opensearchapi.IndicesExistsReq{Indices: []string{index}})
}

func (b *osBackend) createIndex(ctx context.Context, index string, body []byte) (*response, error) {
	return b.do(ctx, http.MethodPut, opensearchapi.IndicesCreateReq{Index: index, Body: bytes.NewReader(body)})
}

func (b *osBackend) refresh(ctx context.Context, index string) (*response, error) {
	return b.do(ctx, http.MethodPost, opensearchapi.IndicesRefreshReq{Index: []string{index}})
}

func (b *osBackend) search(ctx context.Context, index string, body []byte, keepAlive time.Duration) (*response, error) {
	return b.do(ctx, http.MethodPost, &opensearchapi.SearchReq{
		Indices: []string{index},
		Body:    bytes.NewReader(body),
		Params:  opensearchapi.SearchParams{Scroll: keepAlive},
	})
}

func (b *osBackend) scroll(ctx context.Context, scrollID string, keepAlive time.Duration) (*response, error) {
	return b.do(ctx, http.MethodPost, opensearchapi.ScrollGetReq{
		ScrollID: scrollID,
		Params:   opensearchapi.ScrollGetParams{Scroll: keepAlive},
	})
}

func (b *osBackend) clearScroll(ctx context.Context, scrollID string) (*response, error) {
	return b.do(ctx, http.MethodDelete, opensearchapi.ScrollDeleteReq{ScrollIDs: []string{scrollID}})
}

func (b *osBackend) mget(ctx context.Context, body []byte) (*response, error) {
	return b.do(ctx, http.MethodPost, opensearchapi.MGetReq{Body: bytes.NewReader(body)})
}

func (b *osBackend) close() error {
	return b.client.Close()
}
