// SPDX-License-Identifier: Apache-2.0

//go:build linux

package ebpfnetreceiver

import (
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"golang.org/x/sys/unix"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadata"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/privtest"
)

// The NAT test's addresses, from the benchmarking range (198.18.0.0/15) that
// exists nowhere else.
var (
	natClientAddr = netip.MustParseAddr("198.18.1.1")     // in namespace A
	natServerAddr = netip.MustParseAddr("198.18.1.2")     // in namespace B
	natSNATAddr   = netip.MustParseAddr("198.18.1.77")    // A's second address, what SNAT rewrites to
	natVIP        = netip.MustParseAddr("198.18.100.100") // a service address no interface has
)

const (
	natVIPPort     = 80   // the service port the client dials
	natBackendPort = 8080 // where DNAT sends it
	natSNATPort    = 9090 // the server port whose flows A's SNAT rewrites

	natUDPVIPPort     = 53   // a UDP service on the virtual address
	natUDPBackendPort = 5353 // where DNAT sends it, to a server bound to 0.0.0.0
)

// TestEndToEndNAT runs the receiver with the real tracer and conntrack, in
// two network namespaces the test creates (A, the client's, and B, the
// server's, joined by a veth pair), with nftables NAT in A:
//
//   - DNAT: the client dials a virtual address, which A's output hook sends
//     to the server. The client's connection reports the virtual address as
//     its peer and the server as its translated peer (and port); the
//     server's reports the virtual address as its translated local end.
//     The same over UDP to a server bound to 0.0.0.0;
//   - SNAT: A's postrouting rewrites the client's source. The client's
//     connection reports the rewritten address as its translated local
//     end, the server's the client's real address as its translated peer.
//
// Both ends count exactly the bytes the test moved, and every endpoint is
// checked against `conntrack -L` in A and against what the server's
// accepted socket saw.
func TestEndToEndNAT(t *testing.T) {
	privtest.Require(t)
	for _, tool := range []string{"ip", "nft", "conntrack"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the NAT test needs %s (scripts/ci/deps.sh installs it): %v", tool, err)
		}
	}
	nn := newNATNet(t)
	nn.nft(t, fmt.Sprintf(`table ip enatdnat {
	chain out {
		type nat hook output priority -100;
		ip daddr %s tcp dport %d dnat to %s:%d
		ip daddr %s udp dport %d dnat to %s:%d
	}
	chain post {
		type nat hook postrouting priority 100;
		ip daddr %s tcp dport %d snat to %s
	}
}`, natVIP, natVIPPort, natServerAddr, natBackendPort, natVIP, natUDPVIPPort, natServerAddr, natUDPBackendPort,
		natServerAddr, natSNATPort, natSNATAddr))

	cfg := createDefaultConfig()
	cfg.CollectionInterval = 200 * time.Millisecond
	// One series per connection, to tell each end of each flow apart.
	io := &cfg.Metrics.EbpfnetConnectionIo
	io.EnabledAttributes = append(io.EnabledAttributes, metadata.EbpfnetConnectionIoMetricAttributeKeyNetworkLocalPort, metadata.EbpfnetConnectionIoMetricAttributeKeyNetworkPeerPort)
	sink, _ := startMetricsReceiver(t, cfg)

	const sent, received = 23456, 7890 // bytes each client sends and receives
	dnat := nn.exchange(t, netip.AddrPortFrom(natServerAddr, natBackendPort), netip.AddrPortFrom(natVIP, natVIPPort), sent, received)
	snat := nn.exchange(t, netip.AddrPortFrom(natServerAddr, natSNATPort), netip.AddrPortFrom(natServerAddr, natSNATPort), sent, received)
	const query, answer = 45, 321 // the UDP datagrams' sizes
	udp := nn.exchangeUDP(t, natUDPBackendPort, netip.AddrPortFrom(natVIP, natUDPVIPPort), query, answer)

	// conntrack's own view, in A where the NAT happens.
	ct := nn.conntrackL(t, "tcp")
	udpCT, ok := nn.conntrackL(t, "udp")[udp.client]
	if want := (ctEntry{udp.client, netip.AddrPortFrom(natVIP, natUDPVIPPort), netip.AddrPortFrom(natServerAddr, natUDPBackendPort), udp.client}); !ok || udpCT != want {
		t.Fatalf("UDP DNAT: conntrack -L %v (found %v), want %v", udpCT, ok, want)
	}
	flows := append(slices.Collect(maps.Values(ct)), udpCT) // for the messages
	dnatCT, ok := ct[dnat.client]
	if !ok {
		t.Fatalf("conntrack -L in A has no entry from %v: %v", dnat.client, ct)
	}
	if want := (ctEntry{dnat.client, netip.AddrPortFrom(natVIP, natVIPPort), netip.AddrPortFrom(natServerAddr, natBackendPort), dnat.client}); dnatCT != want {
		t.Fatalf("DNAT: conntrack -L %+v, want %+v", dnatCT, want)
	}
	snatCT, ok := ct[snat.client]
	if !ok {
		t.Fatalf("conntrack -L in A has no entry from %v: %v", snat.client, ct)
	}
	if snatCT.origDst != snat.server || snatCT.replySrc != snat.server || snatCT.replyDst.Addr() != natSNATAddr || snatCT.replyDst != snat.accepted {
		t.Fatalf("SNAT: conntrack -L %+v; the server accepted %v, want the reply to go to it at %v", snatCT, snat.accepted, natSNATAddr)
	}
	if dnat.accepted != dnat.client {
		t.Fatalf("DNAT only, yet the server saw the client as %v, not %v", dnat.accepted, dnat.client)
	}

	// What the receiver exported: each end's series, found by its socket's
	// own endpoints, with its NAT attributes and exact bytes.
	type want struct {
		netns         uint32
		local, peer   netip.AddrPort
		nat           map[string]string // ebpfnet.nat.* attributes, absent ones ""
		transmit, rcv int64             // payload bytes
	}
	nsA, nsB := nn.inode(t, nn.a), nn.inode(t, nn.b)
	wants := map[string]want{
		"DNAT client": {nsA, dnat.client, netip.AddrPortFrom(natVIP, natVIPPort), map[string]string{
			"ebpfnet.nat.peer.address": dnatCT.replySrc.Addr().String(), "ebpfnet.nat.server.port": fmt.Sprint(dnatCT.replySrc.Port())}, sent, received},
		"DNAT server": {nsB, netip.AddrPortFrom(natServerAddr, natBackendPort), dnat.accepted, map[string]string{
			"ebpfnet.nat.local.address": dnatCT.origDst.Addr().String(), "ebpfnet.nat.server.port": fmt.Sprint(dnatCT.origDst.Port())}, received, sent},
		"SNAT client": {nsA, snat.client, snat.server, map[string]string{
			"ebpfnet.nat.local.address": snatCT.replyDst.Addr().String()}, sent, received},
		"SNAT server": {nsB, snat.server, snat.accepted, map[string]string{
			"ebpfnet.nat.peer.address": snatCT.origSrc.Addr().String()}, received, sent},
		// The server's socket is bound to 0.0.0.0: the tracer reports that
		// as its local address, and it is matched by its port.
		"UDP DNAT client": {nsA, udp.client, netip.AddrPortFrom(natVIP, natUDPVIPPort), map[string]string{
			"ebpfnet.nat.peer.address": udpCT.replySrc.Addr().String(), "ebpfnet.nat.server.port": fmt.Sprint(udpCT.replySrc.Port())}, query, answer},
		"UDP DNAT server": {nsB, netip.AddrPortFrom(netip.IPv4Unspecified(), natUDPBackendPort), udp.accepted, map[string]string{
			"ebpfnet.nat.local.address": udpCT.origDst.Addr().String(), "ebpfnet.nat.server.port": fmt.Sprint(udpCT.origDst.Port())}, answer, query},
	}
	var got map[string]natSeries
	deadline := time.Now().Add(15 * time.Second)
	for {
		all := sink.AllMetrics()
		if len(all) > 0 {
			got = natSeriesOf(all[len(all)-1], int64(os.Getpid()))
		}
		done := true
		for _, w := range wants {
			s := got[seriesKeyOf(w.netns, w.local, w.peer)]
			if s.tx != w.transmit || s.rx != w.rcv {
				done = false
			}
		}
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for name, w := range wants {
		s, ok := got[seriesKeyOf(w.netns, w.local, w.peer)]
		t.Logf("%s: %v -> %v in netns %d: transmit %d receive %d %v; conntrack -L in A: %v", name, w.local, w.peer, w.netns, s.tx, s.rx, s.attrs, flowOf(flows, w.local, w.peer))
		if !ok {
			t.Errorf("%s: no ebpfnet.connection.io series for %v -> %v in netns %d; series: %v", name, w.local, w.peer, w.netns, got)
			continue
		}
		if s.tx != w.transmit || s.rx != w.rcv {
			t.Errorf("%s: transmit %d receive %d, want %d and %d", name, s.tx, s.rx, w.transmit, w.rcv)
		}
		for _, k := range []string{"ebpfnet.nat.peer.address", "ebpfnet.nat.local.address", "ebpfnet.nat.server.port"} {
			if s.attrs[k] != w.nat[k] {
				t.Errorf("%s (%v -> %v): %s=%q, want %q (conntrack -L: %v)", name, w.local, w.peer, k, s.attrs[k], w.nat[k], flowOf(flows, w.local, w.peer))
			}
		}
	}
}

