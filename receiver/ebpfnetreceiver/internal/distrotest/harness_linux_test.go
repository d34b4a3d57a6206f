// SPDX-License-Identifier: Apache-2.0

package distrotest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// Environment variables.
const (
	// binEnv names a prebuilt collector binary (e.g. bin/otelcol-ebpfnet from
	// `make build`); without it the tests build cmd/otelcol-ebpfnet once.
	binEnv = "OTELCOL_EBPFNET_BIN"
	// clientEnv turns the test binary into the traffic client (see TestMain):
	// its value is the address to connect to.
	clientEnv     = "EBPFNET_E2E_CLIENT"
	clientSendEnv = "EBPFNET_E2E_SEND" // bytes the client sends
	clientRecvEnv = "EBPFNET_E2E_RECV" // bytes the client expects back
)

// clientExeName is the name the traffic client runs under: longer than the 15
// characters of a task name, so a process.executable.name equal to it proves
// the receiver read /proc/<pid>/exe rather than falling back to comm.
const clientExeName = "ebpfnet-e2e-traffic-client"

var (
	buildOnce sync.Once
	workDir   string // world-readable: the unprivileged runs exec from it
	builtBin  string
	clientBin string
	buildErr  error
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(clientEnv); addr != "" {
		os.Exit(runClient(addr))
	}
	code := m.Run()
	if workDir != "" {
		os.RemoveAll(workDir)
	}
	os.Exit(code)
}

// runClient is the traffic client process: it sends $EBPFNET_E2E_SEND bytes
// to addr, half-closes, reads the reply to EOF, prints "ok" and then stays
// alive until its stdin closes, so the receiver can still read its /proc
// entry when it resolves the pid.
func runClient(addr string) int {
	send, _ := strconv.Atoi(os.Getenv(clientSendEnv))
	want, _ := strconv.Atoi(os.Getenv(clientRecvEnv))
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		fmt.Println("dial:", err)
		return 2
	}
	if _, err := c.Write(bytes.Repeat([]byte{'Z'}, send)); err != nil {
		fmt.Println("write:", err)
		return 2
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		fmt.Println("close write:", err)
		return 2
	}
	got, err := io.Copy(io.Discard, c)
	if err != nil || int(got) != want {
		fmt.Printf("read %d bytes, want %d: %v\n", got, want, err)
		return 2
	}
	c.Close()
	fmt.Println("ok")
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// repoRoot finds the repository root (where builder-config.yaml is).
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "builder-config.yaml")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("builder-config.yaml not found above the test directory")
		}
		dir = parent
	}
}

