package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/tidegate/tidegate/internal/testkit"
)

// copyLimit streams every shop table with COPY ... TO STDOUT into
// io.Discard: the rate at which PostgreSQL can hand out the rows.
func copyLimit(ctx context.Context, conn *pgx.Conn) (rows int64, elapsed time.Duration, err error) {
	start := time.Now()
	for _, tb := range testkit.ShopTables {
		tag, err := conn.PgConn().CopyTo(ctx, io.Discard, "COPY (SELECT * FROM "+tb.Name+") TO STDOUT")
		if err != nil {
			return 0, 0, fmt.Errorf("copying %s: %w", tb.Name, err)
		}
		rows += tag.RowsAffected()
	}
	return rows, time.Since(start), nil
}

// Sink defaults of internal/sink/elasticsearch (DefaultBulkMaxBytes,
// DefaultBulkMaxActions, DefaultConcurrency).
const (
	bulkMaxBytes    = 5 << 20
	bulkMaxActions  = 5000
	bulkConcurrency = 2
)

// renderBulk reads every shop table with the text decoding tidegate uses
// (pgdecode + event.AppendRowJSON, as internal/testkit's tableDocs does)
// and renders bulk request bodies of index actions with _id, split like
// the sink splits them. indexPrefix + table name is the target index.
func renderBulk(ctx context.Context, conn *pgx.Conn, indexPrefix string) (bodies [][]byte, docs int, err error) {
	var cur []byte
	n := 0
	flush := func() {
		if n > 0 {
			bodies = append(bodies, cur)
		}
		cur, n = nil, 0
	}
	for _, tb := range testkit.ShopTables {
		index, _ := json.Marshal(indexPrefix + tb.Name)
		err := testkit.TableRows(ctx, conn, tb.Name, tb.Key, func(id string, doc []byte) {
			line := appendIndexAction(make([]byte, 0, len(doc)+len(index)+len(id)+40), index, id)
			line = append(line, doc...)
			line = append(line, '\n')
			if n > 0 && (n >= bulkMaxActions || len(cur)+len(line) > bulkMaxBytes) {
				flush()
			}
			cur = append(cur, line...)
			n++
			docs++
		})
		if err != nil {
			return nil, 0, err
		}
	}
	flush()
	return bodies, docs, nil
}

// appendIndexAction appends the action line of an index operation with
// _id into index (already a JSON string); the document follows it.
func appendIndexAction(dst, index []byte, id string) []byte {
	idJSON, _ := json.Marshal(id)
	dst = append(dst, `{"index":{"_index":`...)
	dst = append(dst, index...)
	dst = append(dst, `,"_id":`...)
	dst = append(dst, idJSON...)
	return append(dst, "}}\n"...)
}

// bulkLimit POSTs the pre-rendered bodies to /_bulk, bulkConcurrency at a
// time, and fails on any item error.
func bulkLimit(ctx context.Context, esURL string, bodies [][]byte) (time.Duration, error) {
	client := &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 2 * bulkConcurrency}}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(bulkConcurrency)
	start := time.Now()
	for _, body := range bodies {
		g.Go(func() error { return postBulk(gctx, client, esURL, body) })
	}
	err := g.Wait()
	return time.Since(start), err
}

// postBulk POSTs one NDJSON body to /_bulk and fails on any item error.
func postBulk(ctx context.Context, client *http.Client, esURL string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, esURL+"/_bulk", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("sending bulk request: %w", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bulk request: HTTP %d: %.300s", resp.StatusCode, data)
	}
	var r struct {
		Errors bool `json:"errors"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("decoding bulk response: %w", err)
	}
	if r.Errors {
		return fmt.Errorf("bulk request had item errors: %.500s", data)
	}
	return nil
}

// createIndex creates an index with the settings the bench gives tidegate.
func createIndex(ctx context.Context, esURL, index string) error {
	body := strings.NewReader(`{"settings":{"refresh_interval":"1s"}}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, esURL+"/"+index, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("creating index %s: %w", index, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("creating index %s: HTTP %d: %.300s", index, resp.StatusCode, data)
	}
	return nil
}

const pgRecvLogical = "/usr/lib/postgresql/15/bin/pg_recvlogical"

// createDecodingSlot creates a test_decoding slot; the changes made after
// it are what recvLogical later drains.
func createDecodingSlot(ctx context.Context, conn *pgx.Conn, slot string) error {
	_, err := conn.Exec(ctx, "SELECT pg_create_logical_replication_slot($1, 'test_decoding')", slot)
	if err != nil {
		return fmt.Errorf("creating slot %s: %w", slot, err)
	}
	return nil
}

// endLSN returns the current WAL position, then writes a non-transactional
// logical message after it so that the decoder sees a record past the
// position and pg_recvlogical --endpos stops without waiting on a keepalive.
func endLSN(ctx context.Context, conn *pgx.Conn) (string, error) {
	var lsn string
	if err := conn.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_logical_emit_message(false, 'tidegate-bench', 'end')"); err != nil {
		return "", err
	}
	return lsn, nil
}

// recvLogical drains slot to /dev/null with pg_recvlogical up to endpos
// and returns how long it took (process start to exit).
func recvLogical(ctx context.Context, dsn, slot, endpos string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, pgRecvLogical, "-d", dsn, "--slot", slot, "--start",
		"--endpos", endpos, "--no-loop", "-f", "/dev/null")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = os.Stdout
	start := time.Now()
	err := cmd.Run()
	if err != nil {
		return 0, fmt.Errorf("pg_recvlogical: %v: %s", err, stderr.String())
	}
	return time.Since(start), nil
}

func dropSlot(ctx context.Context, conn *pgx.Conn, slot string) {
	_, _ = conn.Exec(ctx, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", slot)
}

func formatInt(n int64) string { return strconv.FormatInt(n, 10) }
