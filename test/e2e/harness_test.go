package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidegate/tidegate/internal/testkit"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tidegate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "tidegate")
	build := exec.Command("go", "build", "-o", binary, "github.com/tidegate/tidegate/cmd/tidegate")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building tidegate:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one test's world: a fresh database, a search cluster, a data dir.
type env struct {
	t          *testing.T
	dsn        string
	conn       *pgx.Conn
	search     *testkit.Search
	searchURL  string // what tidegate is told (may be a proxy)
	source     string
	dataDir    string
	configPath string
	// adminListen is admin.listen in the config: port 0, so that the
	// kernel picks a free port while binding (a port picked beforehand
	// could be taken meanwhile, by a client's outgoing connection too).
	// adminAddr is where the running tidegate listens, read from its log
	// at each start.
	adminListen string
	adminAddr   string
	extra       string // appended to the postgres source config
	sinkExtra   string // appended to the sink config
	snapshot    string
	bus         string // a bus: line for the config
	// tables are the captured tables (default: the shop tables). A test
	// adds its own with e.tables = append(e.tables, "name"); their indexes
	// are deleted at cleanup.
	tables []string
}

func newEnv(t *testing.T, clusterURL string) *env {
	t.Helper()
	dsn := testkit.NewDatabase(t)
	e := &env{
		t:           t,
		dsn:         dsn,
		conn:        testkit.Connect(t, dsn),
		search:      testkit.NewSearch(clusterURL),
		searchURL:   clusterURL,
		source:      "s" + testkit.RandomSuffix(),
		dataDir:     t.TempDir(),
		adminListen: "127.0.0.1:0",
		snapshot:    "initial",
	}
	for _, tb := range testkit.ShopTables {
		e.tables = append(e.tables, tb.Name)
	}
	testkit.Exec(t, e.conn, testkit.ShopSchema)
	t.Cleanup(func() {
		for _, tb := range e.tables {
			_ = e.search.DeleteIndex(context.Background(), e.index(tb))
		}
	})
	return e
}

// index is the default index name of a table.
func (e *env) index(table string) string { return e.source + "." + table }

func (e *env) writeConfig() {
	cfg := fmt.Sprintf(`data_dir: %s
%s
admin: { listen: %q }
log: { level: debug }
sources:
  - name: %s
    postgres:
      dsn: %q
      tables: [%s]
      snapshot_chunk_rows: 1000
      status_interval: 1s
%s
sinks:
  - name: search
    elasticsearch:
      urls: [%s]
      bulk_max_actions: 500
      retry_max: 2s
%s
pipelines:
  - name: %s
    source: %s
    sinks: [search]
    snapshot: %s
`, e.dataDir, e.bus, e.adminListen, e.source, e.dsn, strings.Join(e.tables, ", "), e.extra, e.searchURL, e.sinkExtra, e.source, e.source, e.snapshot)
	e.configPath = filepath.Join(e.dataDir, "tidegate.yaml")
	if err := os.WriteFile(e.configPath, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// proc is a running tidegate.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	log  string
	done chan error
}

func (e *env) start() *proc {
	e.t.Helper()
	if e.configPath == "" {
		e.writeConfig()
	}
	logPath := filepath.Join(e.dataDir, fmt.Sprintf("tidegate-%d.log", time.Now().UnixNano()))
	f, err := os.Create(logPath)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd := exec.Command(binary, "run", "-c", e.configPath)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	p := &proc{t: e.t, cmd: cmd, log: logPath, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); f.Close() }()
	e.t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
		if e.t.Failed() {
			p.dumpLog()
		}
	})
	if addr := p.adminAddr(); addr != "" {
		e.adminAddr = addr
	}
	return p
}

// adminListening matches the log line of the admin server's address, in
// the text and the JSON log formats.
var adminListening = regexp.MustCompile(`admin listening"?[ ,]+"?address"?[=:]"?([0-9.]+:[0-9]+)`)

