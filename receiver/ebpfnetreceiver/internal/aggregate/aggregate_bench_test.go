// SPDX-License-Identifier: Apache-2.0

package aggregate

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// benchSnapshot is n open TCP connections from one process and local address to peers
// 10.x.y.z on four server ports, the shape of the scale benchmark's synthetic table.
func benchSnapshot(n int, sent uint64) conns.Snapshot {
	s := conns.Snapshot{Active: make([]conns.Conn, n), Time: time.Unix(1_700_000_000, 0)}
	local := netip.MustParseAddr("10.0.0.1")
	for i := range s.Active {
		peer := netip.AddrFrom4([4]byte{10, 1 + byte(i>>22), byte(i >> 14), byte(i % 64)})
		s.Active[i] = conns.Conn{
			Key: conns.Key{
				Local: netip.AddrPortFrom(local, uint16(i)), Peer: netip.AddrPortFrom(peer, uint16(443+i%4)),
				Netns: 4026531840, PID: 100, Transport: conns.TransportTCP,
			},
			Cookie: uint64(i + 1), Direction: conns.DirectionOutgoing,
			SentBytes: sent + uint64(i), RecvBytes: 2 * sent, SentPackets: 2, RecvPackets: 2,
		}
	}
	return s
}

func benchConfig() Config {
	var cfg Config
	for m := range cfg.Metrics {
		cfg.Metrics[m] = MetricConfig{Enabled: true, Attrs: defaultSet}
	}
	cfg.MaxSeries = 10000
	cfg.SeriesExpiry = 15 * time.Minute
	return cfg
}

// BenchmarkUpdate is one steady-state poll: every connection known, counters grown. One op is
// one Update of the whole snapshot plus Collect, as the receiver does per scrape.
func BenchmarkUpdate(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			snaps := [2]conns.Snapshot{benchSnapshot(n, 1000), benchSnapshot(n, 2000)}
			a := New(benchConfig(), snaps[0].Time)
			a.Update(snaps[0])
			b.ReportAllocs()
			b.ResetTimer()
			i := 0
			for b.Loop() {
				s := snaps[i%2]
				s.Time = s.Time.Add(time.Duration(i+1) * time.Second)
				a.Update(s)
				_ = a.Collect()
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/conn")
		})
	}
}

// BenchmarkUpdateChurn is a poll where every connection is new and closes: the worst case for
// the per-connection state (created and dropped each poll).
func BenchmarkUpdateChurn(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("closed=%d", n), func(b *testing.B) {
			s := benchSnapshot(n, 1000)
			s.Closed, s.Active = s.Active, nil
			a := New(benchConfig(), s.Time)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				s.Time = s.Time.Add(time.Second)
				a.Update(s)
				_ = a.Collect()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/conn")
		})
	}
}

// BenchmarkUpdatePeerGroups is BenchmarkUpdate's steady-state poll with peer
// groups configured (the peers, all in 10.0.0.0/8, then share one series per
// metric): its cost over BenchmarkUpdate is the lookup of every connection.
func BenchmarkUpdatePeerGroups(b *testing.B) {
	const n = 100_000
	cfg := benchConfig()
	cfg.PeerGroups, cfg.OtherPeers = testGroups(), "public"
	snaps := [2]conns.Snapshot{benchSnapshot(n, 1000), benchSnapshot(n, 2000)}
	a := New(cfg, snaps[0].Time)
	a.Update(snaps[0])
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		s := snaps[i%2]
		s.Time = s.Time.Add(time.Duration(i+1) * time.Second)
		a.Update(s)
		_ = a.Collect()
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/conn")
}
