// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// TestUDPPeers: a DNS-like server on an unconnected socket answers a connected
// client and an unconnected (sendto/recvfrom) client. Every end is reported
// per peer with exact bytes and datagram counts (a zero-length datagram counts
// as a packet of 0 bytes), first while open, then closed with the same numbers
// once the sockets are released.
func TestUDPPeers(t *testing.T) {
	for _, fam := range []struct{ name, network, addr string }{
		{"ipv4", "udp4", "127.0.0.1:0"}, {"ipv6", "udp6", "[::1]:0"},
	} {
		t.Run(fam.name, func(t *testing.T) { udpPeers(t, fam.network, fam.addr) })
	}
}

func udpPeers(t *testing.T, network, addr string) {
	tr := startTracer(t, Config{})
	col := newCollector(t, tr)

	srv, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	server := netip.MustParseAddrPort(srv.LocalAddr().String())
	// The server answers each query with a reply twice its size (at least 1 byte).
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			srv.WriteTo(make([]byte, 2*n+1), from)
		}
	}()

	queries := []int{10, 0, 512, 1400, 33}
	var qBytes, rBytes uint64
	for _, q := range queries {
		qBytes += uint64(q)
		rBytes += uint64(2*q + 1)
	}

	connected, err := net.Dial(network, server.String())
	if err != nil {
		t.Fatal(err)
	}
	unconnected, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	for _, q := range queries {
		if _, err := connected.Write(make([]byte, q)); err != nil {
			t.Fatal(err)
		}
		connected.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := connected.Read(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := unconnected.WriteTo(make([]byte, q), net.UDPAddrFromAddrPort(server)); err != nil {
			t.Fatal(err)
		}
		unconnected.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := unconnected.ReadFrom(buf); err != nil {
			t.Fatal(err)
		}
	}
	clientA := netip.MustParseAddrPort(connected.LocalAddr().String())
	clientB := netip.MustParseAddrPort(unconnected.LocalAddr().String())

	n := uint64(len(queries))
	want := map[[2]netip.AddrPort]conns.Conn{
		{clientA, server}: {Direction: conns.DirectionOutgoing, SentBytes: qBytes, RecvBytes: rBytes, SentPackets: n, RecvPackets: n},
		{clientB, server}: {Direction: conns.DirectionOutgoing, SentBytes: qBytes, RecvBytes: rBytes, SentPackets: n, RecvPackets: n},
		{server, clientA}: {Direction: conns.DirectionIncoming, SentBytes: rBytes, RecvBytes: qBytes, SentPackets: n, RecvPackets: n},
		{server, clientB}: {Direction: conns.DirectionIncoming, SentBytes: rBytes, RecvBytes: qBytes, SentPackets: n, RecvPackets: n},
	}
	ours := func(c conns.Conn) bool {
		_, ok := want[[2]netip.AddrPort{c.Local, c.Peer}]
		return ok && c.Transport == conns.TransportUDP
	}
	check := func(stage string, got []conns.Conn) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d UDP flows, want %d: %+v", stage, len(got), len(want), got)
		}
		for _, c := range got {
			w := want[[2]netip.AddrPort{c.Local, c.Peer}]
			if c.Direction != w.Direction || c.SentBytes != w.SentBytes || c.RecvBytes != w.RecvBytes ||
				c.SentPackets != w.SentPackets || c.RecvPackets != w.RecvPackets || c.PID != pid() || c.Netns != selfNetns(t) ||
				c.Comm != selfComm(t) || c.CgroupID != selfCgroupID(t) {
				t.Errorf("%s: %v->%v: got dir=%v sent=%d/%d recv=%d/%d pid=%d netns=%d comm=%q cgroup id=%d, want dir=%v sent=%d/%d recv=%d/%d (cgroup id %d)",
					stage, c.Local, c.Peer, c.Direction, c.SentBytes, c.SentPackets, c.RecvBytes, c.RecvPackets, c.PID, c.Netns, c.Comm, c.CgroupID,
					w.Direction, w.SentBytes, w.SentPackets, w.RecvBytes, w.RecvPackets, selfCgroupID(t))
			}
		}
	}

	col.poll()
	var active []conns.Conn
	for _, c := range col.active {
		if ours(c) {
			active = append(active, c)
		}
	}
	check("open", active)

	connected.Close()
	unconnected.Close()
	srv.Close()
	check("closed", col.waitClosed(len(want), 5*time.Second, ours))
	if tel := tr.Telemetry(); tel.MissedPeer != 0 {
		t.Errorf("missed peers: %d", tel.MissedPeer)
	}
}
