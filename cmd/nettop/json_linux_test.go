// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/hostconns"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/hostconns/hostconnstest"
)

// TestJSONMatchesReceiver runs the receiver (in this process, with a sink)
// and two nettop -json processes (per connection and -aggregate) on one
// workload: two loopback clients of one server port, with exact byte counts,
// held open. Each nettop row's bytes must be the bytes the test moved, and
// its bytes and packets the receiver's data points for that connection
// (ebpfnet.connection.io, ebpfnet.connection.packet.count: the two
// connections of one direction share a series, as they do nettop's
// aggregated row).
func TestJSONMatchesReceiver(t *testing.T) {
	hostconnstest.Require(t)
	bin := nettopBinary(t)
	ln := listen(t)
	srvPort := port(ln)

	f := ebpfnetreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*ebpfnetreceiver.Config)
	cfg.CollectionInterval = 300 * time.Millisecond
	sink := new(consumertest.MetricsSink)
	rcv, err := f.CreateMetrics(context.Background(), receivertest.NewNopSettings(f.Type()), cfg, sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := rcv.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		if hostconnstest.CannotRunHere(err) {
			hostconnstest.SkipOrFail(t, err)
		}
		t.Fatalf("start receiver: %+v", err)
	}
	defer func() {
		if err := rcv.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}()

	perConn := startJSON(t, bin, "-filter", fmt.Sprintf("port:%d", srvPort))
	grouped := startJSON(t, bin, "-aggregate", "-filter", fmt.Sprintf("port:%d", srvPort))

	// Both tracers are attached: every byte from here on is theirs.
	const sent1, recv1, sent2, recv2 = 123457, 54321, 7000, 300000
	cli1 := exchange(t, ln, sent1, recv1)
	cli2 := exchange(t, ln, sent2, recv2)

	pid := uint32(os.Getpid())
	// The exact bytes of each socket, by its local port: the clients', and the
	// server's sockets, whose peer port is the client's.
	wantBytes := map[string][2]uint64{
		fmt.Sprintf("outgoing %d", cli1): {sent1, recv1}, fmt.Sprintf("incoming %d", cli1): {recv1, sent1},
		fmt.Sprintf("outgoing %d", cli2): {sent2, recv2}, fmt.Sprintf("incoming %d", cli2): {recv2, sent2},
	}
	wantSeries := map[string]int64{
		"outgoing/transmit": sent1 + sent2, "outgoing/receive": recv1 + recv2,
		"incoming/transmit": recv1 + recv2, "incoming/receive": sent1 + sent2,
	}

	var conns, groups []jsonRow
	var ioSeries, packets map[string]int64
	var exe string
	ok := func() bool {
		conns, groups = mine(perConn.latest(), pid), mine(grouped.latest(), pid)
		if len(conns) != 4 || len(groups) != 2 {
			return false
		}
		for _, r := range conns {
			ephemeral := r.LocalPort
			if r.Direction == "incoming" {
				ephemeral = r.PeerPort
			}
			if wantBytes[fmt.Sprintf("%s %d", r.Direction, ephemeral)] != [2]uint64{r.SentBytes, r.ReceivedBytes} {
				return false
			}
		}
		exe = conns[0].Process
		all := sink.AllMetrics()
		if len(all) == 0 {
			return false
		}
		md := all[len(all)-1]
		ioSeries = series(md, "ebpfnet.connection.io", int64(pid), exe, int64(srvPort))
		packets = series(md, "ebpfnet.connection.packet.count", int64(pid), exe, int64(srvPort))
		if !sameMap(ioSeries, wantSeries) {
			return false
		}
		// The connections are idle: once both have read the kernel after the
		// last segment, their packets agree.
		return sameMap(packets, sumRows(conns, packetsOf)) && sameMap(packets, sumRows(groups, packetsOf))
	}
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s:\nnettop -json rows of pid %d: %+v\nnettop -json -aggregate: %+v\nreceiver io %v (want %v), packets %v",
				pid, conns, groups, ioSeries, wantSeries, packets)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !sameMap(sumRows(conns, bytesOf), ioSeries) || !sameMap(sumRows(groups, bytesOf), ioSeries) {
		t.Errorf("bytes: nettop %v, -aggregate %v, receiver %v", sumRows(conns, bytesOf), sumRows(groups, bytesOf), ioSeries)
	}
	for _, g := range groups {
		if g.Connections != 2 || g.ServerPort != srvPort || g.Process != exe {
			t.Errorf("aggregated row %+v: want 2 connections of %s on server port %d", g, exe, srvPort)
		}
	}
	t.Logf("receiver and nettop agree: io %v, packets %v", ioSeries, packets)
}

// jsonStream is a running nettop -json -count 0: the last complete snapshot
// it printed.
type jsonStream struct {
	mu   sync.Mutex
	last []jsonRow
}

func (s *jsonStream) latest() []jsonRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// startJSON runs nettop -json -count 0 with args and waits until its tracer
// is attached (its first line on stderr); it is stopped when the test ends.
func startJSON(t *testing.T, bin string, args ...string) *jsonStream {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-json", "-count", "0", "-interval", "300ms"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Errorf("nettop %v: %v", args, err)
		}
	})
	errLines := bufio.NewScanner(stderr)
	if !errLines.Scan() || !strings.Contains(errLines.Text(), "tracing") {
		t.Fatalf("nettop %v did not start: %q", args, errLines.Text())
	}
	go io.Copy(io.Discard, stderr)

	s := &jsonStream{}
	go func() {
		// A snapshot's rows share its time: a row with a new time ends the
		// previous snapshot.
		var cur []jsonRow
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var r jsonRow
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Errorf("nettop -json line %q: %v", sc.Text(), err)
				return
			}
			if len(cur) > 0 && !r.Time.Equal(cur[0].Time) {
				s.mu.Lock()
				s.last = cur
				s.mu.Unlock()
				cur = nil
			}
			cur = append(cur, r)
		}
	}()
	return s
}

func mine(rows []jsonRow, pid uint32) []jsonRow {
	var out []jsonRow
	for _, r := range rows {
		if r.PID == pid {
			out = append(out, r)
		}
	}
	return out
}

func bytesOf(r *hostconns.Row) [2]uint64   { return [2]uint64{r.SentBytes, r.ReceivedBytes} }
func packetsOf(r *hostconns.Row) [2]uint64 { return [2]uint64{r.SentPackets, r.ReceivedPackets} }

// sumRows sums what of the rows by "direction/io direction", the receiver's
// series of one server port.
func sumRows(rows []jsonRow, what func(*hostconns.Row) [2]uint64) map[string]int64 {
	out := map[string]int64{}
	for i := range rows {
		v := what(&rows[i].Row)
		out[rows[i].Direction+"/transmit"] += int64(v[0])
		out[rows[i].Direction+"/receive"] += int64(v[1])
	}
	return out
}

// series sums the sum metric name by "direction/io direction" over the
// loopback series of server port under the resource of pid and exe.
func series(md pmetric.Metrics, name string, pid int64, exe string, port int64) map[string]int64 {
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
					if attr(a, "network.peer.address") != "127.0.0.1" || attr(a, "server.port") != fmt.Sprint(port) || attr(a, "network.transport") != "tcp" {
						continue
					}
					out[attr(a, "ebpfnet.connection.direction")+"/"+attr(a, "network.io.direction")] += dps.At(l).IntValue()
				}
			}
		}
	}
	return out
}

func attr(m pcommon.Map, k string) string {
	if v, ok := m.Get(k); ok {
		return v.AsString()
	}
	return ""
}

func sameMap(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
