package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is one running tidegate, owned by the bench: stop waits for it.
type process struct {
	cmd    *exec.Cmd
	exited chan error
	m      *metrics
}

// profileDir, when set (-profile), receives a CPU profile of every tidegate
// run, numbered in start order (TIDEGATE_CPUPROFILE).
var (
	profileDir string
	profiles   int
)

// startTidegate runs `bin run -c cfg`, appending its output to logPath.
func startTidegate(bin, cfg, logPath, adminAddr string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	if profileDir != "" {
		if err := os.MkdirAll(profileDir, 0o755); err != nil {
			logf.Close()
			return nil, err
		}
		profiles++
		prof := filepath.Join(profileDir, fmt.Sprintf("tidegate-%d.pprof", profiles))
		cmd.Env = append(os.Environ(), "TIDEGATE_CPUPROFILE="+prof)
		fmt.Printf("    CPU profile of this run: %s\n", prof)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting tidegate: %w", err)
	}
	p := &process{cmd: cmd, exited: make(chan error, 1), m: &metrics{addr: adminAddr}}
	go func() { p.exited <- cmd.Wait(); logf.Close() }()
	return p, nil
}

// stop sends SIGTERM and waits up to a minute for a clean exit.
func (p *process) stop() error {
	if p == nil || p.cmd.ProcessState != nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		p.exited <- err
		return err
	case <-time.After(time.Minute):
		_ = p.cmd.Process.Kill()
		return fmt.Errorf("tidegate did not stop within a minute (killed pid %d)", p.cmd.Process.Pid)
	}
}

// waitFor polls cond every interval until it is true, tidegate exits,
// ctx ends or timeout passes. each is called at every poll (e.g. to sample RSS).
//
// It polls every interval at first, then every 1/200 of the time waited so
// far: each poll scrapes every metric, which costs tidegate CPU (about
// 0.3 ms a scrape, 4% of its CPU at 20 ms during a long wait), while the
// figure stays within 0.5% of the time measured.
func (p *process) waitFor(ctx context.Context, what string, timeout, interval time.Duration, cond func() (bool, string)) error {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s (%s)", timeout, what, state)
		}
		select {
		case err := <-p.exited:
			p.exited <- err
			return fmt.Errorf("tidegate exited while waiting for %s: %v", what, err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(max(interval, time.Since(start)/200)):
		}
	}
}

// waitSink waits until the sink counter reaches want.
func (p *process) waitSink(ctx context.Context, want float64, timeout time.Duration) error {
	return p.waitFor(ctx, fmt.Sprintf("%.0f events in the sink", want), timeout, 20*time.Millisecond, func() (bool, string) {
		v, err := p.m.sinkEvents()
		return err == nil && v >= want, fmt.Sprintf("have %.0f, err %v", v, err)
	})
}

// metrics reads tidegate's Prometheus text exposition. (Copied from
// scripts/demo, with histogram reading added.)
type metrics struct{ addr string }

func (m *metrics) sinkEvents() (float64, error) {
	return m.get("tidegate_events_total", `stage="sink:search"`)
}

// get sums the samples of name whose labels contain every given label.
func (m *metrics) get(name string, labels ...string) (float64, error) {
	var sum float64
	found := false
	err := m.scan(func(line string) {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			return
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				return
			}
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			sum += v
			found = true
		}
	})
	if err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("no metric %s", name)
	}
	return sum, nil
}

// histogram returns the cumulative bucket counts of a histogram summed
// over all its series, by upper bound.
func (m *metrics) histogram(name string) (map[float64]float64, error) {
	out := map[float64]float64{}
	err := m.scan(func(line string) {
		if !strings.HasPrefix(line, name+"_bucket{") {
			return
		}
		i := strings.Index(line, `le="`)
		if i < 0 {
			return
		}
		rest := line[i+4:]
		le, err := strconv.ParseFloat(rest[:strings.IndexByte(rest, '"')], 64)
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			out[le] += v
		}
	})
	return out, err
}