// adminAddr waits until tidegate logs where its admin server listens and
// returns that address; "" if it exits first (a test of a failed start).
func (p *proc) adminAddr() string {
	deadline := time.Now().Add(60 * time.Second)
	for {
		data, _ := os.ReadFile(p.log)
		if m := adminListening.FindSubmatch(data); m != nil {
			return string(m[1])
		}
		if p.exited() {
			return ""
		}
		if time.Now().After(deadline) {
			p.dumpLog()
			p.t.Fatal("tidegate did not log its admin address within 60s")
		}
		time.Sleep(10 * time.Millisecond) // polling the log for the condition
	}
}

// kill9 kills tidegate with SIGKILL and waits for it to be gone.
func (p *proc) kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM and expects a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			p.dumpLog()
			p.t.Fatalf("tidegate did not exit cleanly on SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		p.kill9()
		p.dumpLog()
		p.t.Fatal("tidegate did not stop within 60s of SIGTERM")
	}
}

func (p *proc) dumpLog() {
	data, _ := os.ReadFile(p.log)
	lines := strings.Split(string(data), "\n")
	if len(lines) > 80 {
		lines = lines[len(lines)-80:]
	}
	p.t.Logf("tidegate log tail (%s):\n%s", p.log, strings.Join(lines, "\n"))
}

// exited reports whether the process has exited (without waiting).
func (p *proc) exited() bool {
	select {
	case err := <-p.done:
		p.done <- err
		return true
	default:
		return false
	}
}

// metric sums the samples of a metric whose labels contain every given
// label pair ("name" selects the metric; labels like `stage="dlq:search"`).
func (e *env) metric(name string, labels ...string) (float64, error) {
	resp, err := http.Get("http://" + e.adminAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || (len(line) > len(name) && line[len(name)] != '{' && line[len(name)] != ' ') {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(line, l) {
				ok = false
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum, sc.Err()
}

// waitMetric polls until metric >= min (the process must stay alive).
func (e *env) waitMetric(p *proc, timeout time.Duration, min float64, name string, labels ...string) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v, err := e.metric(name, labels...)
		if err == nil && v >= min {
			return
		}
		if p.exited() {
			p.dumpLog()
			e.t.Fatalf("tidegate exited while waiting for %s >= %v", name, min)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s%v >= %v (last %v, err %v)", name, labels, min, v, err)
		}
		time.Sleep(100 * time.Millisecond) // polling a condition
	}
}

// waitConverged waits until every shop table equals its index.
func (e *env) waitConverged(timeout time.Duration) {
	e.t.Helper()
	ctx := context.Background()
	for _, tb := range testkit.ShopTables {
		d, err := testkit.WaitConverged(ctx, e.conn, tb.Name, tb.Key, e.search, e.index(tb.Name), timeout)
		if err != nil {
			e.t.Fatalf("comparing %s: %v", tb.Name, err)
		}
		if !d.Empty() {
			e.dumpMetrics()
			e.t.Fatalf("not converged after %s:\n%s", timeout, d)
		}
		e.t.Logf("verified: %s %d rows = %d documents", tb.Name, d.Rows, d.Docs)
	}
}

// dumpMetrics logs tidegate's own metrics (for failure analysis).
func (e *env) dumpMetrics() {
	resp, err := http.Get("http://" + e.adminAddr + "/metrics")
	if err != nil {
		e.t.Logf("metrics: %v", err)
		return
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "tidegate_") {
			lines = append(lines, l)
		}
	}
	e.t.Logf("metrics:\n%s", strings.Join(lines, "\n"))
}

// noDeadLetters asserts nothing went to the DLQ.
func (e *env) noDeadLetters() {
	e.t.Helper()
	v, err := e.metric("tidegate_events_total", `stage="dlq:search"`)
	if err != nil {
		e.t.Fatalf("reading metrics: %v", err)
	}
	if v != 0 {
		e.t.Fatalf("%v events went to the DLQ", v)
	}
}

// workload runs n random transactions.
func (e *env) workload(w *testkit.Workload, n int) {
	e.t.Helper()
	for range n {
		if err := w.Step(context.Background(), e.conn); err != nil {
			e.t.Fatalf("workload: %v", err)
		}
	}
}
