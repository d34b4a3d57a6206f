// SPDX-License-Identifier: Apache-2.0

package distrotest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/privtest"
)

// TestFailureLogsExported runs the distribution with the receiver in a
// metrics and a logs pipeline, both exported over OTLP/HTTP, makes exactly
// three connects from this process to a closed loopback port, each from a
// local port it chose, and finds exactly three log records of them, each with
// the refused connect's every field, and the same three failures in
// ebpfnet.tcp.failure.count: the two pipelines read one tracer. Then the same
// with a logs pipeline only, which polls the tracer itself.
func TestFailureLogsExported(t *testing.T) {
	privtest.Require(t)
	t.Run("metrics_and_logs", func(t *testing.T) { testFailureLogs(t, true) })
	t.Run("logs_only", func(t *testing.T) { testFailureLogs(t, false) })
}

func testFailureLogs(t *testing.T, withMetrics bool) {
	bin, _ := binaries(t)
	sink := newOTLPSink(t)
	metricsPipeline := ""
	if withMetrics {
		metricsPipeline = "    metrics:\n      receivers: [ebpfnet]\n      exporters: [otlp_http]\n"
	}
	cfg := writeConfig(t, fmt.Sprintf(`
receivers:
  ebpfnet:
    collection_interval: 1s
exporters:
  otlp_http:
    endpoint: %s
service:
  pipelines:
%s    logs:
      receivers: [ebpfnet]
      exporters: [otlp_http]
  telemetry:
    metrics:
      level: none
`, sink.srv.URL, metricsPipeline))
	col := startCollector(t, bin, cfg)
	waitStarted(t, col)

	const n = 3
	closedPort := freePort(t) // listened on and closed: a connect is refused
	var localPorts []int
	for range n {
		local := freePort(t)
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: local}, Timeout: 5 * time.Second}
		c, err := d.Dial("tcp4", fmt.Sprintf("127.0.0.1:%d", closedPort))
		if err == nil {
			c.Close()
			t.Fatalf("connect to the closed port %d succeeded", closedPort)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("connect to the closed port %d: %v, want connection refused", closedPort, err)
		}
		localPorts = append(localPorts, local)
	}

	pid := os.Getpid()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	resWant := map[string]any{"process.pid": pid}
	attrWant := map[string]any{"network.peer.port": closedPort}
	var recs []logRecord
	deadline := time.Now().Add(30 * time.Second)
	for {
		if recs, err = sink.logRecords(resWant, attrWant); err != nil {
			t.Fatalf("OTLP server: %v", err)
		}
		if len(recs) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Two more polls: no record comes twice or late.
	time.Sleep(2500 * time.Millisecond)
	if recs, err = sink.logRecords(resWant, attrWant); err != nil {
		t.Fatalf("OTLP server: %v", err)
	}
	if len(recs) != n {
		t.Fatalf("%d log records of the connects to port %d, want %d: %+v", len(recs), closedPort, n, recs)
	}

	t.Logf("first record: %q resource %v attributes %v", recs[0].body, recs[0].resource, recs[0].attrs)
	var gotPorts []int
	for _, r := range recs {
		wantRes := map[string]any{"process.pid": pid, "process.executable.name": filepath.Base(exe)}
		if !includes(r.resource, wantRes) {
			t.Errorf("resource %v, want it to hold %v", r.resource, wantRes)
		}
		lp, _ := r.attrs["network.local.port"].(int64)
		gotPorts = append(gotPorts, int(lp))
		want := map[string]any{
			"network.transport": "tcp", "network.type": "ipv4", "ebpfnet.connection.direction": "outgoing",
			"network.local.address": "127.0.0.1", "network.local.port": lp,
			"network.peer.address": "127.0.0.1", "network.peer.port": int64(closedPort),
			"error.type": "refused", "ebpfnet.tcp.syn_attempts": int64(1),
		}
		if fmt.Sprint(r.attrs) != fmt.Sprint(want) {
			t.Errorf("attributes\n got %v\nwant %v", r.attrs, want)
		}
		if body := fmt.Sprintf("tcp connect to 127.0.0.1:%d failed: refused", closedPort); r.body != body {
			t.Errorf("body %q, want %q", r.body, body)
		}
		if r.severity != plog.SeverityNumberWarn || r.severityText != "WARN" {
			t.Errorf("severity %v %q, want WARN", r.severity, r.severityText)
		}
		if r.timestamp == 0 || r.timestamp > r.observed {
			t.Errorf("timestamp %v, observed %v: want the close before the poll that saw it", r.timestamp, r.observed)
		}
	}
	slices.Sort(gotPorts)
	slices.Sort(localPorts)
	if !slices.Equal(gotPorts, localPorts) {
		t.Errorf("local ports %v, want those the connects bound %v", gotPorts, localPorts)
	}

	if withMetrics {
		pts, err := sink.latestSums("ebpfnet.tcp.failure.count", resWant, map[string]any{"error.type": "refused", "server.port": closedPort})
		if err != nil {
			t.Fatalf("OTLP server: %v", err)
		}
		if len(pts) != 1 || pts[0].value != n {
			t.Errorf("ebpfnet.tcp.failure.count of the connects: %+v, want one series = %d", pts, n)
		}
	}
	if c := strings.Count(col.out.String(), "ebpfnet tracer started"); c != 1 {
		t.Errorf("the collector started the tracer %d times, want once", c)
	}
}