// natNet is the two namespaces of the NAT test.
type natNet struct{ a, b string }

func newNATNet(t *testing.T) *natNet {
	t.Helper()
	id := os.Getpid() % 100000
	nn := &natNet{a: fmt.Sprintf("enata%d", id), b: fmt.Sprintf("enatb%d", id)}
	va, vb := fmt.Sprintf("enva%d", id), fmt.Sprintf("envb%d", id)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", nn.a).Run()
		exec.Command("ip", "netns", "del", nn.b).Run()
	})
	for _, args := range [][]string{
		{"netns", "add", nn.a},
		{"netns", "add", nn.b},
		{"link", "add", va, "netns", nn.a, "type", "veth", "peer", "name", vb, "netns", nn.b},
		{"-n", nn.a, "addr", "add", natClientAddr.String() + "/24", "dev", va},
		{"-n", nn.a, "addr", "add", natSNATAddr.String() + "/32", "dev", va},
		{"-n", nn.b, "addr", "add", natServerAddr.String() + "/24", "dev", vb},
		{"-n", nn.a, "link", "set", va, "up"},
		{"-n", nn.b, "link", "set", vb, "up"},
		{"-n", nn.a, "link", "set", "lo", "up"},
		{"-n", nn.b, "link", "set", "lo", "up"},
		// The virtual address needs a route for connect to try it; the
		// output hook's DNAT then sends it to the server.
		{"-n", nn.a, "route", "add", natVIP.String() + "/32", "dev", va},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	return nn
}

