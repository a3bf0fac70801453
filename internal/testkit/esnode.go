package testkit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ESNode is a private single-node Elasticsearch for tests that stop,
// restart or kill the cluster (the shared one of scripts/services.sh must
// stay up for other tests). It runs the distribution that
// scripts/services.sh unpacked under .services/es/, with the same settings,
// on free loopback ports, with a fresh data directory and a 512 MiB heap. As
// root it runs as the system user tidegate-svc (Elasticsearch refuses root),
// like the script.
//
// Start and Stop may be called any number of times (a restart keeps the
// ports and the data); the node is stopped and its directory removed at test
// cleanup. Methods are not safe for concurrent use: call them from the test
// goroutine.
type ESNode struct {
	t         testing.TB
	home      string // the distribution
	java      string // JDK home
	dir       string // config/, data/, logs/, tmp/, run/, node.log
	httpPort  int
	transport int
	cred      *syscall.Credential // nil when not root

	cmd  *exec.Cmd     // the launcher (bin/elasticsearch), nil when stopped
	done chan struct{} // closed when the launcher exited
	err  error         // the launcher's exit status, set before done closes
}

// Environment overrides of StartESNode.
const (
	// EnvESHome is an Elasticsearch distribution to run instead of the one
	// under .services/es/.
	EnvESHome = "TIDEGATE_ES_HOME"
	// EnvJavaHome is the JDK to run it with (as in scripts/services.sh).
	EnvJavaHome = "TIDEGATE_JAVA_HOME"
	// EnvStartTimeout is how long to wait for the node, in seconds (as in
	// scripts/services.sh; default 180).
	EnvStartTimeout = "TIDEGATE_START_TIMEOUT"
)

const (
	esNodeHeap     = "512m"
	esNodeUser     = "tidegate-svc"
	esJavaMin      = 17
	esJavaMax      = 24
	esStopTimeout  = 60 * time.Second
	esNodeLogLines = 60
)