func (m *metrics) scan(fn func(string)) error {
	c := http.Client{Timeout: 5 * time.Second}
	req, err := http.NewRequest(http.MethodGet, "http://"+m.addr+"/metrics", nil)
	if err != nil {
		return err
	}
	// Uncompressed: the bench scrapes every 20 ms, and gzip would cost
	// tidegate CPU time the figures would include.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fn(sc.Text())
	}
	return sc.Err()
}

// quantiles estimates quantiles from the difference of two cumulative
// histograms by linear interpolation inside the bucket, as Prometheus'
// histogram_quantile does. It returns NaN when no observation fell in.
func quantiles(before, after map[float64]float64, qs ...float64) (out []float64, count float64) {
	bounds := make([]float64, 0, len(after))
	for le := range after {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	cum := make([]float64, len(bounds))
	for i, le := range bounds {
		cum[i] = after[le] - before[le]
	}
	if len(cum) > 0 {
		count = cum[len(cum)-1]
	}
	for _, q := range qs {
		if count <= 0 {
			out = append(out, math.NaN())
			continue
		}
		rank := q * count
		v := math.NaN()
		for i, c := range cum {
			if c >= rank {
				lo, loCount := 0.0, 0.0
				if i > 0 {
					lo, loCount = bounds[i-1], cum[i-1]
				}
				hi := bounds[i]
				if math.IsInf(hi, 1) {
					v = lo // above the highest finite bucket: report its bound
				} else if c > loCount {
					v = lo + (hi-lo)*(rank-loCount)/(c-loCount)
				} else {
					v = hi
				}
				break
			}
		}
		out = append(out, v)
	}
	return out, count
}

// procStatus reads a field of /proc/<pid>/status in bytes (VmRSS, VmHWM).
func procStatus(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, field+":") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// resetHWM resets the peak RSS (VmHWM) of a process (Linux clear_refs).
func resetHWM(pid int) error {
	return os.WriteFile(filepath.Join("/proc", strconv.Itoa(pid), "clear_refs"), []byte("5"), 0)
}

// cpuSeconds is the CPU time (user + system) a process has used, from
// /proc/<pid>/stat; 0 when it cannot be read.
func cpuSeconds(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command (which may hold spaces) in parentheses.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times (100 on Linux).
const clockTicks = 100

// procCPU measures the CPU time of some processes (PostgreSQL's, or
// Elasticsearch's) over a scenario by sampling them (sample at every poll):
// a process's time is counted up to its last sample, so a backend that
// exits between two polls loses at most one poll interval.
type procCPU struct {
	match      func(pid int, comm string) bool
	base, last map[int]float64
}

func newProcCPU(match func(pid int, comm string) bool) *procCPU {
	m := &procCPU{match: match, base: map[int]float64{}, last: map[int]float64{}}
	m.sample()
	for pid, v := range m.last {
		m.base[pid] = v
	}
	return m
}

// newPGCPU measures every postgres process (the server and its backends).
func newPGCPU() *procCPU {
	return newProcCPU(func(_ int, comm string) bool { return comm == "postgres" })
}

// newESCPU measures the Elasticsearch node scripts/services.sh started (its
// pid file), or every java process when the pid file cannot be read.
func newESCPU() *procCPU {
	files, _ := filepath.Glob(".services/es/run/*.pid")
	if len(files) == 1 {
		if data, err := os.ReadFile(files[0]); err == nil {
			if es, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
				return newProcCPU(func(pid int, _ string) bool { return pid == es })
			}
		}
	}
	return newProcCPU(func(_ int, comm string) bool { return comm == "java" })
}

func (m *procCPU) sample() {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && m.match(pid, strings.TrimSpace(string(comm))) {
			if v := cpuSeconds(pid); v > 0 {
				m.last[pid] = v
			}
		}
	}
}

// seconds is the CPU time used since newProcCPU, up to the last sample.
func (m *procCPU) seconds() float64 {
	var total float64
	for pid, v := range m.last {
		total += v - m.base[pid]
	}
	return total
}