// in runs fn on a thread that joined namespace ns: sockets fn makes are
// that namespace's.
func (nn *natNet) in(t *testing.T, ns string, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatalf("setns %s: %v", ns, err)
	}
	fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		panic(fmt.Sprintf("setns back: %v", err)) // this thread must not run anything else
	}
}

func (nn *natNet) inode(t *testing.T, ns string) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/run/netns/"+ns, &st); err != nil {
		t.Fatal(err)
	}
	return uint32(st.Ino)
}

func (nn *natNet) nft(t *testing.T, rules string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", nn.a, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v: %s", nn.a, err, out)
	}
}

// natExchange is one connection of the test: the client's socket endpoints
// and the peer the server's accepted socket saw.
type natExchange struct {
	client, server, accepted netip.AddrPort
}

// exchange has a server in B on listen accept one connection, which a
// client in A opens to dial: the client sends sent bytes, the server answers
// received bytes, both close.
func (nn *natNet) exchange(t *testing.T, listen, dial netip.AddrPort, sent, received int) natExchange {
	t.Helper()
	var ln net.Listener
	var err error
	nn.in(t, nn.b, func() { ln, err = net.Listen("tcp4", listen.String()) })
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		peer netip.AddrPort
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		peer := netip.MustParseAddrPort(c.RemoteAddr().String())
		if n, err := io.CopyN(io.Discard, c, int64(sent)); err != nil {
			done <- result{err: fmt.Errorf("server read %d of %d bytes: %w", n, sent, err)}
			return
		}
		_, err = c.Write(make([]byte, received))
		done <- result{peer: peer, err: err}
	}()
	var c net.Conn
	nn.in(t, nn.a, func() { c, err = net.DialTimeout("tcp4", dial.String(), 5*time.Second) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(make([]byte, sent)); err != nil {
		t.Fatal(err)
	}
	if n, err := io.CopyN(io.Discard, c, int64(received)); err != nil {
		t.Fatalf("client read %d of %d bytes: %v", n, received, err)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	return natExchange{
		client:   netip.MustParseAddrPort(c.LocalAddr().String()),
		server:   netip.MustParseAddrPort(c.RemoteAddr().String()),
		accepted: res.peer,
	}
}

// exchangeUDP has a server in B bound to 0.0.0.0:port answer one datagram
// of query bytes, which a client in A sends to dial, with answer bytes.
func (nn *natNet) exchangeUDP(t *testing.T, port uint16, dial netip.AddrPort, query, answer int) natExchange {
	t.Helper()
	var pc net.PacketConn
	var err error
	nn.in(t, nn.b, func() { pc, err = net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", port)) })
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	type result struct {
		peer netip.AddrPort
		err  error
	}
	done := make(chan result, 1)
	go func() {
		buf := make([]byte, 2048)
		n, from, err := pc.ReadFrom(buf)
		if err == nil && n != query {
			err = fmt.Errorf("server read a datagram of %d bytes, want %d", n, query)
		}
		if err == nil {
			_, err = pc.WriteTo(make([]byte, answer), from)
		}
		var peer netip.AddrPort
		if from != nil {
			peer = netip.MustParseAddrPort(from.String())
		}
		done <- result{peer, err}
	}()
	var c net.Conn
	nn.in(t, nn.a, func() { c, err = net.Dial("udp4", dial.String()) })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(make([]byte, query)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 2048)); err != nil || n != answer {
		t.Fatalf("client read %d bytes (%v), want %d", n, err, answer)
	}
	res := <-done
	if res.err != nil {
		t.Fatal(res.err)
	}
	return natExchange{client: netip.MustParseAddrPort(c.LocalAddr().String()), server: dial, accepted: res.peer}
}

// ctEntry is one line of `conntrack -L`: the original and the reply tuple.
type ctEntry struct {
	origSrc, origDst, replySrc, replyDst netip.AddrPort
}

func (e ctEntry) String() string {
	return fmt.Sprintf("orig %v->%v reply %v->%v", e.origSrc, e.origDst, e.replySrc, e.replyDst)
}

var ctField = regexp.MustCompile(`(src|dst|sport|dport)=(\S+)`)

// conntrackL lists A's conntrack entries of proto, by original source.
func (nn *natNet) conntrackL(t *testing.T, proto string) map[netip.AddrPort]ctEntry {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", nn.a, "conntrack", "-L", "-p", proto).Output()
	if err != nil {
		t.Fatalf("conntrack -L in %s: %v", nn.a, err)
	}
	entries := map[netip.AddrPort]ctEntry{}
	for _, line := range strings.Split(string(out), "\n") {
		f := ctField.FindAllStringSubmatch(line, -1)
		if len(f) < 8 {
			continue
		}
		ap := func(i int) netip.AddrPort { // fields i..i+3: src dst sport dport
			return netip.AddrPortFrom(netip.MustParseAddr(f[i][2]), mustPort(t, f[i+2][2]))
		}
		dst := func(i int) netip.AddrPort {
			return netip.AddrPortFrom(netip.MustParseAddr(f[i+1][2]), mustPort(t, f[i+3][2]))
		}
		e := ctEntry{origSrc: ap(0), origDst: dst(0), replySrc: ap(4), replyDst: dst(4)}
		entries[e.origSrc] = e
	}
	return entries
}

// flowOf is the entry of the flow a socket local -> peer is one end of.
func flowOf(flows []ctEntry, local, peer netip.AddrPort) ctEntry {
	for _, e := range flows {
		wild := local.Addr().IsUnspecified() && e.replySrc.Port() == local.Port() && e.replyDst == peer
		if e.origSrc == local && e.origDst == peer || e.replySrc == local && e.replyDst == peer || wild {
			return e
		}
	}
	return ctEntry{}
}

func mustPort(t *testing.T, s string) uint16 {
	var p uint16
	if _, err := fmt.Sscan(s, &p); err != nil {
		t.Fatalf("conntrack port %q: %v", s, err)
	}
	return p
}

// natSeries is one connection's ebpfnet.connection.io: its bytes each way
// and its ebpfnet.nat.* attributes.
type natSeries struct {
	tx, rx int64
	attrs  map[string]string
}

func seriesKeyOf(netns uint32, local, peer netip.AddrPort) string {
	return fmt.Sprintf("%d %v %v", netns, local, peer)
}

// natSeriesOf returns the ebpfnet.connection.io series of pid by
// namespace and socket endpoints (the test enables the port attributes).
func natSeriesOf(md pmetric.Metrics, pid int64) map[string]natSeries {
	out := map[string]natSeries{}
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		res := rms.At(i).Resource().Attributes()
		if v, ok := res.Get("process.pid"); !ok || v.Int() != pid {
			continue
		}
		netns, _ := res.Get("ebpfnet.netns.inode")
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				if ms.At(k).Name() != "ebpfnet.connection.io" {
					continue
				}
				dps := ms.At(k).Sum().DataPoints()
				for l := 0; l < dps.Len(); l++ {
					a := dps.At(l).Attributes()
					if tr := str(a, "network.transport"); tr != "tcp" && tr != "udp" {
						continue
					}
					local, err1 := netip.ParseAddr(str(a, "network.local.address"))
					peer, err2 := netip.ParseAddr(str(a, "network.peer.address"))
					if err1 != nil || err2 != nil {
						continue
					}
					key := seriesKeyOf(uint32(netns.Int()), netip.AddrPortFrom(local, uint16(intAttr(a, "network.local.port"))),
						netip.AddrPortFrom(peer, uint16(intAttr(a, "network.peer.port"))))
					s := out[key]
					if s.attrs == nil {
						s.attrs = natAttrs(a)
					}
					switch str(a, "network.io.direction") {
					case "transmit":
						s.tx += dps.At(l).IntValue()
					case "receive":
						s.rx += dps.At(l).IntValue()
					}
					out[key] = s
				}
			}
		}
	}
	return out
}

func natAttrs(a pcommon.Map) map[string]string {
	out := map[string]string{}
	a.Range(func(k string, v pcommon.Value) bool {
		if strings.HasPrefix(k, "ebpfnet.nat.") {
			out[k] = v.AsString()
		}
		return true
	})
	return out
}
