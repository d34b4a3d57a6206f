// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// The TCP health tests make real faults in network namespaces they create
// (newTestNetns): a closed port, a server that aborts, SYNs a full backlog
// drops, ICMP unreachables from a namespace that routes, a connect the
// application gives up, loss and delay on the veth. Each checks the tracer
// against what the test did and what the kernel says (ss).

// failedTo waits for n closed connections to peer and checks that each is an
// outgoing connection of this process that failed with want, moved no bytes
// and never got established, and that they retransmitted synRetrans SYNs in
// all and nothing else.
func failedTo(t *testing.T, col *collector, peer netip.AddrPort, n int, want conns.Failure, synRetrans uint64) {
	t.Helper()
	got := col.waitClosed(n, 15*time.Second, func(c conns.Conn) bool { return c.Transport == conns.TransportTCP && c.Peer == peer })
	var syns uint64
	for _, c := range got {
		syns += uint64(c.TCP.SynRetransmits)
		if f := c.TCP.Failure(); f != want || c.PID != pid() || c.Direction != conns.DirectionOutgoing ||
			c.SentBytes+c.RecvBytes != 0 || c.TCP.Retransmits != 0 || c.TCP.Established() {
			t.Errorf("connect to %v: failure %q (errno %d) pid %d %v bytes %d/%d retransmits %d established %v; "+
				"want %q, pid %d, outgoing, no bytes, no retransmits, never established (transitions %b, telemetry %+v)",
				peer, f, c.TCP.FailureReason, c.PID, c.Direction, c.SentBytes, c.RecvBytes, c.TCP.Retransmits,
				c.TCP.Established(), want, pid(), c.TCP.StateTransitions, col.tr.Telemetry())
		}
	}
	if syns != synRetrans {
		t.Errorf("connects to %v: %d SYN retransmits, the kernel counted %d", peer, syns, synRetrans)
	}
}

// synRetransDuring runs fn and returns the SYNs this network namespace
// retransmitted meanwhile (TcpExt TCPSynRetrans): the kernel's count for the
// connects fn made, none other running. Whether an ICMP answer comes before a
// connect's first retransmit is the kernel's business (5.10 under emulation
// often waits for the second SYN).
func synRetransDuring(t *testing.T, fn func()) uint64 {
	t.Helper()
	before := tcpExt(t, "TCPSynRetrans")
	fn()
	return tcpExt(t, "TCPSynRetrans") - before
}

// dialFails connects to addr n times and checks each connect fails with want.
func dialFails(t *testing.T, addr netip.AddrPort, n int, want syscall.Errno) {
	t.Helper()
	for range n {
		c, err := net.DialTimeout("tcp4", addr.String(), 30*time.Second)
		if err == nil {
			c.Close()
			t.Fatalf("connect to %v succeeded", addr)
		}
		if !errors.Is(err, want) {
			t.Fatalf("connect to %v: %v, want %v", addr, err, want)
		}
	}
}

// TestTCPFailureRefused: connects to a closed port in another namespace give
// exactly that many refused connections, for that peer and this process.
func TestTCPFailureRefused(t *testing.T) {
	col, ns := tracedNetns(t)
	ln, closed := ns.server(t)
	ln.Close()
	const n = 5
	syns := synRetransDuring(t, func() { dialFails(t, closed, n, syscall.ECONNREFUSED) })
	failedTo(t, col, closed, n, conns.FailureRefused, syns)
}