// StartESNode starts a private Elasticsearch node and waits until it
// answers /_cluster/health with yellow or green. When the distribution, a
// JDK or the service user is missing the test is skipped, except under
// CI=true where that fails it; a node that does not start fails the test.
func StartESNode(t testing.TB) *ESNode {
	t.Helper()
	n := &ESNode{t: t}
	var err error
	if n.home, err = findESHome(); err != nil {
		prerequisite(t, "private Elasticsearch node: %v", err)
	}
	if n.java, err = findJava(esJavaMin, esJavaMax); err != nil {
		prerequisite(t, "private Elasticsearch node: %v", err)
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup(esNodeUser)
		if err != nil {
			prerequisite(t, "private Elasticsearch node: Elasticsearch refuses to run as root and user %s does not exist (%v): run `scripts/services.sh start es` once as root, it creates it", esNodeUser, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		n.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if err := n.prepare(); err != nil {
		t.Fatalf("private Elasticsearch node: %v", err)
	}
	t.Cleanup(n.cleanup)
	n.Start()
	return n
}

// prerequisite skips the test, or fails it under CI=true.
func prerequisite(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true: a missing service is a failure)", args...)
	}
	t.Skipf(format, args...)
}

// URL is the node's HTTP address, e.g. http://127.0.0.1:40123. It stays the
// same across restarts.
func (n *ESNode) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", n.httpPort) }

// Running reports whether the node's process is alive.
func (n *ESNode) Running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Start starts the node (again: same ports, same data) and waits until it
// is ready. It fails the test when the node does not become ready.
func (n *ESNode) Start() {
	n.t.Helper()
	if n.Running() {
		n.t.Fatalf("private Elasticsearch node at %s: Start while it is running (call Stop first)", n.URL())
	}
	_ = os.Remove(n.pidFile())
	logf, err := os.OpenFile(n.logFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		n.t.Fatalf("private Elasticsearch node: %v", err)
	}
	fmt.Fprintf(logf, "==== testkit: %s at %s: starting\n", n.URL(), time.Now().Format(time.RFC3339Nano))
	args := []string{"-p", n.pidFile(),
		"-E", "cluster.name=tidegate-test",
		"-E", "node.name=tidegate-esnode",
		"-E", "discovery.type=single-node",
		"-E", "http.host=127.0.0.1", "-E", "http.port=" + strconv.Itoa(n.httpPort),
		"-E", "transport.host=127.0.0.1", "-E", "transport.port=" + strconv.Itoa(n.transport),
		"-E", "path.data=" + filepath.Join(n.dir, "data"), "-E", "path.logs=" + filepath.Join(n.dir, "logs"),
		"-E", "action.destructive_requires_name=false",
		"-E", "cluster.routing.allocation.disk.threshold_enabled=false",
	}
	if isDir(filepath.Join(n.home, "modules", "x-pack-security")) {
		args = append(args, "-E", "xpack.security.enabled=false")
	}
	cmd := exec.Command(filepath.Join(n.home, "bin", "elasticsearch"), args...)
	cmd.Dir = n.dir
	cmd.Env = n.env()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: if the test binary dies, the launcher dies, and the server
	// exits when its stdin (a pipe from the launcher) closes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: n.cred}
	if err := cmd.Start(); err != nil {
		logf.Close()
		n.t.Fatalf("private Elasticsearch node: running %s: %v", cmd.Path, err)
	}
	n.cmd, n.done, n.err = cmd, make(chan struct{}), nil
	done := n.done
	go func() { // owned by the node: Stop, Kill and cleanup wait for it
		err := cmd.Wait()
		logf.Close()
		n.err = err
		close(done)
	}()
	if err := n.waitReady(); err != nil {
		n.kill()
		tail := n.tail()
		if strings.Contains(tail, "BindException") {
			err = fmt.Errorf("%w (another process took port %d or %d since the node last ran there)", err, n.httpPort, n.transport)
		}
		n.t.Fatalf("private Elasticsearch node at %s did not start: %v\n%s", n.URL(), err, tail)
	}
}

// Stop stops the node gracefully (SIGTERM to its server process, found by
// PID) and waits until it has exited. It fails the test when the node does
// not exit within 60 s (it is killed then).
func (n *ESNode) Stop() {
	n.t.Helper()
	if err := n.stop(); err != nil {
		n.t.Fatalf("private Elasticsearch node at %s: %v\n%s", n.URL(), err, n.tail())
	}
}

// Kill kills the node with SIGKILL (server and launcher, by PID) and waits
// until it is gone.
func (n *ESNode) Kill() {
	n.t.Helper()
	n.kill()
}

func (n *ESNode) stop() error {
	if !n.Running() {
		return nil
	}
	pid := n.serverPID()
	if pid == 0 {
		pid = n.cmd.Process.Pid // not started far enough to write its pid file
	}
	n.mark("stopping: SIGTERM to pid %d (the launcher then reports exit code 143)", pid)
	_ = syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(esStopTimeout):
		n.kill()
		return fmt.Errorf("still running %s after SIGTERM to pid %d; killed it", esStopTimeout, pid)
	}
	if pid := n.serverPID(); pid != 0 {
		// The launcher exits after the server; a server still alive here
		// is an orphan.
		n.kill()
		return fmt.Errorf("the server process %d outlived its launcher; killed it", pid)
	}
	return nil
}