// binaries returns the collector binary and the traffic client binary (a copy
// of this test binary under clientExeName), both in a world-readable
// directory.
func binaries(t *testing.T) (collectorPath, clientPath string) {
	t.Helper()
	root := repoRoot(t)
	buildOnce.Do(func() {
		workDir, buildErr = os.MkdirTemp("", "otelcol-ebpfnet-e2e-")
		if buildErr != nil {
			return
		}
		if buildErr = os.Chmod(workDir, 0o755); buildErr != nil {
			return
		}
		self, err := os.Executable()
		if err != nil {
			buildErr = err
			return
		}
		clientBin = filepath.Join(workDir, clientExeName)
		if buildErr = copyFile(self, clientBin, 0o755); buildErr != nil {
			return
		}
		if builtBin = os.Getenv(binEnv); builtBin != "" {
			return
		}
		builtBin = filepath.Join(workDir, "otelcol-ebpfnet")
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("build the collector: %w (or set %s)", err, binEnv)
			return
		}
		// As `make build` builds it, so a warm cache from make build serves.
		cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", builtBin, ".")
		cmd.Dir = filepath.Join(root, "cmd", "otelcol-ebpfnet")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build in %s: %w\n%s", cmd.Dir, err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin, clientBin
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeConfig writes a collector configuration readable by any user (under
// workDir: t.TempDir's parent is private to root).
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	binaries(t)
	dir, err := os.MkdirTemp(workDir, "config-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// collector is a running collector process.
type collector struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error // the result of Wait, once done is closed
}

// startCollector runs the collector binary with the configuration, behind
// prefix (e.g. setpriv and its flags, which exec the collector in place, so
// the pid stays the collector's). The output is logged if the test fails.
func startCollector(t *testing.T, bin, config string, prefix ...string) *collector {
	t.Helper()
	args := append(slices.Clone(prefix), bin, "--config", config)
	c := &collector{cmd: exec.Command(args[0], args[1:]...), out: &syncBuffer{}, done: make(chan struct{})}
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		if !c.exited(0) {
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("collector output:\n%s", c.out.String())
		}
	})
	return c
}

// exited waits up to d for the process to end.
func (c *collector) exited(d time.Duration) bool {
	select {
	case <-c.done:
		return true
	case <-time.After(d):
		return false
	}
}

// startClient runs the traffic client against addr; stop ends it.
func startClient(t *testing.T, clientPath, addr string, send, recv int) (pid int, stop func()) {
	t.Helper()
	cmd := exec.Command(clientPath)
	cmd.Env = append(os.Environ(), clientEnv+"="+addr, clientSendEnv+"="+strconv.Itoa(send), clientRecvEnv+"="+strconv.Itoa(recv))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			stdin.Close()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(stop)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ok" {
		t.Fatalf("traffic client: %q %v", line, err)
	}
	return cmd.Process.Pid, stop
}

// serveOnce accepts one connection on l, reads it to EOF, answers with reply
// bytes and closes. It returns how many bytes it read.
func serveOnce(l net.Listener, reply int) <-chan int64 {
	got := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		_, _ = c.Write(bytes.Repeat([]byte{'z'}, reply))
		got <- n
	}()
	return got
}

// otlpSink is an OTLP/HTTP server for metrics and logs: it decodes every
// export request as the protocol defines it and keeps the payloads.
type otlpSink struct {
	mu      sync.Mutex
	batches []pmetric.Metrics
	logs    []plog.Logs
	errs    []error
	srv     *httptest.Server
}

func newOTLPSink(t *testing.T) *otlpSink {
	t.Helper()
	s := &otlpSink{}
	s.srv = httptest.NewServer(s)
	t.Cleanup(s.srv.Close)
	return s
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || (r.URL.Path != "/v1/metrics" && r.URL.Path != "/v1/logs") {
		http.Error(w, "only POST /v1/metrics and /v1/logs", http.StatusNotFound)
		return
	}
	var (
		md  pmetric.Metrics
		ld  plog.Logs
		err error
	)
	if r.URL.Path == "/v1/metrics" {
		md, err = decodeExport[pmetric.Metrics, pmetric.Unmarshaler](r, &pmetric.ProtoUnmarshaler{}, &pmetric.JSONUnmarshaler{}, pmetric.Unmarshaler.UnmarshalMetrics)
	} else {
		ld, err = decodeExport[plog.Logs, plog.Unmarshaler](r, &plog.ProtoUnmarshaler{}, &plog.JSONUnmarshaler{}, plog.Unmarshaler.UnmarshalLogs)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("%s: %w", r.URL.Path, err))
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if r.URL.Path == "/v1/metrics" {
		s.batches = append(s.batches, md)
	} else {
		s.logs = append(s.logs, ld)
	}
	// A full success is an empty Export{Metrics,Logs}ServiceResponse: zero
	// bytes of protobuf.
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

// decodeExport reads an OTLP/HTTP export request's body with the decoder of
// its content type. Export{Metrics,Logs}ServiceRequest and {Metrics,Logs}Data
// are the same messages on the wire (field 1: repeated Resource{Metrics,Logs}),
// so pdata's data decoders read the export requests as sent. (pmetricotlp and
// plogotlp would say so by name, but pull gRPC, and with it golang.org/x/net,
// into the module.)
func decodeExport[T any, U any](r *http.Request, proto, json U, decode func(U, []byte) (T, error)) (T, error) {
	var zero T
	var body io.Reader = r.Body
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "":
	case "gzip":
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			return zero, fmt.Errorf("gzip body: %w", err)
		}
		body = gz
	default:
		return zero, fmt.Errorf("content encoding %q not handled", enc)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return zero, err
	}
	var out T
	switch ct := r.Header.Get("Content-Type"); ct {
	case "application/x-protobuf":
		out, err = decode(proto, b)
	case "application/json":
		out, err = decode(json, b)
	default:
		err = fmt.Errorf("content type %q", ct)
	}
	if err != nil {
		return zero, fmt.Errorf("decode export request: %w", err)
	}
	return out, nil
}