// TestTCPFailureReset: a server that reads what the client sent, then closes
// with SO_LINGER 0, resets the client's connection. The client's end is a
// reset with its bytes up to it exact; the server's end, which aborted, is
// not a failure (a failure counts once, in the process that connected).
func TestTCPFailureReset(t *testing.T) {
	col, ns := tracedNetns(t)
	ln, server := ns.server(t)
	const send = 54321
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		if _, err := io.ReadFull(c, make([]byte, send)); err != nil {
			c.Close()
			srvErr <- fmt.Errorf("server read: %w", err)
			return
		}
		if err := c.(*net.TCPConn).SetLinger(0); err != nil {
			srvErr <- err
		}
		srvErr <- c.Close()
	}()
	cli, err := net.DialTimeout("tcp4", server.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	client := netip.MustParseAddrPort(cli.LocalAddr().String())
	if _, err := cli.Write(make([]byte, send)); err != nil {
		t.Fatal(err)
	}
	if err := <-srvErr; err != nil {
		t.Fatal(err)
	}
	if n, err := cli.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client read after the server's abort: %d bytes, %v; want ECONNRESET", n, err)
	}
	cli.Close()

	ends := col.waitClosed(2, 5*time.Second, func(c conns.Conn) bool {
		return c.Transport == conns.TransportTCP && (c.Local == client && c.Peer == server || c.Local == server && c.Peer == client)
	})
	for _, c := range ends {
		want, sent, recv := conns.FailureReset, uint64(send), uint64(0)
		if c.Local == server {
			want, sent, recv = conns.FailureNone, 0, send
		}
		if f := c.TCP.Failure(); f != want || !c.TCP.Established() || c.SentBytes != sent || c.RecvBytes != recv || c.PID != pid() {
			t.Errorf("%v->%v: failure %q (errno %d), established %v, sent %d received %d pid %d; want %q, established, sent %d received %d pid %d",
				c.Local, c.Peer, f, c.TCP.FailureReason, c.TCP.Established(), c.SentBytes, c.RecvBytes, c.PID, want, sent, recv, pid())
		}
	}
}

// TestTCPFailureTimedOut: a listener whose accept queue is full drops SYNs;
// with tcp_syn_retries 2 in the namespace, a connect there times out, with
// the SYN retransmits the namespace's own counter (TcpExt TCPSynRetrans)
// counted. Their number is the kernel's choice: tcp_syn_retries bounds the
// time (1+2+4 s), and kernels with tcp_syn_linear_timeouts (6.7+) retransmit
// at 1 s steps first, 5 times in those 7 s.
func TestTCPFailureTimedOut(t *testing.T) {
	col, ns := tracedNetns(t)
	const synRetries = 2
	ns.sysctl(t, "net/ipv4/tcp_syn_retries", fmt.Sprint(synRetries))
	// A backlog of 0 holds one connection: the next SYN is dropped while it
	// waits. Its request queue is full from the start, so the first
	// connection gets in by a SYN cookie.
	ns.sysctl(t, "net/ipv4/tcp_syncookies", "1")
	ln := ns.listenBacklog0(t, netip.AddrPortFrom(ns.insideAddr, 0))
	defer ln.Close()
	server := netip.MustParseAddrPort(ln.Addr().String())
	var filler net.Conn
	var err error
	synBefore := ns.tcpExt(t, "TCPSynRetrans")
	ns.in(t, func() { filler, err = net.DialTimeout("tcp4", server.String(), 5*time.Second) })
	if err != nil {
		t.Fatalf("the connection that fills the backlog: %v", err)
	}
	defer filler.Close()
	ns.in(t, func() {
		var c net.Conn
		c, err = net.DialTimeout("tcp4", server.String(), 60*time.Second)
		if c != nil {
			c.Close()
		}
	})
	if !errors.Is(err, syscall.ETIMEDOUT) {
		t.Fatalf("connect to a full backlog: %v, want ETIMEDOUT", err)
	}
	synRetrans := ns.tcpExt(t, "TCPSynRetrans") - synBefore
	if synRetrans < synRetries {
		t.Fatalf("the namespace counts %d SYN retransmits, want at least tcp_syn_retries %d", synRetrans, synRetries)
	}
	fillerLocal := netip.MustParseAddrPort(filler.LocalAddr().String())
	got := col.waitClosed(1, 10*time.Second, func(c conns.Conn) bool {
		return c.Transport == conns.TransportTCP && c.Peer == server && c.Local != fillerLocal
	})[0]
	if f := got.TCP.Failure(); f != conns.FailureTimedOut || uint64(got.TCP.SynRetransmits) != synRetrans || got.TCP.Retransmits != 0 ||
		got.PID != pid() || got.Direction != conns.DirectionOutgoing || got.SentBytes+got.RecvBytes != 0 || got.TCP.Established() {
		t.Errorf("timed-out connect: %+v, failure %q; want timed_out, %d SYN retransmits (the namespace's count), no other, this pid, no bytes",
			got, f, synRetrans)
	}
}