func (n *ESNode) kill() {
	if n.cmd == nil {
		return
	}
	if pid := n.serverPID(); pid != 0 {
		n.mark("killing: SIGKILL to pid %d", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if n.Running() {
		_ = n.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-n.done
	deadline := time.Now().Add(30 * time.Second)
	for n.serverPID() != 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // polling for the process to be gone
	}
}

// serverPID is the PID of this node's server process, from its pid file,
// or 0 when that process is not alive (or the PID now belongs to another
// program).
func (n *ESNode) serverPID() int {
	data, err := os.ReadFile(n.pidFile())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(n.dir)) {
		return 0
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := bytes.LastIndexByte(st, ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
			return 0 // a zombie: dead, not yet reaped
		}
	}
	return pid
}

func (n *ESNode) cleanup() {
	if err := n.stop(); err != nil {
		n.t.Logf("private Elasticsearch node at %s: stopping at cleanup: %v", n.URL(), err)
	}
	if n.t.Failed() && n.cmd != nil {
		n.t.Logf("private Elasticsearch node at %s: log tail:\n%s", n.URL(), n.tail())
	}
	if err := os.RemoveAll(n.dir); err != nil {
		n.t.Logf("private Elasticsearch node: removing %s: %v", n.dir, err)
	}
}

// waitReady polls the cluster health until it is yellow or green.
func (n *ESNode) waitReady() error {
	timeout := 180 * time.Second
	if s, err := strconv.Atoi(os.Getenv(EnvStartTimeout)); err == nil && s > 0 {
		timeout = time.Duration(s) * time.Second
	}
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		res, err := client.Get(n.URL() + "/_cluster/health?wait_for_status=yellow&timeout=1s")
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET /_cluster/health: %s: %s", res.Status, body)
		}
		last = err
		select {
		case <-n.done:
			return fmt.Errorf("the process exited (%v) during startup (last check: %v)", n.err, last)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not yellow after %s (raise %s if the machine is slow); last check: %v", timeout, EnvStartTimeout, last)
		}
		select {
		case <-n.done:
		case <-time.After(500 * time.Millisecond): // polling a condition
		}
	}
}

// prepare makes the node's directory: a copy of the distribution's config,
// empty data, logs and tmp, owned by the service user, and picks ports.
func (n *ESNode) prepare() error {
	dir, err := os.MkdirTemp("", "tidegate-esnode-")
	if err != nil {
		return err
	}
	n.dir = dir
	if err := os.Chmod(dir, 0o755); err != nil { // the service user must reach it
		return err
	}
	for _, sub := range []string{"data", "logs", "tmp", "run"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			return err
		}
	}
	// A private copy of the config: the node never touches the shared one.
	if err := copyTree(filepath.Join(n.home, "config"), filepath.Join(dir, "config")); err != nil {
		return fmt.Errorf("copying the configuration of %s: %w", n.home, err)
	}
	if n.cred != nil {
		err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, int(n.cred.Uid), int(n.cred.Gid))
		})
		if err != nil {
			return fmt.Errorf("giving %s to %s: %w", dir, esNodeUser, err)
		}
	}
	if n.httpPort, err = freeTCPPort(); err != nil {
		return err
	}
	for {
		if n.transport, err = freeTCPPort(); err != nil {
			return err
		}
		if n.transport != n.httpPort {
			return nil
		}
	}
}

// mark writes a line of the test's own into the node's log.
func (n *ESNode) mark(format string, args ...any) {
	f, err := os.OpenFile(n.logFile(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return
	}
	fmt.Fprintf(f, "==== testkit: %s at %s: "+format+"\n", append([]any{n.URL(), time.Now().Format(time.RFC3339Nano)}, args...)...)
	f.Close()
}

func (n *ESNode) pidFile() string { return filepath.Join(n.dir, "run", "es.pid") }
func (n *ESNode) logFile() string { return filepath.Join(n.dir, "node.log") }

// env is the launcher's environment: ours without Java settings that
// would slip into the JVM, plus the node's (as scripts/services.sh does).
func (n *ESNode) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "JAVA_HOME", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JAVA_OPTS",
			"ES_JAVA_HOME", "ES_JAVA_OPTS", "ES_TMPDIR", "ES_PATH_CONF":
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"ES_JAVA_HOME="+n.java,
		"ES_JAVA_OPTS=-Xms"+esNodeHeap+" -Xmx"+esNodeHeap,
		"ES_TMPDIR="+filepath.Join(n.dir, "tmp"),
		"ES_PATH_CONF="+filepath.Join(n.dir, "config"),
	)
}

// tail returns the last lines of the node's console output.
func (n *ESNode) tail() string {
	f, err := os.Open(n.logFile())
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > 4*esNodeLogLines {
			lines = lines[len(lines)-esNodeLogLines:]
		}
	}
	if len(lines) > esNodeLogLines {
		lines = lines[len(lines)-esNodeLogLines:]
	}
	return fmt.Sprintf("---- last lines of %s:\n%s", n.logFile(), strings.Join(lines, "\n"))
}

