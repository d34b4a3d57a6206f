// SPDX-License-Identifier: Apache-2.0

package aggregate

import (
	"net/netip"
	"testing"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// TestNATAttributes: the ebpfnet.nat.* attributes are written only for the
// translated end; ebpfnet.nat.server.port is the listening side's
// translated port whichever end the socket is.
func TestNATAttributes(t *testing.T) {
	ap := netip.MustParseAddrPort
	all := AttrNATPeerAddress | AttrNATLocalAddress | AttrNATServerPort
	for _, tc := range []struct {
		name string
		c    conns.Conn
		want map[string]any
	}{
		{"untranslated", conns.Conn{Key: conns.Key{Local: ap("10.0.0.5:40000"), Peer: ap("10.0.0.9:80")}, Direction: conns.DirectionOutgoing},
			map[string]any{}},
		{"client after DNAT", conns.Conn{Key: conns.Key{Local: ap("10.0.0.5:40000"), Peer: ap("10.96.0.10:80")}, Direction: conns.DirectionOutgoing,
			NAT: &conns.NAT{Peer: ap("10.244.1.7:8080")}},
			map[string]any{"ebpfnet.nat.peer.address": "10.244.1.7", "ebpfnet.nat.server.port": int64(8080)}},
		{"backend of a DNAT", conns.Conn{Key: conns.Key{Local: ap("10.244.1.7:8080"), Peer: ap("10.0.0.5:40000")}, Direction: conns.DirectionIncoming,
			NAT: &conns.NAT{Local: ap("10.96.0.10:80")}},
			map[string]any{"ebpfnet.nat.local.address": "10.96.0.10", "ebpfnet.nat.server.port": int64(80)}},
		{"client after SNAT", conns.Conn{Key: conns.Key{Local: ap("10.0.0.5:40000"), Peer: ap("10.0.0.9:80")}, Direction: conns.DirectionOutgoing,
			NAT: &conns.NAT{Local: ap("192.0.2.1:51000")}},
			map[string]any{"ebpfnet.nat.local.address": "192.0.2.1"}},
		{"unknown direction takes server.port's side", conns.Conn{Key: conns.Key{Local: ap("10.0.0.5:40000"), Peer: ap("10.96.0.10:80")},
			NAT: &conns.NAT{Peer: ap("10.244.1.7:8080")}},
			map[string]any{"ebpfnet.nat.peer.address": "10.244.1.7", "ebpfnet.nat.server.port": int64(8080)}},
	} {
		got := map[string]any{}
		attrsOf(&tc.c).Values(all, func(v Value) {
			if v.IsInt {
				got[v.Key] = v.Int
			} else {
				got[v.Key] = v.Str
			}
		})
		if len(got) != len(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			}
		}
	}
}
