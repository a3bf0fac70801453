package main

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A database status cannot read is reported as unknown, with the reason,
// and the command fails: a script must not take it for a healthy slot.
func TestStatusUnreachableDatabase(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	path := filepath.Join(t.TempDir(), "tidegate.yaml")
	cfg := `data_dir: ` + t.TempDir() + `
sources:
  - name: shop
    postgres:
      dsn: postgres://u:secretpw@` + addr + `/shop?connect_timeout=5
      tables: [public.orders]
sinks:
  - name: search
    elasticsearch:
      urls: [http://127.0.0.1:9]
pipelines:
  - name: shop-search
    source: shop
    sinks: [search]
`
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := execute(t, "status", "-c", path)
	if err == nil || !strings.Contains(err.Error(), "could not be read") {
		t.Fatalf("status = %v, want an error saying the slots could not be read\n%s", err, out)
	}
	for _, want := range []string{"shop-search", "tidegate_shop_search", "unknown", "connect"} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secretpw") {
		t.Errorf("status output shows the password:\n%s", out)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 20 << 20: "20.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
