// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/aggregate"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadata"
)

// TestGoldenPeerGroups: with the peer groups of testdata/config.yaml
// (cluster 10.0.0.0/8 and fd00::/8, services 10.96.0.0/12, private
// 172.16.0.0/12 and 192.168.0.0/16, other_peers public), network.peer.address
// is the group's name: two cluster peers share one series; 10.96.0.10 is in
// services, the more specific CIDR, though cluster is listed first; the IPv6
// cluster peer is its own series by network.type; an incoming private peer
// and two public peers are grouped the same way; server.port and the other
// attributes still split the series.
func TestGoldenPeerGroups(t *testing.T) {
	out := func(port int, peer string, cookie uint64) conns.Conn {
		local := "10.0.0.1"
		if netip.MustParseAddrPort(peer).Addr().Is6() {
			local = "[fd00::1]"
		}
		return tcp(100, hostNetns, fmt.Sprintf("%s:%d", local, port), peer, conns.DirectionOutgoing, cookie)
	}
	incoming := tcp(100, hostNetns, "10.0.0.1:8080", "172.20.0.4:41000", conns.DirectionIncoming, 8)
	src := &fakeSource{polls: []conns.Snapshot{{
		Time: t0.Add(10 * time.Second),
		Active: []conns.Conn{
			with(out(50000, "10.1.2.3:443", 1), 100, 1000, 1, 2),
			with(out(50001, "10.200.0.9:443", 2), 10, 20, 1, 1),
			with(out(50002, "10.96.0.10:443", 3), 5, 50, 1, 1),
			with(out(50003, "[fd00::2]:443", 4), 7, 70, 1, 1),
			with(out(50004, "192.168.1.5:443", 5), 3, 30, 1, 1),
			with(out(50005, "203.0.113.7:443", 6), 1, 2, 1, 1),
			with(incoming, 400, 40, 2, 2),
		},
		Closed: []conns.Conn{closedAfter(with(out(50006, "198.51.100.9:443", 7), 2, 4, 1, 1), 3*time.Second)},
	}}}
	s := newTestScraper(t, loadConfig(t, "peer_groups"), src, receivertest.NewNopSettings(metadata.Type))
	compareGolden(t, "peer_groups", scrapeAll(t, s, 1)[0])
}

// peerTable is a synthetic table of 10,000 open TCP connections of one
// process, one per peer, all to server port 443: 9,000 peers in 10.0.0.0/8,
// each in its own /24; 500 in 192.168.0.0/16; 500 public (the documentation
// ranges 198.51.100.0/24 and 203.0.113.0/24). Each has sent and received
// bytes and an RTT, so each shows in the io, packet, opened, count and RTT
// metrics.
func peerTable() conns.Snapshot {
	s := conns.Snapshot{Time: t0.Add(10 * time.Second)}
	add := func(peer netip.Addr) {
		i := len(s.Active)
		c := tcp(100, hostNetns, "10.0.0.1:0", "0.0.0.0:0", conns.DirectionOutgoing, uint64(i+1))
		c.Local = netip.AddrPortFrom(c.Local.Addr(), uint16(20000+i))
		c.Peer = netip.AddrPortFrom(peer, 443)
		c = with(c, 100, 1000, 1, 2)
		c.TCP.RTT, c.TCP.RTTVar = time.Millisecond, 100*time.Microsecond
		s.Active = append(s.Active, c)
	}
	for i := range 9000 {
		add(netip.AddrFrom4([4]byte{10, byte(1 + i>>8), byte(i), 1}))
	}
	for i := range 500 {
		add(netip.AddrFrom4([4]byte{192, 168, byte(i / 250), byte(1 + i%250)}))
	}
	for i := range 500 {
		add(netip.AddrFrom4([4]byte{[2]byte{198, 203}[i/250], [2]byte{51, 0}[i/250], [2]byte{100, 113}[i/250], byte(1 + i%250)}))
	}
	return s
}