// logRecord is one exported log record, flattened.
type logRecord struct {
	resource            map[string]any
	attrs               map[string]any
	body                string
	severity            plog.SeverityNumber
	severityText        string
	timestamp, observed pcommon.Timestamp
}

// logRecords returns every exported log record whose resource and attributes
// include resWant and attrWant.
func (s *otlpSink) logRecords(resWant, attrWant map[string]any) ([]logRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) > 0 {
		return nil, errors.Join(s.errs...)
	}
	var out []logRecord
	for _, ld := range s.logs {
		for _, rl := range ld.ResourceLogs().All() {
			res := rl.Resource().Attributes().AsRaw()
			if !includes(res, resWant) {
				continue
			}
			for _, sl := range rl.ScopeLogs().All() {
				for _, lr := range sl.LogRecords().All() {
					attrs := lr.Attributes().AsRaw()
					if !includes(attrs, attrWant) {
						continue
					}
					out = append(out, logRecord{
						resource: res, attrs: attrs, body: lr.Body().AsString(),
						severity: lr.SeverityNumber(), severityText: lr.SeverityText(),
						timestamp: lr.Timestamp(), observed: lr.ObservedTimestamp(),
					})
				}
			}
		}
	}
	return out, nil
}

// sumPoint is the newest data point of one series of a sum.
type sumPoint struct {
	resource map[string]any
	attrs    map[string]any
	value    int64
	ts       pcommon.Timestamp
}

// latestSums returns the newest point of every series of the sum metric
// whose resource and point attributes include resWant and attrWant.
func (s *otlpSink) latestSums(metric string, resWant, attrWant map[string]any) ([]sumPoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.errs) > 0 {
		return nil, errors.Join(s.errs...)
	}
	series := make(map[string]sumPoint)
	for _, md := range s.batches {
		for _, rm := range md.ResourceMetrics().All() {
			res := rm.Resource().Attributes().AsRaw()
			if !includes(res, resWant) {
				continue
			}
			for _, sm := range rm.ScopeMetrics().All() {
				for _, m := range sm.Metrics().All() {
					if m.Name() != metric || m.Type() != pmetric.MetricTypeSum {
						continue
					}
					for _, dp := range m.Sum().DataPoints().All() {
						attrs := dp.Attributes().AsRaw()
						if !includes(attrs, attrWant) {
							continue
						}
						key := fmt.Sprint(res, attrs)
						if old, ok := series[key]; !ok || dp.Timestamp() >= old.ts {
							series[key] = sumPoint{resource: res, attrs: attrs, value: dp.IntValue(), ts: dp.Timestamp()}
						}
					}
				}
			}
		}
	}
	out := make([]sumPoint, 0, len(series))
	for _, p := range series {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i].attrs) < fmt.Sprint(out[j].attrs) })
	return out, nil
}

// includes reports whether have holds every key of want with an equal value
// (numbers compared as int64, as OTLP int attributes decode).
func includes(have, want map[string]any) bool {
	for k, w := range want {
		h, ok := have[k]
		if !ok {
			return false
		}
		if wi, ok := w.(int); ok {
			w = int64(wi)
		}
		if h != w {
			return false
		}
	}
	return true
}