// TestTCPFailureUnreachable: the namespace routes two prefixes for the host:
// one to an unreachable route (ICMP host unreachable) and one to nowhere
// (ICMP network unreachable). Each connect fails at once with its reason.
func TestTCPFailureUnreachable(t *testing.T) {
	col, ns := tracedNetns(t)
	ns.router(t)
	for _, tc := range []struct {
		name   string
		prefix string
		nsArgs []string // the namespace's route for the prefix (none: no route)
		errno  syscall.Errno
		want   conns.Failure
	}{
		{"host", "198.18.1.0/24", []string{"route", "add", "unreachable", "198.18.1.0/24"}, syscall.EHOSTUNREACH, conns.FailureHostUnreachable},
		{"net", "198.18.2.0/24", nil, syscall.ENETUNREACH, conns.FailureNetUnreachable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.nsArgs != nil {
				ns.ip(t, tc.nsArgs...)
			}
			ns.routeVia(t, tc.prefix)
			peer := netip.AddrPortFrom(netip.MustParsePrefix(tc.prefix).Addr().Next().Next(), 8080)
			// A router answers a burst of 5 unroutable packets per source
			// at once (net.ipv4.route.error_burst), then one a second: 2+2
			// connects and their retransmits stay within it.
			const n = 2
			syns := synRetransDuring(t, func() { dialFails(t, peer, n, tc.errno) })
			failedTo(t, col, peer, n, tc.want, syns)
		})
	}
}

// TestTCPFailureCanceled: connects into a black hole that the application
// gives up before the first SYN retransmit are canceled.
func TestTCPFailureCanceled(t *testing.T) {
	col, ns := tracedNetns(t)
	ns.router(t)
	ns.ip(t, "route", "add", "blackhole", "198.18.3.0/24")
	ns.routeVia(t, "198.18.3.0/24")
	peer := netip.MustParseAddrPort("198.18.3.3:8080")
	const n = 2
	syns := synRetransDuring(t, func() {
		for range n {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp4", peer.String())
			cancel()
			if err == nil {
				c.Close()
				t.Fatal("connect into a black hole succeeded")
			}
		}
	})
	failedTo(t, col, peer, n, conns.FailureCanceled, syns)
}

// TestTCPRetransmits: with data segments dropped at random on the way to the
// server (nftables in the server's namespace; netem loss on the host's end of
// the veth where the kernel has netem), the client's retransmits equal ss's
// for the socket, while it is open and at close, and its bytes stay exact.
func TestTCPRetransmits(t *testing.T) {
	col, ns := tracedNetns(t)
	ln, server := ns.server(t)
	how, stopDrops := ns.dropData(t, server.Port())
	t.Logf("dropping data segments with %s", how)

	// Rounds of a chunk and a one-byte answer, until ss counts a few
	// retransmits: a drop rate is a chance per packet, and a kernel that
	// hands the veth 64 KiB GSO packets makes few of them per megabyte.
	const chunk, wantRetrans, maxRounds = 16 << 10, 5, 2000
	srvErr := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		buf := make([]byte, chunk)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil // the client closed
				}
				srvErr <- err
				return
			}
			if _, err := c.Write(buf[:1]); err != nil {
				srvErr <- err
				return
			}
		}
	}()
	cli, err := net.DialTimeout("tcp4", server.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	client := netip.MustParseAddrPort(cli.LocalAddr().String())
	var ss ssInfo
	rounds := 0
	for buf := make([]byte, chunk); ss.retrans < wantRetrans; rounds++ {
		if rounds == maxRounds {
			t.Fatalf("ss counts %d retransmits after %d bytes through %s: the fault did not happen", ss.retrans, rounds*chunk, how)
		}
		if _, err := cli.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(cli, buf[:1]); err != nil {
			t.Fatalf("client read: %v", err)
		}
		if rounds%16 == 15 {
			// Every chunk so far is acknowledged (answered): the
			// retransmit counter stands still while ss reads it.
			var ok bool
			if ss, ok = ssTCP(t, server.Port())[client]; !ok {
				t.Fatalf("ss does not list %v", client)
			}
		}
	}
	send, reply := uint64(rounds*chunk), uint64(rounds)
	check := func(when string, c conns.Conn) {
		t.Helper()
		got := c.TCP.Retransmits + uint32(c.TCP.SynRetransmits)
		if d := int64(got) - int64(ss.retrans); d < -1 || d > 1 || c.SentBytes != send || c.RecvBytes != reply || c.TCP.Failure() != conns.FailureNone {
			t.Errorf("%s: retransmits %d (+%d SYN), sent %d received %d, failure %q; ss: %d retransmits; want sent %d received %d",
				when, c.TCP.Retransmits, c.TCP.SynRetransmits, c.SentBytes, c.RecvBytes, c.TCP.Failure(), ss.retrans, send, reply)
		}
	}
	check("open", col.waitActive(5*time.Second, func(c conns.Conn) bool { return c.Local == client && c.Peer == server }))
	t.Logf("ss: %d retransmits of %d data segments (%d rounds)", ss.retrans, ss.dataSegsOut, rounds)
	stopDrops() // every chunk is acknowledged: nothing is left to retransmit but a lost FIN
	cli.Close()
	if err := <-srvErr; err != nil {
		t.Fatal(err)
	}
	check("closed", col.waitClosed(1, 5*time.Second, func(c conns.Conn) bool { return c.Local == client && c.Peer == server })[0])
}