// seriesByMetric counts the data points (one per series) of each metric.
func seriesByMetric(md pmetric.Metrics) map[string]int {
	out := map[string]int{}
	rms := md.ResourceMetrics()
	for i := range rms.Len() {
		ms := rms.At(i).ScopeMetrics().At(0).Metrics()
		for j := range ms.Len() {
			m := ms.At(j)
			switch m.Type() {
			case pmetric.MetricTypeSum:
				out[m.Name()] += m.Sum().DataPoints().Len()
			case pmetric.MetricTypeHistogram:
				out[m.Name()] += m.Histogram().DataPoints().Len()
			}
		}
	}
	return out
}

// aggregatedSeries counts the series of each metric that the aggregator
// built from the receiver's config holds after one poll of snap, by metric
// name, overflow series included.
func aggregatedSeries(t *testing.T, cfg *Config, snap conns.Snapshot) map[string]int {
	t.Helper()
	ac, err := aggregateConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a := aggregate.New(ac, t0)
	a.Update(snap)
	out := map[string]int{}
	for _, rd := range a.Collect() {
		for i, def := range metrics {
			if n := len(rd.Sums[i]) + len(rd.Histograms[i]); n > 0 {
				out[def.name] += n
			}
		}
	}
	return out
}

// TestPeerGroupsSeriesCount: the series the synthetic table of 10,000 peers
// gives, per metric, with the default attributes, without and with the peer
// groups of testdata/config.yaml: with max_series unbounded (the cardinality
// itself) and at the default max_series of 10,000. The README's table is
// these numbers.
//
// The counts are the aggregator's, which keys series on exactly the
// attributes each metric emits; the grouped cases also go through the whole
// scrape to show the emitted points are the same. The ungrouped ones do not:
// the generated metrics builder (mdatagen v0.161.0) compares each new point
// with every point of its metric to merge equal ones, so the 80,000 points
// took 16 s of CPU to build on the 2-core development machine.
func TestPeerGroupsSeriesCount(t *testing.T) {
	grouped := loadConfig(t, "peer_groups")
	ungrouped := createDefaultConfig()
	perPeer := func(n int) map[string]int {
		return map[string]int{
			"ebpfnet.connection.io": 2 * n, "ebpfnet.connection.packet.count": 2 * n, // transmit and receive
			"ebpfnet.connection.opened": n, "ebpfnet.connection.count": n,
			"ebpfnet.tcp.rtt": n, "ebpfnet.tcp.rtt.variation": n,
		}
	}
	// At the default max_series, io and packets need 20,000 series each: the
	// 10,000 first and one overflow series; the others just fit.
	bounded := perPeer(10_000)
	bounded["ebpfnet.connection.io"], bounded["ebpfnet.connection.packet.count"] = 10_001, 10_001
	snap := peerTable()
	for _, tt := range []struct {
		name      string
		cfg       *Config
		maxSeries int
		want      map[string]int
	}{
		{"no groups, max_series 0", ungrouped, 0, perPeer(10_000)},
		{"no groups, max_series 10000", ungrouped, 10_000, bounded},
		{"groups, max_series 0", grouped, 0, perPeer(3)}, // cluster, private, public
		{"groups, max_series 10000", grouped, 10_000, perPeer(3)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := *tt.cfg
			cfg.Aggregation.MaxSeries = tt.maxSeries
			got := aggregatedSeries(t, &cfg, snap)
			if !maps.Equal(got, tt.want) {
				t.Fatalf("series by metric %v, want %v", got, tt.want)
			}
			if cfg.Aggregation.PeerGroups != nil {
				src := &fakeSource{polls: []conns.Snapshot{snap}}
				s := newTestScraper(t, &cfg, src, receivertest.NewNopSettings(metadata.Type))
				if emitted := seriesByMetric(scrapeAll(t, s, 1)[0]); !maps.Equal(emitted, got) {
					t.Fatalf("emitted points by metric %v, aggregated series %v", emitted, got)
				}
			}
			total := 0
			var each []string
			for _, n := range slices.Sorted(maps.Keys(got)) {
				total += got[n]
				each = append(each, fmt.Sprintf("%s=%d", n, got[n]))
			}
			t.Logf("%s: %d series in all; %v", tt.name, total, each)
		})
	}
}
