// SPDX-License-Identifier: Apache-2.0

package aggregate

import (
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// defaultSet is the default key: everything but the ephemeral ports.
const defaultSet = AttrConnectionDirection | AttrIODirection | AttrLocalAddress | AttrPeerAddress | AttrProtocolName |
	AttrTransport | AttrNetworkType | AttrRPCSystem | AttrServerPort | AttrTLSVersion | AttrErrorType

func testConfig() Config {
	var cfg Config
	for m := range cfg.Metrics {
		cfg.Metrics[m] = MetricConfig{Enabled: true, Attrs: defaultSet}
	}
	return cfg
}

func outgoing(localPort uint16, cookie uint64, sent, recv uint64) conns.Conn {
	return conns.Conn{
		Key: conns.Key{
			Local:     netip.MustParseAddrPort("10.0.0.1:" + itoa(localPort)),
			Peer:      netip.MustParseAddrPort("10.0.0.2:443"),
			Netns:     4026531840,
			PID:       100,
			Transport: conns.TransportTCP,
		},
		Cookie:    cookie,
		Direction: conns.DirectionOutgoing,
		SentBytes: sent, RecvBytes: recv,
		SentPackets: 1, RecvPackets: 1,
	}
}

func itoa(p uint16) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), p).String()[len("0.0.0.0:"):]
}

