// SPDX-License-Identifier: Apache-2.0

package aggregate

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

// testGroups nest: services and host lie inside cluster, listed after it, so
// only longest-prefix match (not first match) gives them their peers.
func testGroups() []PeerGroup {
	return []PeerGroup{
		{Name: "cluster", Prefixes: prefixes("10.0.0.0/8", "fd00::/8")},
		{Name: "services", Prefixes: prefixes("10.96.0.0/12")},
		{Name: "private", Prefixes: prefixes("172.16.0.0/12", "192.168.0.0/16")},
		{Name: "gateway", Prefixes: prefixes("10.0.0.1/32", "fd00::1/128")},
	}
}

func TestPeerMatcher(t *testing.T) {
	tests := []struct {
		addr string
		want string // "" : keeps the address
	}{
		{"10.1.2.3", "cluster"},
		{"10.255.255.255", "cluster"},
		{"10.96.0.10", "services"},
		{"10.111.255.255", "services"}, // last address of 10.96.0.0/12
		{"10.112.0.0", "cluster"},      // first address past it
		{"10.0.0.1", "gateway"},
		{"10.0.0.2", "cluster"},
		{"fd00::1", "gateway"},
		{"fd00::2", "cluster"},
		{"fdff:ffff::1", "cluster"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.7.9", "private"},
		// Outside every group: the catch-all, or the address without one.
		{"172.32.0.1", ""},
		{"9.255.255.255", ""},
		{"11.0.0.0", ""},
		{"fe00::1", ""},
		{"2001:db8::1", ""},
		// A v4 prefix holds only IPv4 addresses: ::10.1.2.3 is IPv6.
		{"::10.1.2.3", ""},
	}
	groups := testGroups()
	reversed := slices.Clone(groups)
	slices.Reverse(reversed)
	for _, other := range []string{"", "public"} {
		for order, gs := range map[string][]PeerGroup{"listed": groups, "reversed": reversed} {
			m := newPeerMatcher(gs, other)
			for _, tt := range tests {
				g, ok := m.lookup(netip.MustParseAddr(tt.addr))
				name := groupName(g)
				want, wantOK := tt.want, tt.want != ""
				if !wantOK && other != "" {
					want, wantOK = other, true
				}
				if name != want || ok != wantOK {
					t.Errorf("other %q, groups %s: %s -> (%q, %v), want (%q, %v)", other, order, tt.addr, name, ok, want, wantOK)
				}
			}
			// An unknown peer (the tracer missed it) is not a public one.
			if g, ok := m.lookup(netip.Addr{}); ok {
				t.Errorf("other %q: unknown address -> %q", other, groupName(g))
			}
		}
	}
	// IPv6 masks across the halves of the address: /64 and /65.
	m := newPeerMatcher([]PeerGroup{
		{Name: "net", Prefixes: prefixes("2001:db8:0:1::/64")},
		{Name: "upper", Prefixes: prefixes("2001:db8:0:1:8000::/65")},
		{Name: "host", Prefixes: prefixes("2001:db8:0:1:8000::5/128")},
	}, "")
	for addr, want := range map[string]string{
		"2001:db8:0:1::5":                  "net",
		"2001:db8:0:1:7fff:ffff:ffff:ffff": "net",
		"2001:db8:0:1:8000::4":             "upper",
		"2001:db8:0:1:ffff:ffff:ffff:ffff": "upper",
		"2001:db8:0:1:8000::5":             "host",
		"2001:db8:0:2::5":                  "",
		"2001:db8:0:0:ffff:ffff:ffff:ffff": "",
	} {
		if g, _ := m.lookup(netip.MustParseAddr(addr)); groupName(g) != want {
			t.Errorf("%s -> %q, want %q", addr, groupName(g), want)
		}
	}
	if m := newPeerMatcher(nil, ""); m != nil {
		t.Errorf("no groups and no catch-all: matcher %+v, want none", m)
	}
	// A catch-all alone names every known peer.
	if g, ok := newPeerMatcher(nil, "any").lookup(netip.MustParseAddr("10.0.0.1")); groupName(g) != "any" || !ok {
		t.Errorf("catch-all alone: (%q, %v)", groupName(g), ok)
	}
}

// TestPeerGroupSeries: through the aggregator, the peers of a group share one
// series per metric and direction, an ungrouped peer keeps its own with its
// address, IPv4 and IPv6 peers of one group stay apart by network.type, and
// the per-connection attributes (AttrsOf, the failure logs) keep the address.
func TestPeerGroupSeries(t *testing.T) {
	peers := []string{"10.1.0.1", "10.2.0.1", "10.3.0.1", "fd00::7", "192.168.1.1", "198.51.100.1", "198.51.100.2"}
	snap := conns.Snapshot{Time: t0.Add(10 * time.Second)}
	for i, p := range peers {
		c := outgoing(uint16(50000+i), uint64(i+1), 100, 1000)
		c.Peer = netip.AddrPortFrom(netip.MustParseAddr(p), 443)
		if c.Peer.Addr().Is6() {
			c.Local = netip.MustParseAddrPort("[fd00::1]:50000")
		}
		snap.Active = append(snap.Active, c)
	}
	for _, tt := range []struct {
		other string
		want  map[string]int64 // network.type/network.peer.address -> connections
	}{
		{"", map[string]int64{"ipv4/cluster": 3, "ipv6/cluster": 1, "ipv4/private": 1, "ipv4/198.51.100.1": 1, "ipv4/198.51.100.2": 1}},
		{"public", map[string]int64{"ipv4/cluster": 3, "ipv6/cluster": 1, "ipv4/private": 1, "ipv4/public": 2}},
	} {
		cfg := testConfig()
		cfg.PeerGroups, cfg.OtherPeers = testGroups()[:3], tt.other
		a := New(cfg, t0)
		a.Update(snap)
		got := map[string]int64{}
		var order []string
		for _, rd := range a.Collect() {
			for _, p := range rd.Sums[ConnectionCount] {
				k := p.Attrs.Str(AttrNetworkType) + "/" + p.Attrs.Str(AttrPeerAddress)
				got[k] += p.Value
				order = append(order, k)
			}
			if n, want := len(rd.Sums[ConnectionIO]), 2*len(tt.want); n != want {
				t.Errorf("other %q: %d io series, want %d", tt.other, n, want)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tt.want) || len(order) != len(tt.want) {
			t.Errorf("other %q: connection count by peer %v (series %v), want %v", tt.other, got, order, tt.want)
		}
	}
	if got := AttrsOf(&snap.Active[0]).Str(AttrPeerAddress); got != "10.1.0.1" {
		t.Errorf("AttrsOf peer %q, want the address", got)
	}
}

// TestPeerGroupKeepsSeriesApart: a group's name and an ungrouped address are
// distinct series values, and projection away of network.peer.address merges
// them like any two peers.
func TestPeerGroupKeepsSeriesApart(t *testing.T) {
	m := newPeerMatcher(testGroups(), "")
	var grouped, plain Attrs
	grouped.addrs[1] = netip.MustParseAddr("10.1.2.3")
	plain.addrs[1] = netip.MustParseAddr("8.8.8.8")
	grouped.groupPeer(m)
	plain.groupPeer(m)
	if grouped == plain || compareAttrs(grouped, plain) == 0 {
		t.Fatalf("grouped %+v and plain %+v are one series", grouped, plain)
	}
	if grouped.Str(AttrPeerAddress) != "cluster" || plain.Str(AttrPeerAddress) != "8.8.8.8" {
		t.Fatalf("peer values %q, %q", grouped.Str(AttrPeerAddress), plain.Str(AttrPeerAddress))
	}
	if grouped.project(AttrServerPort) != plain.project(AttrServerPort) {
		t.Fatal("without network.peer.address the two should be one series")
	}
	if grouped.project(AttrPeerAddress) != grouped {
		t.Fatal("projection onto network.peer.address dropped the group")
	}
}

// BenchmarkPeerLookup is the per-connection cost of grouping: few prefixes
// as a cluster config has, and a thousand /24s as a list of cloud ranges.
func BenchmarkPeerLookup(b *testing.B) {
	many := []PeerGroup{{Name: "cloud"}}
	for i := range 1000 {
		many[0].Prefixes = append(many[0].Prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{20, byte(i >> 8), byte(i), 0}), 24))
	}
	many = append(many, testGroups()...)
	addrs := make([]netip.Addr, 1024)
	for i := range addrs {
		// A mix: in a group, in a nested group, and public (the longest
		// path: every prefix length is tried).
		addrs[i] = [...]netip.Addr{
			netip.AddrFrom4([4]byte{10, byte(i), 1, 1}),
			netip.AddrFrom4([4]byte{10, 96, byte(i), 1}),
			netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}),
			netip.AddrFrom4([4]byte{20, byte(i >> 8 & 3), byte(i), 9}),
		}[i%4]
	}
	for name, gs := range map[string][]PeerGroup{"prefixes=7": testGroups(), "prefixes=1007": many} {
		b.Run(name, func(b *testing.B) {
			m := newPeerMatcher(gs, "public")
			i := 0
			for b.Loop() {
				_, _ = m.lookup(addrs[i%len(addrs)])
				i++
			}
		})
	}
}

// TestGroupNamesAreShared: two aggregators naming the same group share its
// index, and each name reads back as itself.
func TestGroupNamesAreShared(t *testing.T) {
	a, b := intern("shared-group"), intern("other-group")
	if a == 0 || b == 0 || a == b || intern("shared-group") != a {
		t.Fatalf("indexes %d %d %d", a, b, intern("shared-group"))
	}
	if groupName(a) != "shared-group" || groupName(b) != "other-group" || groupName(0) != "" {
		t.Fatalf("names %q %q %q", groupName(a), groupName(b), groupName(0))
	}
}
