package elasticsearch

import (
	"bytes"
	"context"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// esBackend talks to Elasticsearch through the official go-elasticsearch
// client (esapi requests).
type esBackend struct {
	client *elasticsearch.Client
	// bulkParams: include_source_on_error=false where supported (8.18+),
	// so that error reasons do not quote documents.
	noSourceOnError bool
}

var _ backend = (*esBackend)(nil)

func newESBackend(cfg Config, conn *connection) (*esBackend, error) {
	c, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses:         cfg.URLs,
		Username:          cfg.Username,
		Password:          cfg.Password,
		APIKey:            cfg.APIKey,
		Transport:         conn.transport,
		DisableRetry:      true, // the sink retries, with backoff and metrics
		DisableMetaHeader: true,
	})
	if err != nil {
		return nil, err
	}
	return &esBackend{
		client:          c,
		noSourceOnError: conn.info.atLeast(8, 18),
	}, nil
}

func (b *esBackend) bulk(ctx context.Context, body []byte) (*response, error) {
	req := esapi.BulkRequest{Body: bytes.NewReader(body), FilterPath: bulkFilterPath}
	if b.noSourceOnError {
		f := false
		req.IncludeSourceOnError = &f
	}
	return esDo(req.Do(ctx, b.client))
}

func (b *esBackend) indexExists(ctx context.Context, index string) (*response, error) {
	return esDo(esapi.IndicesExistsRequest{Index: []string{index}}.Do(ctx, b.client))
}

func (b *esBackend) createIndex(ctx context.Context, index string, body []byte) (*response, error) {
	return esDo(esapi.IndicesCreateRequest{Index: index, Body: bytes.NewReader(body)}.Do(ctx, b.client))
}

func (b *esBackend) refresh(ctx context.Context, index string) (*response, error) {
	return esDo(esapi.IndicesRefreshRequest{Index: []string{index}}.Do(ctx, b.client))
}

func (b *esBackend) search(ctx context.Context, index string, body []byte, keepAlive time.Duration) (*response, error) {
	return esDo(esapi.SearchRequest{Index: []string{index}, Body: bytes.NewReader(body), Scroll: keepAlive}.Do(ctx, b.client))
}

func (b *esBackend) scroll(ctx context.Context, scrollID string, keepAlive time.Duration) (*response, error) {
	return esDo(esapi.ScrollRequest{ScrollID: scrollID, Scroll: keepAlive}.Do(ctx, b.client))
}

func (b *esBackend) clearScroll(ctx context.Context, scrollID string) (*response, error) {
	return esDo(esapi.ClearScrollRequest{ScrollID: []string{scrollID}}.Do(ctx, b.client))
}

func (b *esBackend) mget(ctx context.Context, body []byte) (*response, error) {
	return esDo(esapi.MgetRequest{Body: bytes.NewReader(body)}.Do(ctx, b.client))
}

func (b *esBackend) close() error {
	return b.client.Close(context.Background())
}

func esDo(res *esapi.Response, err error) (*response, error) {
	if err != nil {
		return nil, err
	}
	return readResponse(res.StatusCode, res.Body)
}
