package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/tidegate/tidegate/event"
	"github.com/tidegate/tidegate/internal/admin"
	"github.com/tidegate/tidegate/internal/bus"
)

// dlqServer runs a real embedded bus and admin server with a token, holding
// dead letters of pipeline "shop", sink "search", for keys 1..n; it returns
// a configuration file pointing at it (token from the environment; the
// source's password is not set: the dlq commands read the admin section only).
func dlqServer(t *testing.T, n int) (configPath, addr string) {
	t.Helper()
	ctx := context.Background()
	b, err := bus.Open(ctx, bus.Config{URL: "embedded", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.EnsurePipeline(ctx, "shop", bus.StreamConfig{MaxBytes: 64 << 20, DuplicateWindow: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.EnsureConsumer(ctx, "shop", "search", bus.ConsumerConfig{}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		ev := &event.Event{
			Id: fmt.Sprintf("shop:%d", i), Op: event.Op_OP_UPDATE, Version: uint64(100 + i),
			Origin: &event.Origin{Source: "shop", Schema: "public", Table: "products"},
			Key:    []*event.Column{{Name: "sku", Value: &event.Value{Kind: &event.Value_Text{Text: fmt.Sprintf("sku-%d", i)}}}},
			After:  &event.Row{Columns: []*event.Column{{Name: "price", Value: &event.Value{Kind: &event.Value_Text{Text: "free"}}}}},
		}
		data, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.PublishDLQ(ctx, bus.DeadLetter{Pipeline: "shop", Sink: "search", EventID: ev.GetId(),
			Subject: bus.Subject("shop", "public", "products"), Error: "failed to parse field [price] of type [float]", Attempts: 2, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := admin.Start(admin.Options{Addr: "127.0.0.1:0", Token: "cli-token", Registry: prometheus.NewRegistry(),
		Health: func() error { return nil }, Logger: slog.New(slog.DiscardHandler), DeadLetters: b,
		Pipelines: []admin.Pipeline{{Name: "shop", Sinks: []string{"search"}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	t.Setenv("TG_CLI_TEST_TOKEN", "cli-token")
	t.Setenv(envAdminToken, "")
	configPath = filepath.Join(t.TempDir(), "tidegate.yaml")
	cfg := fmt.Sprintf(`admin: { listen: %q, token: "${TG_CLI_TEST_TOKEN}" }
sources:
  - name: shop
    postgres: { dsn: "postgres://u:${TG_CLI_TEST_UNSET_PASSWORD}@db/shop", tables: [public.products] }
`, srv.Addr())
	if err := os.WriteFile(configPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return configPath, srv.Addr()
}

func TestDLQCommands(t *testing.T) {
	cfg, addr := dlqServer(t, 3)

	out, err := execute(t, "dlq", "list", "-c", cfg, "--limit", "2")
	if err != nil {
		t.Fatalf("dlq list: %v\n%s", err, out)
	}
	for _, want := range []string{"SEQ", "public.products", `{"sku":"sku-1"}`, "failed to parse field [price]", "2 of 3 dead letters", "--page-token shop:3"} {
		if !strings.Contains(out, want) {
			t.Errorf("dlq list does not show %q:\n%s", want, out)
		}
	}
	out, err = execute(t, "dlq", "list", "-c", cfg, "--page-token", "shop:3", "--json")
	if err != nil {
		t.Fatalf("dlq list --json: %v\n%s", err, out)
	}
	var page struct {
		DeadLetters []struct {
			Sequence uint64          `json:"sequence"`
			Key      json.RawMessage `json:"key"`
			Event    json.RawMessage `json:"event"`
			Attempts int             `json:"attempts"`
		} `json:"dead_letters"`
		Total uint64 `json:"total"`
		Next  string `json:"next_page_token"`
	}
	if err := json.Unmarshal([]byte(out), &page); err != nil {
		t.Fatalf("dlq list --json: %v\n%s", err, out)
	}
	if len(page.DeadLetters) != 1 || page.Total != 3 || page.Next != "" || page.DeadLetters[0].Sequence != 3 ||
		page.DeadLetters[0].Attempts != 2 || !strings.Contains(string(page.DeadLetters[0].Event), `"price": "free"`) {
		t.Errorf("second page: %s", out)
	}

	out, err = execute(t, "dlq", "show", "2", "-c", cfg)
	if err != nil || !strings.Contains(out, "sequence:") || !strings.Contains(out, `"sku": "sku-2"`) || !strings.Contains(out, "version:   102") {
		t.Errorf("dlq show 2: %v\n%s", err, out)
	}

	out, err = execute(t, "dlq", "discard", "1", "9", "-c", cfg)
	if err == nil || !strings.Contains(out, "discarded 1 dead letters") || !strings.Contains(out, "FAIL  shop 9:") {
		t.Errorf("dlq discard 1 9: %v\n%s", err, out)
	}
	out, err = execute(t, "dlq", "replay", "--all", "-c", cfg)
	if err != nil || !strings.Contains(out, "replayed 2 dead letters") {
		t.Errorf("dlq replay --all: %v\n%s", err, out)
	}
	out, err = execute(t, "dlq", "list", "-c", cfg)
	if err != nil || !strings.Contains(out, "no dead letters") {
		t.Errorf("dlq list after discard and replay: %v\n%s", err, out)
	}
	if _, err := execute(t, "dlq", "replay", "-c", cfg); err == nil || !strings.Contains(err.Error(), "--all") {
		t.Errorf("dlq replay without a selection: %v", err)
	}

	// The token from the environment, and its absence.
	if out, err := execute(t, "dlq", "list", "--admin", addr); err == nil || !strings.Contains(err.Error(), envAdminToken) {
		t.Errorf("dlq list without a token: %v\n%s", err, out)
	}
	// --admin with -c: the address given, the token of the file.
	if out, err := execute(t, "dlq", "list", "--admin", addr, "-c", cfg); err != nil {
		t.Errorf("dlq list --admin with the token of -c: %v\n%s", err, out)
	}
	t.Setenv(envAdminToken, "cli-token")
	if out, err := execute(t, "dlq", "list", "--admin", "http://"+addr); err != nil {
		t.Errorf("dlq list with the token from %s: %v\n%s", envAdminToken, err, out)
	}
}

// Nothing listening: the error says what to check.
func TestDLQUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = execute(t, "dlq", "list", "--admin", addr)
	if err == nil || !strings.Contains(err.Error(), "is tidegate running?") || !strings.Contains(err.Error(), addr) {
		t.Errorf("dlq list against a closed port: %v", err)
	}
	path := filepath.Join(t.TempDir(), "t.yaml")
	if err := os.WriteFile(path, []byte("admin: { listen: \"off\" }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := execute(t, "dlq", "list", "-c", path); err == nil || !strings.Contains(err.Error(), "admin API is disabled") {
		t.Errorf("dlq list with admin.listen off: %v", err)
	}
}
