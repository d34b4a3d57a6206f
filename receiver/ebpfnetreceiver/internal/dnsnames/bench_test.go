// SPDX-License-Identifier: Apache-2.0

package dnsnames

import (
	"net/netip"
	"testing"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// BenchmarkLearn: one typical response (a CNAME and two addresses) into a
// full map of DefaultMaxEntries, each answer a new address (an eviction
// each).
func BenchmarkLearn(b *testing.B) {
	n := New(Config{})
	msgs := make([][]byte, 1024)
	for i := range msgs {
		msgs[i] = response(b, "www.example.test.",
			rr{owner: "www.example.test.", ttl: 300, cname: "edge.cdn.test."},
			rr{owner: "edge.cdn.test.", ttl: 60, addr: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)})},
			rr{owner: "edge.cdn.test.", ttl: 60, addr: netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)})})
	}
	for i := range DefaultMaxEntries {
		n.put(key{netns: ns, addr: netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)})}, "x", t0.Add(1e12))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		n.Learn(t0, conns.DNSResponse{Netns: ns + uint32(i/1024), Size: len(msgs[i%1024]), Msg: msgs[i%1024]})
	}
}

// BenchmarkName: the lookup the aggregator makes once per new outgoing
// connection, in a full map.
func BenchmarkName(b *testing.B) {
	m := NewNamer(Config{})
	for i := range DefaultMaxEntries {
		m.names.put(key{netns: ns, addr: netip.AddrFrom4([4]byte{10, 3, byte(i >> 8), byte(i)})}, "svc.test", t0.Add(1e12))
	}
	m.now = t0
	c := conns.Conn{Key: conns.Key{Netns: ns, Transport: conns.TransportTCP}, Direction: conns.DirectionOutgoing}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		c.Peer = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 3, byte(i >> 8), byte(i)}), 443)
		if m.Name(&c) == "" {
			b.Fatal("not found")
		}
	}
}