// findESHome finds the Elasticsearch distribution: $TIDEGATE_ES_HOME, else
// the one scripts/services.sh unpacked under <repo>/.services/es/.
func findESHome() (string, error) {
	if h := os.Getenv(EnvESHome); h != "" {
		if !isExec(filepath.Join(h, "bin", "elasticsearch")) {
			return "", fmt.Errorf("%s=%s has no bin/elasticsearch", EnvESHome, h)
		}
		return h, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	matches, _ := filepath.Glob(filepath.Join(root, ".services", "es", "elasticsearch-*", "bin", "elasticsearch"))
	if len(matches) == 0 {
		return "", fmt.Errorf("no Elasticsearch distribution under %s: run `scripts/services.sh start es` once (it downloads and unpacks it), or set %s",
			filepath.Join(root, ".services", "es"), EnvESHome)
	}
	sort.Strings(matches)
	return filepath.Dir(filepath.Dir(matches[len(matches)-1])), nil
}

// repoRoot walks up from the working directory to the module root.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.Contains(data, []byte("module github.com/tidegate/tidegate\n")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no tidegate repository above %s (run the test inside it, or set %s)", dir, EnvESHome)
		}
	}
}

// findJava picks the JDK like scripts/services.sh: $TIDEGATE_JAVA_HOME,
// else the lowest Java major in [lo, hi] among /usr/lib/jvm/*, $JAVA_HOME
// and the java on the PATH.
func findJava(lo, hi int) (string, error) {
	if h := os.Getenv(EnvJavaHome); h != "" {
		m, err := javaMajor(h)
		if err != nil {
			return "", fmt.Errorf("%s=%s: %v", EnvJavaHome, h, err)
		}
		if m < lo || m > hi {
			return "", fmt.Errorf("Elasticsearch needs Java %d..%d, %s is Java %d", lo, hi, EnvJavaHome, m)
		}
		return h, nil
	}
	candidates, _ := filepath.Glob("/usr/lib/jvm/*")
	if h := os.Getenv("JAVA_HOME"); h != "" {
		candidates = append(candidates, h)
	}
	if j, err := exec.LookPath("java"); err == nil {
		if r, err := filepath.EvalSymlinks(j); err == nil {
			candidates = append(candidates, strings.TrimSuffix(r, "/bin/java"))
		}
	}
	best, bestM := "", 1<<30
	for _, c := range candidates {
		m, err := javaMajor(c)
		if err != nil || m < lo || m > hi || m >= bestM {
			continue
		}
		if r, err := filepath.EvalSymlinks(c); err == nil {
			c = r
		}
		best, bestM = c, m
	}
	if best == "" {
		return "", fmt.Errorf("no JDK %d..%d found in /usr/lib/jvm, $JAVA_HOME or the PATH: install openjdk-17-jre-headless or set %s", lo, hi, EnvJavaHome)
	}
	return best, nil
}

// javaMajor reads the Java major version of a JDK home.
func javaMajor(home string) (int, error) {
	java := filepath.Join(home, "bin", "java")
	if !isExec(java) {
		return 0, errors.New("no bin/java")
	}
	var v string
	if data, err := os.ReadFile(filepath.Join(home, "release")); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if s, ok := strings.CutPrefix(line, "JAVA_VERSION="); ok {
				v = strings.Trim(s, `"`)
			}
		}
	}
	if v == "" {
		out, _ := exec.Command(java, "-version").CombinedOutput()
		if _, rest, ok := strings.Cut(string(out), `version "`); ok {
			v, _, _ = strings.Cut(rest, `"`)
		}
	}
	v = strings.TrimPrefix(v, "1.") // 1.8.0 -> 8.0
	if i := strings.IndexAny(v, ".+-"); i >= 0 {
		v = v[:i]
	}
	m, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("cannot read the Java version of %s", home)
	}
	return m, nil
}

func freeTCPPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, 0o640)
	})
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}