// promSample is one line of the Prometheus text format.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape reads the Prometheus text exposition at url.
func scrape(url string) ([]promSample, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var out []promSample
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parsePromLine(line)
		if err != nil {
			return nil, fmt.Errorf("%w in %q", err, line)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// parsePromLine parses `name{k="v",...} value [timestamp]`.
func parsePromLine(line string) (promSample, error) {
	s := promSample{labels: make(map[string]string)}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, errors.New("no value")
	}
	s.name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, ", ")
			if strings.HasPrefix(line, "}") {
				line = line[1:]
				break
			}
			eq := strings.Index(line, `="`)
			if eq < 0 {
				return s, errors.New("bad label")
			}
			key := line[:eq]
			line = line[eq+2:]
			var val strings.Builder
			for {
				if line == "" {
					return s, errors.New("unterminated label value")
				}
				c := line[0]
				line = line[1:]
				if c == '"' {
					break
				}
				if c == '\\' && line != "" {
					switch line[0] {
					case 'n':
						val.WriteByte('\n')
					default:
						val.WriteByte(line[0])
					}
					line = line[1:]
					continue
				}
				val.WriteByte(c)
			}
			s.labels[key] = val.String()
		}
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		return s, errors.New("no value")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, err
	}
	s.value = v
	return s, nil
}

// matching returns the samples named name whose labels include want.
func matching(samples []promSample, name string, want map[string]string) []promSample {
	var out []promSample
	for _, s := range samples {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range want {
			ok = ok && s.labels[k] == v
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// bpfObjects are the ids of the BPF programs, links and maps a process holds
// file descriptors to, read from /proc/<pid>/fdinfo (the same ids bpftool
// lists).
type bpfObjects struct{ progs, links, maps []int }

func (o bpfObjects) String() string {
	return fmt.Sprintf("programs %v, links %v, maps %v", o.progs, o.links, o.maps)
}

func bpfObjectsOf(pid int) (bpfObjects, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return bpfObjects{}, err
	}
	var o bpfObjects
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		var field string
		var dst *[]int
		switch target {
		case "anon_inode:bpf-prog":
			field, dst = "prog_id", &o.progs
		case "anon_inode:bpf_link":
			field, dst = "link_id", &o.links
		case "anon_inode:bpf-map":
			field, dst = "map_id", &o.maps
		default:
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, field+":"); ok {
				if id, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && !slices.Contains(*dst, id) {
					*dst = append(*dst, id)
				}
			}
		}
	}
	return o, nil
}

// loadedBPF lists the ids of every BPF program, link and map in the kernel
// with bpftool.
func loadedBPF() (bpfObjects, error) {
	var o bpfObjects
	for _, kind := range []struct {
		obj string
		dst *[]int
	}{{"prog", &o.progs}, {"link", &o.links}, {"map", &o.maps}} {
		out, err := exec.Command("bpftool", "--json", kind.obj, "show").Output()
		if err != nil {
			return o, fmt.Errorf("bpftool %s show: %w", kind.obj, err)
		}
		var list []struct {
			ID int `json:"id"`
		}
		if err := json.Unmarshal(out, &list); err != nil {
			return o, fmt.Errorf("bpftool %s show: %w", kind.obj, err)
		}
		for _, e := range list {
			*kind.dst = append(*kind.dst, e.ID)
		}
	}
	return o, nil
}

// leftOver returns the ids of ours that are still in loaded.
func leftOver(ours, loaded bpfObjects) bpfObjects {
	common := func(a, b []int) []int {
		var out []int
		for _, id := range a {
			if slices.Contains(b, id) {
				out = append(out, id)
			}
		}
		return out
	}
	return bpfObjects{common(ours.progs, loaded.progs), common(ours.links, loaded.links), common(ours.maps, loaded.maps)}
}

func (o bpfObjects) empty() bool { return len(o.progs)+len(o.links)+len(o.maps) == 0 }
