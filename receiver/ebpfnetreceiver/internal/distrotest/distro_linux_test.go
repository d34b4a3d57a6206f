// SPDX-License-Identifier: Apache-2.0

package distrotest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/privtest"
)

// What README.md documents.
const (
	ioMetric     = "ebpfnet.connection.io"
	ioPromMetric = "ebpfnet_connection_io_bytes_total"
)

// nobody is the unprivileged user the capability tests run the collector as.
const nobody = "65534"

// TestExportsExactBytes runs the collector with the otlp_http and Prometheus
// exporters, makes one loopback TCP connection with known byte counts between
// a client process and this process, and finds exactly those bytes in both
// outputs, under the client's and this process's resources. Then it sends
// SIGTERM and checks the collector stops within 5 s and leaves none of its
// BPF programs, links or maps in the kernel.
func TestExportsExactBytes(t *testing.T) {
	privtest.Require(t)
	if _, err := exec.LookPath("bpftool"); err != nil {
		privtest.SkipOrFail(t, fmt.Errorf("bpftool is needed to check what shutdown leaves in the kernel: %w", err))
	}
	bin, client := binaries(t)
	sink := newOTLPSink(t)
	promPort := freePort(t)
	cfg := writeConfig(t, pollEverySecond(promPort, sink.srv.URL))

	col := startCollector(t, bin, cfg)
	waitStarted(t, col)

	// The traffic: the client sends 100003 bytes, this process answers 7919.
	const sent, replied = 100003, 7919
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	got := serveOnce(l, replied)
	clientPID, stopClient := startClient(t, client, l.Addr().String(), sent, replied)
	if n := <-got; n != sent {
		t.Fatalf("server read %d bytes, want %d", n, sent)
	}

	// The four numbers, by resource (pid) and attributes.
	type want struct {
		pid       int
		direction string // ebpfnet.connection.direction
		io        string // network.io.direction
		bytes     int64
	}
	wants := []want{
		{clientPID, "outgoing", "transmit", sent},
		{clientPID, "outgoing", "receive", replied},
		{os.Getpid(), "incoming", "receive", sent},
		{os.Getpid(), "incoming", "transmit", replied},
	}
	commonAttrs := map[string]any{
		"network.transport":     "tcp",
		"network.type":          "ipv4",
		"network.local.address": "127.0.0.1",
		"network.peer.address":  "127.0.0.1",
		"server.port":           port,
	}
	promURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort)

	var last []string
	deadline := time.Now().Add(30 * time.Second)
	for {
		last = last[:0]
		samples, scrapeErr := scrape(promURL)
		if scrapeErr != nil {
			last = append(last, "prometheus: "+scrapeErr.Error())
		}
		for _, w := range wants {
			attrs := map[string]any{"ebpfnet.connection.direction": w.direction, "network.io.direction": w.io}
			for k, v := range commonAttrs {
				attrs[k] = v
			}
			res := map[string]any{"process.pid": w.pid}
			if w.pid == clientPID {
				res["process.executable.name"] = clientExeName
			}
			pts, err := sink.latestSums(ioMetric, res, attrs)
			if err != nil {
				t.Fatalf("OTLP server: %v", err)
			}
			if len(pts) != 1 || pts[0].value != w.bytes {
				last = append(last, fmt.Sprintf("OTLP %s %v %v: want one series = %d, got %+v", ioMetric, res, attrs, w.bytes, pts))
			}

			labels := map[string]string{"process_pid": strconv.Itoa(w.pid)}
			for k, v := range attrs {
				labels[strings.ReplaceAll(k, ".", "_")] = fmt.Sprint(v)
			}
			if w.pid == clientPID {
				labels["process_executable_name"] = clientExeName
			}
			if ps := matching(samples, ioPromMetric, labels); len(ps) != 1 || ps[0].value != float64(w.bytes) {
				last = append(last, fmt.Sprintf("Prometheus %s%v: want one sample = %d, got %+v", ioPromMetric, labels, w.bytes, ps))
			}
		}
		if len(last) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the traffic's bytes did not show up exactly within 30 s:\n%s", strings.Join(last, "\n"))
		}
		time.Sleep(500 * time.Millisecond)
	}
	stopClient()

	// SIGTERM: a clean stop within 5 s, and nothing of ours left in the kernel.
	ours, err := bpfObjectsOf(col.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(ours.progs) == 0 || len(ours.links) == 0 {
		t.Fatalf("the running collector holds no BPF programs or links (%v): the leak check would prove nothing", ours)
	}
	t.Logf("the running collector holds %v", ours)
	start := time.Now()
	if err := col.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !col.exited(5 * time.Second) {
		t.Fatalf("the collector did not exit within 5 s of SIGTERM")
	}
	t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	if col.err != nil {
		t.Errorf("exit after SIGTERM: %v, want status 0", col.err)
	}
	// The kernel frees ids as the last reference goes; give RCU a moment.
	var left bpfObjects
	for range 20 {
		loaded, err := loadedBPF()
		if err != nil {
			t.Fatal(err)
		}
		if left = leftOver(ours, loaded); left.empty() {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !left.empty() {
		t.Errorf("left in the kernel after shutdown: %v", left)
	}
}

// TestUnprivilegedFailsFast runs the collector as nobody with no capabilities:
// it must exit non-zero within 5 s and end with one line that says which
// capabilities are missing.
func TestUnprivilegedFailsFast(t *testing.T) {
	if _, err := os.Stat(privtest.BTFPath); err != nil {
		// Without BTF the tracer reports that first, not the capabilities.
		privtest.SkipOrFail(t, fmt.Errorf("kernel BTF: %w", err))
	}
	bin, _ := binaries(t)
	cfg := writeConfig(t, fmt.Sprintf(`
receivers:
  ebpfnet:
exporters:
  prometheus:
    endpoint: 127.0.0.1:%d
service:
  pipelines:
    metrics:
      receivers: [ebpfnet]
      exporters: [prometheus]
  telemetry:
    metrics:
      level: none
`, freePort(t)))
	var prefix []string
	if os.Geteuid() == 0 {
		prefix = []string{"setpriv", "--reuid=" + nobody, "--regid=" + nobody, "--clear-groups", "--inh-caps=-all", "--"}
	}
	start := time.Now()
	col := startCollector(t, bin, cfg, prefix...)
	if !col.exited(5 * time.Second) {
		t.Fatal("the unprivileged collector still runs after 5 s")
	}
	t.Logf("exited after %v: %v", time.Since(start).Round(time.Millisecond), col.err)
	var exitErr *exec.ExitError
	if !errors.As(col.err, &exitErr) || exitErr.ExitCode() == 0 {
		t.Fatalf("exit %v, want a non-zero status", col.err)
	}
	// The collector logs as it starts and stops; what it ends with is its
	// one "Error: ..." line, the last one.
	var errLines []string
	var last string
	sc := bufio.NewScanner(strings.NewReader(col.out.String()))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			last = line
			if strings.HasPrefix(line, "Error:") {
				errLines = append(errLines, line)
			}
		}
	}
	if len(errLines) != 1 || errLines[0] != last {
		t.Fatalf("want one Error: line, the last, got %q", errLines)
	}
	t.Logf("%s", last)
	for _, c := range []string{"missing capability", "CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"} {
		if !strings.Contains(last, c) {
			t.Errorf("the error line does not say %q: %s", c, last)
		}
	}
}

