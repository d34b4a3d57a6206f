// SPDX-License-Identifier: Apache-2.0

//go:build linux

package ebpfnetreceiver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadata"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/privtest"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/tracer"
)

// TestEndToEndLoopbackBytes runs the receiver with the real kernel tracer:
// real loopback TCP traffic with known byte counts must show up exactly in
// ebpfnet.connection.io, under this process's resource and the right
// direction and server.port. It needs root and BTF: off CI it skips without
// them, under CI it fails.
func TestEndToEndLoopbackBytes(t *testing.T) {
	privtest.Require(t)
	const sent, received = 123457, 54321 // bytes the client sends and receives

	bpfFDsBefore := countBPFFDs(t)
	cfg := createDefaultConfig()
	cfg.CollectionInterval = 200 * time.Millisecond
	sink, shutdown := startMetricsReceiver(t, cfg)

	port := loopbackExchange(t, sent, received)

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{
		"outgoing/transmit": sent, "outgoing/receive": received, // the client's socket
		"incoming/transmit": received, "incoming/receive": sent, // the server's socket
	}
	var got map[string]int64
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if all := sink.AllMetrics(); len(all) > 0 {
			got = ioByDirection(all[len(all)-1], int64(os.Getpid()), filepath.Base(exe), int64(port))
			if equal(got, want) {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !equal(got, want) {
		t.Fatalf("ebpfnet.connection.io for pid %d (%s), server.port %d: got %v, want %v",
			os.Getpid(), filepath.Base(exe), port, got, want)
	}

	shutdown()
	shutdown() // idempotent
	if after := countBPFFDs(t); after != bpfFDsBefore {
		t.Fatalf("BPF objects left behind: %d BPF file descriptors before start, %d after shutdown", bpfFDsBefore, after)
	}
}

// startMetricsReceiver starts the metrics receiver of cfg on the real kernel
// tracer, exporting into the sink it returns, and shuts it down when the test
// ends, or earlier by the shutdown it returns (which may be called again).
// Where the machine cannot run the tracer the test skips (fails under CI);
// any other start error fails it.
func startMetricsReceiver(t *testing.T, cfg *Config) (sink *consumertest.MetricsSink, shutdown func()) {
	t.Helper()
	sink = new(consumertest.MetricsSink)
	r, err := NewFactory().CreateMetrics(context.Background(), receivertest.NewNopSettings(metadata.Type), cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		if bpfCannotLoadHere(err) {
			privtest.SkipOrFail(t, err)
		}
		t.Fatalf("start: %+v", err) // a bug, wherever the test runs
	}
	shutdown = func() {
		if err := r.Shutdown(context.Background()); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
	t.Cleanup(shutdown)
	return sink, shutdown
}

// bpfCannotLoadHere reports whether a Start error means this machine cannot
// run the tracer (no privilege, no BTF, not Linux, a kernel hook missing), as
// opposed to a bug: only those may skip.
func bpfCannotLoadHere(err error) bool {
	for _, e := range []error{tracer.ErrMissingCapability, tracer.ErrNoBTF, tracer.ErrUnsupportedOS, tracer.ErrHookUnavailable} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// loopbackExchange opens a loopback TCP listener, has a client send exactly
// sent bytes and receive exactly received bytes, closes both ends and
// returns the listening port.
func loopbackExchange(t *testing.T, sent, received int) int {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	serverErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			serverErr <- err
			return
		}
		defer c.Close()
		if n, err := io.CopyN(io.Discard, c, int64(sent)); err != nil {
			serverErr <- fmt.Errorf("server read %d of %d bytes: %w", n, sent, err)
			return
		}
		_, err = c.Write(make([]byte, received))
		serverErr <- err
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(make([]byte, sent)); err != nil {
		t.Fatal(err)
	}
	if n, err := io.CopyN(io.Discard, c, int64(received)); err != nil {
		t.Fatalf("client read %d of %d bytes: %v", n, received, err)
	}
	if err := <-serverErr; err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return ln.Addr().(*net.TCPAddr).Port
}

// ioByDirection sums ebpfnet.connection.io by "direction/io direction" for
// the loopback series on port under the resource of pid and exe.
func ioByDirection(md pmetric.Metrics, pid int64, exe string, port int64) map[string]int64 {
	return sumByDirection(md, "ebpfnet.connection.io", pid, exe, port)
}

// sumByDirection sums the sum metric name by "direction/io direction" (the
// latter empty for metrics without it) for the loopback series on port under
// the resource of pid and exe.
func sumByDirection(md pmetric.Metrics, name string, pid int64, exe string, port int64) map[string]int64 {
	out := map[string]int64{}
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		res := rms.At(i).Resource().Attributes()
		if v, ok := res.Get("process.pid"); !ok || v.Int() != pid {
			continue
		}
		if v, ok := res.Get("process.executable.name"); !ok || v.Str() != exe {
			continue
		}
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				if ms.At(k).Name() != name {
					continue
				}
				dps := ms.At(k).Sum().DataPoints()
				for l := 0; l < dps.Len(); l++ {
					a := dps.At(l).Attributes()
					if str(a, "network.peer.address") != "127.0.0.1" || intAttr(a, "server.port") != port ||
						str(a, "network.transport") != "tcp" || str(a, "network.type") != "ipv4" {
						continue
					}
					out[str(a, "ebpfnet.connection.direction")+"/"+str(a, "network.io.direction")] += dps.At(l).IntValue()
				}
			}
		}
	}
	return out
}