// TestTCPRTTTracksDelay: with netem delay on the way to the server, the
// smoothed RTT of an open connection is the added delay within 20%, equal to
// ss's for the socket, and follows the delay when it changes while the
// connection stays open; the final RTT is the last one.
func TestTCPRTTTracksDelay(t *testing.T) {
	col, ns := tracedNetns(t)
	if err := ns.netem(t, "add", "delay", "50ms"); err != nil {
		t.Skipf("no netem on this kernel: runs in the kernel matrix (make kernel-matrix): %v", err)
	}
	ln, server := ns.server(t)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(c, c) // echo
			c.Close()
		}
	}()
	cli, err := net.DialTimeout("tcp4", server.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	client := netip.MustParseAddrPort(cli.LocalAddr().String())
	pingPong := func(rounds int) {
		t.Helper()
		buf := make([]byte, 100)
		for range rounds {
			if _, err := cli.Write(buf); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(cli, buf); err != nil {
				t.Fatal(err)
			}
		}
	}
	// SRTT moves an eighth of the way to each sample: 30 samples take it
	// within 2% of a new delay.
	const rounds = 30
	match := func(c conns.Conn) bool { return c.Local == client && c.Peer == server }
	check := func(when string, c conns.Conn, delay time.Duration) {
		t.Helper()
		ss := ssTCP(t, server.Port())[client]
		lo, hi := delay*8/10, delay*12/10
		if c.TCP.RTT < lo || c.TCP.RTT > hi || c.TCP.RTT != ss.rtt || c.TCP.RTTVar != ss.rttVar {
			t.Errorf("%s: RTT %v (variation %v), want within 20%% of the added %v and equal to ss's %v (%v)",
				when, c.TCP.RTT, c.TCP.RTTVar, delay, ss.rtt, ss.rttVar)
		}
	}
	pingPong(rounds)
	check("open, 50ms", col.waitActive(5*time.Second, match), 50*time.Millisecond)
	if err := ns.netem(t, "change", "delay", "100ms"); err != nil {
		t.Fatal(err)
	}
	pingPong(rounds)
	open := col.waitActive(5*time.Second, match)
	check("open, 100ms", open, 100*time.Millisecond)
	cli.Close()
	closed := col.waitClosed(1, 5*time.Second, match)[0]
	if closed.TCP.RTT < open.TCP.RTT*9/10 || closed.TCP.RTT > open.TCP.RTT*11/10 {
		t.Errorf("closed with RTT %v, last seen open with %v", closed.TCP.RTT, open.TCP.RTT)
	}
}

// tracedNetns starts a tracer and a namespace for one test.
func tracedNetns(t *testing.T) (*collector, *testNetns) {
	t.Helper()
	col := newCollector(t, startTracer(t, Config{}))
	return col, newTestNetns(t)
}

// server listens on a free TCP port of the namespace's address until the
// test ends.
func (n *testNetns) server(t *testing.T) (net.Listener, netip.AddrPort) {
	t.Helper()
	ln := n.listen(t, "tcp4", netip.AddrPortFrom(n.insideAddr, 0).String())
	t.Cleanup(func() { ln.Close() })
	return ln, netip.MustParseAddrPort(ln.Addr().String())
}

// sysctl sets a sysctl of the namespace (key under /proc/sys, with slashes).
func (n *testNetns) sysctl(t *testing.T, key, value string) {
	t.Helper()
	var err error
	n.in(t, func() { err = os.WriteFile("/proc/sys/"+key, []byte(value), 0) })
	if err != nil {
		t.Fatalf("sysctl %s=%s in %s: %v", key, value, n.name, err)
	}
}