// TestRunsWithSystemdCapabilities runs the collector as nobody with only the
// capabilities deploy/systemd/otelcol-ebpfnet.service grants, as ambient
// capabilities the way systemd does, and checks it reports a client's traffic
// with the full executable name (read from /proc/<pid>/exe of a root
// process).
func TestRunsWithSystemdCapabilities(t *testing.T) {
	privtest.Require(t)
	if os.Geteuid() != 0 {
		privtest.SkipOrFail(t, errors.New("switching to an unprivileged user with chosen capabilities needs root"))
	}
	caps := unitCapabilities(t)
	t.Logf("capabilities from the systemd unit: %v", caps)
	var set []string
	for _, c := range caps {
		set = append(set, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	capList := strings.Join(set, ",")
	prefix := []string{"setpriv", "--reuid=" + nobody, "--regid=" + nobody, "--clear-groups",
		"--inh-caps=-all," + capList, "--ambient-caps=-all," + capList, "--"}

	bin, client := binaries(t)
	promPort := freePort(t)
	cfg := writeConfig(t, pollEverySecond(promPort, ""))
	col := startCollector(t, bin, cfg, prefix...)
	waitStarted(t, col)

	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := serveOnce(l, 321)
	clientPID, _ := startClient(t, client, l.Addr().String(), 4321, 321)
	if n := <-got; n != 4321 {
		t.Fatalf("server read %d bytes, want 4321", n)
	}
	labels := map[string]string{
		"process_pid":                  strconv.Itoa(clientPID),
		"process_executable_name":      clientExeName,
		"ebpfnet_connection_direction": "outgoing",
		"network_io_direction":         "transmit",
		"server_port":                  strconv.Itoa(l.Addr().(*net.TCPAddr).Port),
	}
	var ps []promSample
	for deadline := time.Now().Add(30 * time.Second); ; {
		samples, err := scrape(fmt.Sprintf("http://127.0.0.1:%d/metrics", promPort))
		if ps = matching(samples, ioPromMetric, labels); err == nil && len(ps) == 1 && ps[0].value == 4321 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s%v = 4321 within 30 s (scrape error %v), got %+v", ioPromMetric, labels, err, ps)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err := col.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !col.exited(5*time.Second) || col.err != nil {
		t.Fatalf("after SIGTERM: exited %v, %v", col.exited(0), col.err)
	}
}

// TestValidate runs `otelcol-ebpfnet validate` on the shipped configurations
// and on bad ebpfnet configurations, whose error must name the key.
func TestValidate(t *testing.T) {
	bin, _ := binaries(t)
	root := repoRoot(t)

	validate := func(t *testing.T, config string, env ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(bin, "validate", "--config", config)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	t.Run("default", func(t *testing.T) {
		if out, err := validate(t, filepath.Join(root, "config", "default.yaml")); err != nil {
			t.Fatalf("config/default.yaml: %v\n%s", err, out)
		}
	})
	t.Run("otlp", func(t *testing.T) {
		if out, err := validate(t, filepath.Join(root, "config", "otlp.yaml"), "OTLP_ENDPOINT=http://127.0.0.1:4318"); err != nil {
			t.Fatalf("config/otlp.yaml: %v\n%s", err, out)
		}
	})
	t.Run("kubernetes", func(t *testing.T) {
		cfg := writeConfig(t, configMapConfig(t, filepath.Join(root, "deploy", "kubernetes", "otelcol-ebpfnet.yaml")))
		if out, err := validate(t, cfg, "K8S_NODE_NAME=node-1", "POD_IP=10.0.0.7", "OTLP_ENDPOINT=gateway:4317"); err != nil {
			t.Fatalf("the DaemonSet's configuration: %v\n%s", err, out)
		}
	})

	for _, tc := range []struct {
		name, receiver, key string
	}{
		{"negative interval", "collection_interval: -1s", "collection_interval"},
		{"zero table", "max_tracked_connections: 0", "max_tracked_connections"},
		{"unknown key", "colection_interval: 5s", "colection_interval"},
		{"unknown attribute", "metrics:\n      ebpfnet.connection.duration:\n        attributes: [process.pid]", "ebpfnet.connection.duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := writeConfig(t, fmt.Sprintf(`
receivers:
  ebpfnet:
    %s
exporters:
  debug:
service:
  pipelines:
    metrics:
      receivers: [ebpfnet]
      exporters: [debug]
`, tc.receiver))
			out, err := validate(t, cfg)
			if err == nil {
				t.Fatalf("validate accepted %q:\n%s", tc.receiver, out)
			}
			if !strings.Contains(out, tc.key) || !strings.Contains(out, "ebpfnet") {
				t.Fatalf("the error does not name ebpfnet and %q:\n%s", tc.key, out)
			}
			t.Logf("%s", strings.TrimSpace(out))
		})
	}
}

// waitStarted waits until the collector logs that it is ready, failing fast
// with its output if it exits first.
// pollEverySecond is a configuration with the receiver polled every second,
// a Prometheus exporter on promPort and, when otlpURL is set, an OTLP/HTTP
// exporter to it.
func pollEverySecond(promPort int, otlpURL string) string {
	exporters, otlp := "[prometheus]", ""
	if otlpURL != "" {
		exporters, otlp = "[otlp_http, prometheus]", fmt.Sprintf("  otlp_http:\n    endpoint: %s\n", otlpURL)
	}
	return fmt.Sprintf(`
receivers:
  ebpfnet:
    collection_interval: 1s
exporters:
%s  prometheus:
    endpoint: 127.0.0.1:%d
    resource_constant_labels:
      included: ["*"]
    translation_strategy: UnderscoreEscapingWithSuffixes
service:
  pipelines:
    metrics:
      receivers: [ebpfnet]
      exporters: %s
  telemetry:
    metrics:
      level: none
`, otlp, promPort, exporters)
}

func waitStarted(t *testing.T, c *collector) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if strings.Contains(c.out.String(), "Everything is ready") {
			return
		}
		if c.exited(100 * time.Millisecond) {
			t.Fatalf("the collector exited at start (%v):\n%s", c.err, c.out.String())
		}
	}
	t.Fatalf("the collector did not get ready within 30 s:\n%s", c.out.String())
}

// unitCapabilities reads AmbientCapabilities of the systemd unit.
func unitCapabilities(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "systemd", "otelcol-ebpfnet.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "AmbientCapabilities="); ok {
			return strings.Fields(v)
		}
	}
	t.Fatal("no AmbientCapabilities= in the systemd unit")
	return nil
}

// configMapConfig returns the collector configuration in the ConfigMap of the
// Kubernetes manifest.
func configMapConfig(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	for {
		var obj struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&obj); err != nil {
			t.Fatalf("%s: no ConfigMap with config.yaml: %v", path, err)
		}
		if obj.Kind == "ConfigMap" && obj.Data["config.yaml"] != "" {
			return obj.Data["config.yaml"]
		}
	}
}