func str(m pcommon.Map, k string) string {
	if v, ok := m.Get(k); ok {
		return v.AsString()
	}
	return ""
}

func intAttr(m pcommon.Map, k string) int64 {
	v, _ := m.Get(k)
	return v.Int()
}

func equal(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

// countBPFFDs counts this process's file descriptors that hold BPF programs,
// maps or links.
func countBPFFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && strings.HasPrefix(target, "anon_inode:bpf") {
			n++
		}
	}
	return n
}

// TestClosedConnectionInNextPoll: a connection whose two sockets are gone from
// the kernel before a poll is in that poll's export, closed at both ends with
// its exact bytes, not one or more polls later.
func TestClosedConnectionInNextPoll(t *testing.T) {
	privtest.Require(t)
	const sent, received = 1234, 56
	set := receivertest.NewNopSettings(metadata.Type)
	s := attachScraper(t, newRegistry(newTracerSource, newProcResolver), createDefaultConfig(), set)
	if err := s.start(context.Background(), componenttest.NewNopHost()); err != nil {
		if bpfCannotLoadHere(err) {
			privtest.SkipOrFail(t, err)
		}
		t.Fatalf("start: %+v", err)
	}
	defer func() {
		if err := s.shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	if _, err := s.scrape(context.Background()); err != nil {
		t.Fatal(err)
	}

	port := loopbackExchange(t, sent, received)
	waitSocketsGone(t, port)
	md, err := s.scrape(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pid := int64(os.Getpid())
	closed := sumByDirection(md, "ebpfnet.connection.closed", pid, filepath.Base(exe), int64(port))
	if want := map[string]int64{"outgoing/": 1, "incoming/": 1}; !equal(closed, want) {
		t.Errorf("ebpfnet.connection.closed of the poll after both sockets were gone: %v, want %v", closed, want)
	}
	io := ioByDirection(md, pid, filepath.Base(exe), int64(port))
	if want := map[string]int64{"outgoing/transmit": sent, "outgoing/receive": received, "incoming/transmit": received, "incoming/receive": sent}; !equal(io, want) {
		t.Errorf("ebpfnet.connection.io of that poll: %v, want %v", io, want)
	}
}

// waitSocketsGone waits until no TCP socket but TIME-WAIT ones (which are no
// longer sockets a process holds) has port at either end: /proc/net/tcp
// lists every IPv4 TCP socket of this namespace with its state (the test's
// connection is IPv4).
func waitSocketsGone(t *testing.T, port int) {
	t.Helper()
	hexPort := fmt.Sprintf(":%04X", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		raw, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for _, l := range strings.Split(string(raw), "\n")[1:] {
			f := strings.Fields(l)
			if len(f) > 3 && (strings.HasSuffix(f[1], hexPort) || strings.HasSuffix(f[2], hexPort)) && f[3] != "06" {
				left = append(left, l)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sockets on port %d still there: %q", port, left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
