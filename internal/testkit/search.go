package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Search is a minimal HTTP client for reading an Elasticsearch/OpenSearch
// cluster in tests (the product under test writes with the official clients).
type Search struct {
	URL    string
	client *http.Client
}

// NewSearch returns a reader for the cluster at baseURL.
func NewSearch(baseURL string) *Search {
	return &Search{URL: baseURL, client: &http.Client{Timeout: 60 * time.Second}}
}

func (s *Search) do(ctx context.Context, method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		return resp.StatusCode, json.Unmarshal(data, out)
	}
	return resp.StatusCode, nil
}

// GetJSON reads path (e.g. "/_stats/merge") into out.
func (s *Search) GetJSON(ctx context.Context, path string, out any) error {
	_, err := s.do(ctx, http.MethodGet, path, nil, out)
	return err
}

// Refresh makes every write to index visible to searches.
func (s *Search) Refresh(ctx context.Context, index string) error {
	_, err := s.do(ctx, http.MethodPost, "/"+url.PathEscape(index)+"/_refresh", nil, nil)
	return err
}

// DeleteIndex removes an index (missing is fine).
func (s *Search) DeleteIndex(ctx context.Context, index string) error {
	code, err := s.do(ctx, http.MethodDelete, "/"+url.PathEscape(index), nil, nil)
	if code == http.StatusNotFound {
		return nil
	}
	return err
}

// Count returns the number of documents in index.
func (s *Search) Count(ctx context.Context, index string) (int64, error) {
	var out struct {
		Count int64 `json:"count"`
	}
	_, err := s.do(ctx, http.MethodGet, "/"+url.PathEscape(index)+"/_count", nil, &out)
	return out.Count, err
}

// Doc is one stored document.
type Doc struct {
	ID      string          `json:"_id"`
	Version int64           `json:"_version"`
	Source  json.RawMessage `json:"_source"`
}

// AllDocs reads every document of index (refreshing first) with the scroll API.
// A missing index holds no documents.
func (s *Search) AllDocs(ctx context.Context, index string) (map[string]Doc, error) {
	code, err := s.do(ctx, http.MethodPost, "/"+url.PathEscape(index)+"/_refresh", nil, nil)
	if code == http.StatusNotFound {
		return map[string]Doc{}, nil
	}
	if err != nil {
		return nil, err
	}
	type page struct {
		ScrollID string `json:"_scroll_id"`
		Hits     struct {
			Hits []Doc `json:"hits"`
		} `json:"hits"`
	}
	var p page
	if _, err := s.do(ctx, http.MethodPost, "/"+url.PathEscape(index)+"/_search?scroll=2m&version=true",
		map[string]any{"size": 5000, "sort": []string{"_doc"}}, &p); err != nil {
		return nil, err
	}
	docs := map[string]Doc{}
	for len(p.Hits.Hits) > 0 {
		for _, d := range p.Hits.Hits {
			docs[d.ID] = d
		}
		id := p.ScrollID
		p = page{}
		if _, err := s.do(ctx, http.MethodPost, "/_search/scroll", map[string]any{"scroll": "2m", "scroll_id": id}, &p); err != nil {
			return nil, err
		}
	}
	if p.ScrollID != "" {
		_, _ = s.do(ctx, http.MethodDelete, "/_search/scroll", map[string]any{"scroll_id": p.ScrollID}, nil)
	}
	return docs, nil
}

// Get returns one document's source, or nil when absent.
func (s *Search) Get(ctx context.Context, index, id string) (json.RawMessage, error) {
	var out struct {
		Found  bool            `json:"found"`
		Source json.RawMessage `json:"_source"`
	}
	code, err := s.do(ctx, http.MethodGet, "/"+url.PathEscape(index)+"/_doc/"+url.PathEscape(id), nil, &out)
	if code == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return out.Source, nil
}