// tcpExt reads a TcpExt counter of the namespace.
func (n *testNetns) tcpExt(t *testing.T, name string) uint64 {
	t.Helper()
	var v uint64
	n.in(t, func() { v = tcpExt(t, name) })
	return v
}

// tcpExt reads a TcpExt counter of the calling thread's network namespace
// (/proc/net/netstat).
func tcpExt(t *testing.T, name string) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/thread-self/net/netstat")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		keys, vals := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(keys) == 0 || keys[0] != "TcpExt:" || len(vals) != len(keys) {
			continue
		}
		for j, k := range keys {
			if k == name {
				v, err := strconv.ParseUint(vals[j], 10, 64)
				if err != nil {
					t.Fatalf("TcpExt %s: %v", name, err)
				}
				return v
			}
		}
	}
	t.Fatalf("no TcpExt %s in /proc/net/netstat", name)
	return 0
}

// ip runs `ip -n <namespace> args...`.
func (n *testNetns) ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", n.name}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s %v: %v: %s", n.name, args, err, out)
	}
}

// router makes the namespace forward and answer every packet it cannot route
// with an ICMP error (no rate limit, so each connect gets its own).
func (n *testNetns) router(t *testing.T) {
	t.Helper()
	n.sysctl(t, "net/ipv4/conf/all/forwarding", "1")
	n.sysctl(t, "net/ipv4/icmp_ratelimit", "0")
}

// routeVia routes prefix from the host through the namespace. The route goes
// with the veth at the test's end.
func (n *testNetns) routeVia(t *testing.T, prefix string) {
	t.Helper()
	args := []string{"route", "add", prefix, "via", n.insideAddr.String()}
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "route", "del", prefix).Run() })
}

// hostLink is the host's end of the veth.
func (n *testNetns) hostLink() string { return "enh" + n.name[4:] }

// netem adds or changes a netem qdisc on the host's end of the veth: it
// shapes what the host sends into the namespace.
func (n *testNetns) netem(t *testing.T, op string, args ...string) error {
	t.Helper()
	out, err := exec.Command("tc", append([]string{"qdisc", op, "dev", n.hostLink(), "root", "netem"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("tc qdisc %s netem %v: %w: %s", op, args, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// dropData drops about one in ten of the segments the host sends to port in
// the namespace: every kind with netem loss where the kernel has netem, else
// only data segments (not SYN, FIN or a bare ACK) with an nftables rule in the
// namespace. It says which, and returns the call that stops the drops: a test
// stops them before it closes, so that a lost FIN adds no retransmit after ss
// last read the socket.
func (n *testNetns) dropData(t *testing.T, port uint16) (how string, stop func()) {
	t.Helper()
	netemErr := n.netem(t, "add", "loss", "10%")
	if netemErr == nil {
		return "netem loss 10% (every packet)", func() {
			if err := n.netem(t, "del"); err != nil {
				t.Fatal(err)
			}
		}
	}
	rules := fmt.Sprintf(`table inet enetloss {
	chain in {
		type filter hook input priority 0; policy accept;
		tcp dport %d meta length > 200 numgen random mod 10 == 0 counter drop
	}
}`, port)
	nft := func(stdin string, args ...string) error {
		cmd := exec.Command("ip", append([]string{"netns", "exec", n.name, "nft"}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("nft %v: %w: %s", args, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := nft(rules, "-f", "-"); err != nil {
		t.Fatalf("neither netem (%v) nor nftables (%v) can drop packets here", netemErr, err)
	}
	return "nftables: one data segment in ten dropped in the namespace", func() {
		if err := nft("", "delete", "table", "inet", "enetloss"); err != nil {
			t.Fatal(err)
		}
	}
}

// listenBacklog0 listens on addr inside the namespace with a backlog of 0.
func (n *testNetns) listenBacklog0(t *testing.T, addr netip.AddrPort) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	n.in(t, func() {
		fd, serr := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if serr != nil {
			err = serr
			return
		}
		f := os.NewFile(uintptr(fd), "listener")
		defer f.Close() // FileListener dups it
		if err = unix.Bind(fd, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}); err != nil {
			return
		}
		if err = unix.Listen(fd, 0); err != nil {
			return
		}
		ln, err = net.FileListener(f)
	})
	if err != nil {
		t.Fatalf("listen with backlog 0 on %v: %v", addr, err)
	}
	return ln
}
