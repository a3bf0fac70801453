package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"time"
)

// Helpers of types_test.go: reading documents together with _ignored,
// and comparing them field by field with hand-written JSON.

// typeStoredDoc is a document as the cluster holds it.
type typeStoredDoc struct {
	Source  json.RawMessage // _source, byte for byte as tidegate sent it
	Ignored []string        // _ignored: fields kept in _source but not indexed
}

// searchTypeDocs reads every document of index (after a refresh) with its
// _source and _ignored. A missing index holds no documents.
func searchTypeDocs(ctx context.Context, baseURL, index string) (map[string]typeStoredDoc, error) {
	path := baseURL + "/" + url.PathEscape(index)
	if code, body, err := typeHTTP(ctx, http.MethodPost, path+"/_refresh", nil); err != nil {
		return nil, err
	} else if code == http.StatusNotFound {
		return map[string]typeStoredDoc{}, nil
	} else if code != http.StatusOK {
		return nil, fmt.Errorf("refreshing %s: HTTP %d: %s", index, code, body)
	}
	query := `{"size":1000,"sort":["_doc"],"query":{"match_all":{}}}`
	code, body, err := typeHTTP(ctx, http.MethodPost, path+"/_search", []byte(query))
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("searching %s: HTTP %d: %s", index, code, body)
	}
	var out struct {
		Hits struct {
			Hits []struct {
				ID      string          `json:"_id"`
				Source  json.RawMessage `json:"_source"`
				Ignored []string        `json:"_ignored"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("reading the search answer of %s: %w", index, err)
	}
	docs := make(map[string]typeStoredDoc, len(out.Hits.Hits))
	for _, h := range out.Hits.Hits {
		sort.Strings(h.Ignored)
		docs[h.ID] = typeStoredDoc{Source: h.Source, Ignored: h.Ignored}
	}
	return docs, nil
}

func typeHTTP(ctx context.Context, method, u string, body []byte) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// decodeExactJSON parses JSON keeping numbers as their literal text, so that
// 1.50 differs from 1.5 and -0.0 from -0.
func decodeExactJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	return v, nil
}

// typeWantDoc is the expected content of one document.
type typeWantDoc struct {
	label   string            // what the row is, for messages
	fields  map[string]string // column -> expected JSON value
	order   []string          // columns in table order
	ignored []string          // expected _ignored, sorted
}

// diffTypeDoc compares a stored document with its expectation field by field
// and returns one line per difference.
func diffTypeDoc(id string, want typeWantDoc, got typeStoredDoc, checkIgnored bool) []string {
	var diffs []string
	src, err := decodeExactJSON(got.Source)
	if err != nil {
		return []string{fmt.Sprintf("doc %s (%s): _source is not JSON (%v): %s", id, want.label, err, got.Source)}
	}
	obj, ok := src.(map[string]any)
	if !ok {
		return []string{fmt.Sprintf("doc %s (%s): _source is not an object: %s", id, want.label, got.Source)}
	}
	for _, col := range want.order {
		exp, err := decodeExactJSON([]byte(want.fields[col]))
		if err != nil {
			diffs = append(diffs, fmt.Sprintf("doc %s (%s) %s: the test's expected value %s is not JSON: %v", id, want.label, col, want.fields[col], err))
			continue
		}
		g, present := obj[col]
		if !present {
			diffs = append(diffs, fmt.Sprintf("doc %s (%s) %s: missing, want %s", id, want.label, col, want.fields[col]))
			continue
		}
		if !reflect.DeepEqual(exp, g) {
			gb, _ := json.Marshal(g)
			diffs = append(diffs, fmt.Sprintf("doc %s (%s) %s:\n      want %s\n      got  %s", id, want.label, col, want.fields[col], gb))
		}
	}
	for col := range obj {
		if _, ok := want.fields[col]; !ok {
			diffs = append(diffs, fmt.Sprintf("doc %s (%s): unexpected field %s", id, want.label, col))
		}
	}
	if checkIgnored && strings.Join(got.Ignored, " ") != strings.Join(want.ignored, " ") {
		diffs = append(diffs, fmt.Sprintf("doc %s (%s): _ignored (stored in _source but not indexed) = %v, want %v", id, want.label, got.Ignored, want.ignored))
	}
	return diffs
}

// withoutIDColumn returns a document's source with its leading "id" column
// removed ({"id":101,"c":...} -> {"c":...}), to compare the bytes of
// documents that differ only by key.
func withoutIDColumn(src []byte) ([]byte, error) {
	if !bytes.HasPrefix(src, []byte(`{"id":`)) {
		return nil, fmt.Errorf("document does not start with the id column: %.40s", src)
	}
	i := bytes.IndexByte(src, ',')
	if i < 0 {
		return nil, fmt.Errorf("document has only an id: %s", src)
	}
	return append([]byte{'{'}, src[i+1:]...), nil
}