// sum returns the value of the one point of metric m with io direction d, failing if not exactly one.
func sum(t *testing.T, rds []ResourceData, m Metric, d IODirection) Point {
	t.Helper()
	var found []Point
	for _, rd := range rds {
		for _, p := range rd.Sums[m] {
			if p.Attrs.Str(AttrIODirection) == d.String() {
				found = append(found, p)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("metric %d direction %v: want 1 point, got %d: %+v", m, d, len(found), found)
	}
	return found[0]
}

func TestEphemeralPortsCollapseAndCountersStayCumulative(t *testing.T) {
	a := New(testConfig(), t0)
	// Poll 1: two connections from ephemeral ports to the same server.
	a.Update(conns.Snapshot{Time: t0.Add(10 * time.Second), Active: []conns.Conn{
		outgoing(50000, 1, 100, 1000),
		outgoing(50001, 2, 10, 20),
	}})
	rds := a.Collect()
	if got := sum(t, rds, ConnectionIO, IOTransmit); got.Value != 110 || got.Attrs.Int(AttrServerPort) != 443 || !got.Start.Equal(t0) {
		t.Fatalf("poll 1 transmit: %+v", got)
	}
	if got := sum(t, rds, ConnectionCount, IONone).Value; got != 2 {
		t.Fatalf("poll 1 count: %d", got)
	}
	// Poll 2: conn 1 grew and closed with final counters; conn 2 unchanged;
	// conn 3 opened and closed between the polls.
	c1 := outgoing(50000, 1, 150, 1500)
	c1.Duration = 3 * time.Second
	c3 := outgoing(50002, 3, 7, 0)
	a.Update(conns.Snapshot{Time: t0.Add(20 * time.Second),
		Active: []conns.Conn{outgoing(50001, 2, 10, 20)},
		Closed: []conns.Conn{c1, c3},
	})
	rds = a.Collect()
	tx := sum(t, rds, ConnectionIO, IOTransmit)
	if tx.Value != 167 || !tx.Start.Equal(t0) {
		t.Fatalf("poll 2 transmit: want 167 since t0, got %+v", tx)
	}
	if rx := sum(t, rds, ConnectionIO, IOReceive); rx.Value != 1520 {
		t.Fatalf("poll 2 receive: want 1520, got %d", rx.Value)
	}
	if got := sum(t, rds, ConnectionOpened, IONone).Value; got != 3 {
		t.Fatalf("opened: want 3, got %d", got)
	}
	if got := sum(t, rds, ConnectionClosed, IONone).Value; got != 2 {
		t.Fatalf("closed: want 2, got %d", got)
	}
	if got := sum(t, rds, ConnectionCount, IONone).Value; got != 1 {
		t.Fatalf("count: want 1, got %d", got)
	}
	if n, _ := a.Len(); n != 1 {
		t.Fatalf("connection state: want 1 open connection remembered, got %d", n)
	}
	// Poll 3: everything closed; the series keep their values and starts.
	a.Update(conns.Snapshot{Time: t0.Add(30 * time.Second), Closed: []conns.Conn{outgoing(50001, 2, 10, 25)}})
	rds = a.Collect()
	if rx := sum(t, rds, ConnectionIO, IOReceive); rx.Value != 1525 || !rx.Start.Equal(t0) {
		t.Fatalf("poll 3 receive: %+v", rx)
	}
	if got := sum(t, rds, ConnectionCount, IONone).Value; got != 0 {
		t.Fatalf("count after all closed: want 0, got %d", got)
	}
	if n, _ := a.Len(); n != 0 {
		t.Fatalf("connection state not pruned: %d", n)
	}
}

func TestNewSeriesStartsAtPreviousPoll(t *testing.T) {
	a := New(testConfig(), t0)
	a.Update(conns.Snapshot{Time: t0.Add(10 * time.Second), Active: []conns.Conn{outgoing(50000, 1, 1, 0)}})
	c := outgoing(50001, 2, 5, 0)
	c.Peer = netip.MustParseAddrPort("10.0.0.3:80")
	a.Update(conns.Snapshot{Time: t0.Add(20 * time.Second), Active: []conns.Conn{outgoing(50000, 1, 1, 0), c}})
	for _, rd := range a.Collect() {
		for _, p := range rd.Sums[ConnectionIO] {
			want := t0
			if p.Attrs.Int(AttrServerPort) == 80 {
				want = t0.Add(10 * time.Second)
			}
			if !p.Start.Equal(want) {
				t.Errorf("series %+v: start %v, want %v", p.Attrs, p.Start, want)
			}
		}
	}
}

func TestOverflowFoldsPastMaxSeries(t *testing.T) {
	cfg := testConfig()
	cfg.MaxSeries = 2
	a := New(cfg, t0)
	var active []conns.Conn
	for i := range 5 {
		c := outgoing(50000+uint16(i), uint64(i), 10, 0)
		c.Peer = netip.AddrPortFrom(netip.MustParseAddr("10.0.1.1"), 8000+uint16(i))
		active = append(active, c)
	}
	stats := a.Update(conns.Snapshot{Time: t0.Add(time.Second), Active: active})
	// io (transmit only), opened and count: 2 connections fit, 3 overflow.
	// packets (transmit and receive): connection 0 fills both series, 4
	// overflow. Counted once per connection and metric.
	if stats.Overflowed != 3+3+3+4 {
		t.Fatalf("overflowed: want 13, got %d", stats.Overflowed)
	}
	rds := a.Collect()
	last := rds[len(rds)-1]
	if !last.Overflow {
		t.Fatal("no overflow resource")
	}
	if p := last.Sums[ConnectionIO]; len(p) != 1 || p[0].Value != 30 || !p[0].Attrs.Overflow {
		t.Fatalf("overflow io: %+v", p)
	}
	// Next poll: the same connections grow; overflow is not counted again.
	for i := range active {
		active[i].SentBytes += 1
	}
	if stats := a.Update(conns.Snapshot{Time: t0.Add(2 * time.Second), Active: active}); stats.Overflowed != 0 {
		t.Fatalf("overflow counted twice: %d", stats.Overflowed)
	}
	if _, n := a.Len(); n > 4*2+2*2+2 { // bounded by max_series per metric
		t.Fatalf("series not bounded: %d", n)
	}
}

func TestSeriesExpiry(t *testing.T) {
	cfg := testConfig()
	cfg.SeriesExpiry = time.Minute
	a := New(cfg, t0)
	a.Update(conns.Snapshot{Time: t0.Add(time.Second), Closed: []conns.Conn{outgoing(50000, 1, 10, 0)}})
	a.Update(conns.Snapshot{Time: t0.Add(30 * time.Second)})
	if _, n := a.Len(); n == 0 {
		t.Fatal("series expired too early")
	}
	a.Update(conns.Snapshot{Time: t0.Add(2 * time.Minute)})
	if _, n := a.Len(); n != 0 {
		t.Fatalf("idle series not expired: %d", n)
	}
	if rds := a.Collect(); len(rds) != 0 {
		t.Fatalf("resources left: %+v", rds)
	}
}

func TestVanishedConnectionIsForgotten(t *testing.T) {
	a := New(testConfig(), t0)
	a.Update(conns.Snapshot{Time: t0, Active: []conns.Conn{outgoing(50000, 1, 10, 0)}})
	a.Update(conns.Snapshot{Time: t0.Add(time.Second)}) // close record lost
	if n, _ := a.Len(); n != 0 {
		t.Fatalf("lost connection still tracked")
	}
}

func TestServerPort(t *testing.T) {
	c := outgoing(50000, 1, 0, 0)
	if p := serverPort(&c); p != 443 {
		t.Errorf("outgoing: %d", p)
	}
	c.Direction = conns.DirectionIncoming
	if p := serverPort(&c); p != 50000 {
		t.Errorf("incoming: %d", p)
	}
	c.Direction = conns.DirectionUnknown
	if p := serverPort(&c); p != 443 {
		t.Errorf("unknown: %d", p)
	}
}

func TestParseAttrSetRejectsUnknown(t *testing.T) {
	if _, err := ParseAttrSet([]string{"server.port", "nope"}); err == nil {
		t.Fatal("unknown attribute accepted")
	}
}

func TestHistogramBuckets(t *testing.T) {
	h := newHistogram([]float64{1, 2})
	for _, v := range []float64{0.5, 1, 1.5, 3} {
		h.observe(v)
	}
	p := h.point(Attrs{}, t0)
	if p.Count != 4 || p.Sum != 6 || p.Min != 0.5 || p.Max != 3 {
		t.Fatalf("%+v", p)
	}
	if want := []uint64{2, 1, 1}; p.BucketCounts[0] != want[0] || p.BucketCounts[1] != want[1] || p.BucketCounts[2] != want[2] {
		t.Fatalf("buckets %v, want %v (upper bounds inclusive)", p.BucketCounts, want)
	}
}

// TestCommNamesAGoneProcess: when /proc no longer has the process (Resolve
// finds no executable name), the task name the kernel saw is used; a name
// /proc did find is kept.
func TestCommNamesAGoneProcess(t *testing.T) {
	cfg := testConfig()
	cfg.Resolve = func(pid, netns uint32, _ uint64) Resource {
		if pid == 100 {
			return Resource{} // exited before the poll
		}
		return Resource{ExecutableName: "server-binary"}
	}
	a := New(cfg, t0)
	gone := outgoing(50000, 1, 10, 0)
	gone.Comm = "curl"
	alive := outgoing(50001, 2, 10, 0)
	alive.PID, alive.Comm = 200, "server-bin"
	a.Update(conns.Snapshot{Time: t0, Closed: []conns.Conn{gone, alive}})
	names := map[uint32]string{}
	for _, rd := range a.Collect() {
		names[rd.Resource.PID] = rd.Resource.ExecutableName
	}
	if names[100] != "curl" || names[200] != "server-binary" {
		t.Errorf("executable names %v, want 100:curl (from comm) and 200:server-binary (from /proc)", names)
	}
}

// TestTCPHealthSampledEveryPoll: an open connection adds one RTT and one RTT
// variation sample per poll and one at close, its retransmits count as they
// grow, its handshake's apart, and only a failed close counts a failure.
func TestTCPHealthSampledEveryPoll(t *testing.T) {
	a := New(testConfig(), t0)
	c := outgoing(50000, 1, 10, 10)
	c.TCP = conns.TCPStats{RTT: 200 * time.Microsecond, RTTVar: 50 * time.Microsecond, SynRetransmits: 1, StateTransitions: 1<<2 | 1<<1}
	a.Update(conns.Snapshot{Time: t0.Add(10 * time.Second), Active: []conns.Conn{c}})
	c.TCP.RTT, c.TCP.RTTVar, c.TCP.Retransmits = 30*time.Millisecond, 10*time.Millisecond, 4 // the path degraded
	a.Update(conns.Snapshot{Time: t0.Add(20 * time.Second), Active: []conns.Conn{c}})
	c.TCP.Retransmits, c.TCP.FailureReason, c.TCP.StateTransitions = 6, 104, c.TCP.StateTransitions|1<<7
	a.Update(conns.Snapshot{Time: t0.Add(30 * time.Second), Closed: []conns.Conn{c}})
	// A clean close and a canceled connect, with one SYN retransmit each.
	clean, canceled := outgoing(50001, 2, 1, 1), outgoing(50002, 3, 0, 0)
	clean.TCP = conns.TCPStats{RTT: time.Millisecond, SynRetransmits: 1, StateTransitions: 1<<2 | 1<<1 | 1<<7}
	canceled.TCP = conns.TCPStats{SynRetransmits: 1, StateTransitions: 1<<2 | 1<<7}
	a.Update(conns.Snapshot{Time: t0.Add(40 * time.Second), Closed: []conns.Conn{clean, canceled}})

	rds := a.Collect()
	var rtt, rttVar HistogramPoint
	for _, rd := range rds {
		for _, h := range rd.Histograms[TCPRTT] {
			rtt.Count, rtt.Sum, rtt.Max = rtt.Count+h.Count, rtt.Sum+h.Sum, max(rtt.Max, h.Max)
		}
		for _, h := range rd.Histograms[TCPRTTVariation] {
			rttVar.Count, rttVar.Sum = rttVar.Count+h.Count, rttVar.Sum+h.Sum
		}
	}
	// c: three samples (two polls, the close); clean: one; canceled had no RTT.
	if rtt.Count != 4 || rtt.Max != 0.030 || abs(rtt.Sum-(0.0002+0.030+0.030+0.001)) > 1e-9 {
		t.Errorf("rtt: %d samples, sum %v, max %v", rtt.Count, rtt.Sum, rtt.Max)
	}
	if rttVar.Count != 4 || abs(rttVar.Sum-(0.00005+0.010+0.010)) > 1e-9 {
		t.Errorf("rtt variation: %d samples, sum %v", rttVar.Count, rttVar.Sum)
	}
	total := func(m Metric) (v int64, failures map[string]int64) {
		failures = map[string]int64{}
		for _, rd := range rds {
			for _, p := range rd.Sums[m] {
				v += p.Value
				failures[p.Attrs.Str(AttrErrorType)] += p.Value
			}
		}
		return v, failures
	}
	if got, _ := total(TCPRetransmits); got != 6 {
		t.Errorf("retransmits %d, want 6", got)
	}
	if got, _ := total(TCPSynRetransmits); got != 3 {
		t.Errorf("SYN retransmits %d, want 3", got)
	}
	if got, by := total(TCPFailures); got != 2 || by["reset"] != 1 || by["canceled"] != 1 {
		t.Errorf("failures %d: %v, want one reset and one canceled", got, by)
	}
}

func abs(v float64) float64 {
	if v < 0 {
		return -v
	}
	return v
}

// TestServerAddress: server.address is asked of Config.PeerName once per
// connection, when first seen, and kept for the connection's life; it splits
// series by the peer's name, is written only when known, and is dropped with
// the other attributes a metric does not keep.
func TestServerAddress(t *testing.T) {
	cfg := testConfig()
	cfg.Metrics[ConnectionIO] = MetricConfig{Enabled: true, Attrs: defaultSet | AttrServerAddress}
	names := map[uint64]string{1: "api.example.test", 2: "www.example.test"} // by cookie: the same address, two names
	asked := map[uint64]int{}
	cfg.PeerName = func(c *conns.Conn) string { asked[c.Cookie]++; return names[c.Cookie] }
	a := New(cfg, t0)
	transmit := func() map[string]int64 {
		t.Helper()
		got := map[string]int64{}
		for _, rd := range a.Collect() {
			for _, p := range rd.Sums[ConnectionIO] {
				if p.Attrs.Str(AttrIODirection) != IOTransmit.String() {
					continue
				}
				var keys []string
				p.Attrs.Values(defaultSet|AttrServerAddress, func(v Value) { keys = append(keys, v.Key) })
				name := p.Attrs.Str(AttrServerAddress)
				if has := slices.Contains(keys, "server.address"); has != (name != "") {
					t.Errorf("series %q: server.address written %v", name, has)
				}
				got[name] += p.Value
			}
			for _, p := range rd.Sums[ConnectionOpened] {
				if p.Attrs.Str(AttrServerAddress) != "" {
					t.Errorf("opened keeps server.address without asking for it: %+v", p.Attrs)
				}
			}
		}
		return got
	}
	a.Update(conns.Snapshot{Time: t0.Add(time.Second), Active: []conns.Conn{
		outgoing(50000, 1, 100, 0), outgoing(50001, 2, 10, 0), outgoing(50002, 3, 1, 0),
	}})
	if got, want := transmit(), map[string]int64{"api.example.test": 100, "www.example.test": 10, "": 1}; !maps.Equal(got, want) {
		t.Errorf("poll 1: transmit by server.address %v, want %v", got, want)
	}
	// The answers change (expired, answered again for other names): the open
	// connections keep the names they had; a new one gets the new name.
	names = map[uint64]string{1: "other.example.test", 3: "late.example.test", 4: "new.example.test"}
	a.Update(conns.Snapshot{Time: t0.Add(2 * time.Second), Active: []conns.Conn{
		outgoing(50000, 1, 200, 0), outgoing(50001, 2, 20, 0), outgoing(50002, 3, 2, 0), outgoing(50003, 4, 4, 0),
	}})
	if got, want := transmit(), map[string]int64{"api.example.test": 200, "www.example.test": 20, "": 2, "new.example.test": 4}; !maps.Equal(got, want) {
		t.Errorf("poll 2: transmit by server.address %v, want %v", got, want)
	}
	if want := map[uint64]int{1: 1, 2: 1, 3: 1, 4: 1}; !maps.Equal(asked, want) {
		t.Errorf("PeerName asked %v, want once per connection", asked)
	}
}
