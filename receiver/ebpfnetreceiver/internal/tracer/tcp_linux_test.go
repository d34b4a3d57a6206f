// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// TestTCPExactBytes: a client sends exactly N bytes and receives exactly M;
// each end must be reported once, closed, with those numbers on the right
// side, the right direction, tuple, PID, netns, socket cookie, and the data
// segment counts `ss -tie` showed just before the close.
func TestTCPExactBytes(t *testing.T) {
	tr := startTracer(t, Config{})
	col := newCollector(t, tr)
	sizes := []struct{ send, recv int }{
		{0, 0}, {1, 7}, {1460, 65536}, {1<<20 + 123, 3}, {5, 2<<20 + 1},
	}
	synthetic := map[uint64]string{} // every synthetic cookie reported, and by which end
	for _, family := range []struct{ name, network, addr string }{
		{"ipv4", "tcp4", "127.0.0.1:0"}, {"ipv6", "tcp6", "[::1]:0"},
	} {
		for _, sz := range sizes {
			t.Run(fmt.Sprintf("%s/send=%d/recv=%d", family.name, sz.send, sz.recv), func(t *testing.T) {
				col.t = t
				exchangeAndCheck(t, col, family.network, family.addr, sz.send, sz.recv, synthetic)
			})
		}
	}
}

func exchangeAndCheck(t *testing.T, col *collector, network, addr string, send, recv int, synthetic map[uint64]string) {
	began := monotonicNow(t)
	cli, srv := dialPair(t, network, addr)
	server := netip.MustParseAddrPort(srv.LocalAddr().String())
	client := netip.MustParseAddrPort(cli.LocalAddr().String())

	payload := bytes.Repeat([]byte("a"), send)
	reply := bytes.Repeat([]byte("b"), recv)
	errc := make(chan error, 1)
	go func() {
		buf := make([]byte, send)
		if _, err := io.ReadFull(srv, buf); err != nil {
			errc <- err
			return
		}
		_, err := srv.Write(reply)
		errc <- err
	}()
	if _, err := cli.Write(payload); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, recv)
	if _, err := io.ReadFull(cli, got); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// The ends listed before ss asks for their cookies: the connecting one (at ESTABLISHED) and
	// an accepted one that did I/O. What they report while open must be what they report closed.
	listedEarly := func(isClient bool) bool { return isClient || send+recv > 0 }
	activeCookie := map[netip.AddrPort]uint64{}
	for _, end := range []struct{ local, peer netip.AddrPort }{{client, server}, {server, client}} {
		if listedEarly(end.local == client) {
			a := col.waitActive(5*time.Second, func(c conns.Conn) bool { return c.Local == end.local && c.Peer == end.peer })
			activeCookie[end.local] = a.Cookie
		}
	}
	truth := ssTCP(t, server.Port())
	checkOpenRTT(t, col, server.Port(), activeCookie)
	srv.Close()
	cli.Close()

	ends := col.waitClosed(2, 5*time.Second, func(c conns.Conn) bool {
		return c.Transport == conns.TransportTCP && (c.Local == client && c.Peer == server || c.Local == server && c.Peer == client)
	})
	ended := monotonicNow(t)
	for _, c := range ends {
		isClient := c.Local == client
		wantDir, wantSent, wantRecv := conns.DirectionOutgoing, send, recv
		if !isClient {
			wantDir, wantSent, wantRecv = conns.DirectionIncoming, recv, send
		}
		ss, ok := truth[c.Local]
		if !ok {
			t.Fatalf("ss did not show %v", c.Local)
		}
		checks := []struct {
			what      string
			got, want any
		}{
			{"direction", c.Direction, wantDir},
			{"sent bytes", c.SentBytes, uint64(wantSent)},
			{"received bytes", c.RecvBytes, uint64(wantRecv)},
			{"received bytes (ss bytes_received)", c.RecvBytes, ss.bytesReceived},
			{"sent packets (ss data_segs_out)", c.SentPackets, ss.dataSegsOut},
			{"received packets (ss data_segs_in)", c.RecvPackets, ss.dataSegsIn},
			{"pid", c.PID, pid()},
			{"netns", c.Netns, selfNetns(t)},
			{"failure reason", c.TCP.FailureReason, uint16(0)},
			{"failure", c.TCP.Failure(), conns.FailureNone},
			{"retransmits (ss retrans total)", c.TCP.Retransmits, ss.retrans},
			{"SYN retransmits", c.TCP.SynRetransmits, uint8(0)},
			{"RTT sampled", c.TCP.RTT > 0, true},
		}
		for _, ch := range checks {
			if ch.got != ch.want {
				t.Errorf("%v end %v->%v: %s = %v, want %v", wantDir, c.Local, c.Peer, ch.what, ch.got, ch.want)
			}
		}
		if err := checkCookie(col.tr.cookies, listedEarly(isClient), c.Cookie, ss.cookie, began, ended); err != nil {
			t.Errorf("%v end %v->%v: %v", wantDir, c.Local, c.Peer, err)
		}
		if a, ok := activeCookie[c.Local]; ok && a != c.Cookie {
			t.Errorf("%v end %v->%v: cookie %#x while open, %#x closed", wantDir, c.Local, c.Peer, a, c.Cookie)
		}
		if c.Cookie&syntheticBit != 0 {
			name := fmt.Sprintf("%v end %v->%v", wantDir, c.Local, c.Peer)
			if other, dup := synthetic[c.Cookie]; dup {
				t.Errorf("%s: synthetic cookie %#x already reported by %s", name, c.Cookie, other)
			}
			synthetic[c.Cookie] = name
		}
		// The connecting end's name is taken at connect(), the accepted end's at its
		// first I/O; an accepted socket that never did any has none.
		if wantComm, wantCgroup := selfComm(t), selfCgroupID(t); (isClient || send+recv > 0) && (c.Comm != wantComm || c.CgroupID != wantCgroup) {
			t.Errorf("%v end: comm %q cgroup id %d, want %q %d", wantDir, c.Comm, c.CgroupID, wantComm, wantCgroup)
		}
		if c.Duration <= 0 || c.Start.IsZero() {
			t.Errorf("%v end: duration %v start %v", wantDir, c.Duration, c.Start)
		}
	}
}

// syntheticBit marks a cookie the tracer made up (see sock_cookie in bpf/common/sock.h).
const syntheticBit = uint64(1) << 63

// checkCookie checks an end's reported cookie against ss's. Where the kernel
// lets the tracer ask for cookies (5.12+), it is always the kernel's, the one
// ss shows. Before that the tracer can only read one, and a socket has one
// only once someone asked: an end the tracer listed before ss asked carries a
// synthetic id, the socket's first-seen time (CLOCK_MONOTONIC, which
// bpf_ktime_get_ns reads) with the top bit set, so that time must fall within
// the exchange; an end first listed at its close (after ss) has ss's.
func checkCookie(cookies, listedBeforeSS bool, got, ss uint64, began, ended uint64) error {
	if ss == 0 || ss&syntheticBit != 0 {
		return fmt.Errorf("ss showed no usable cookie (sk:%x)", ss)
	}
	if cookies || !listedBeforeSS {
		if got != ss {
			return fmt.Errorf("cookie %#x, want ss's %#x (kernel cookies: %v)", got, ss, cookies)
		}
		return nil
	}
	if got&syntheticBit == 0 {
		return fmt.Errorf("cookie %#x: want a synthetic one (top bit set) on a kernel without cookies for tracing programs; ss shows %#x", got, ss)
	}
	if seen := got &^ syntheticBit; seen < began || seen > ended {
		return fmt.Errorf("synthetic cookie %#x: first-seen time %d outside the exchange [%d, %d]", got, seen, began, ended)
	}
	return nil
}

// monotonicNow reads CLOCK_MONOTONIC in nanoseconds, the clock of bpf_ktime_get_ns.
func monotonicNow(t *testing.T) uint64 {
	t.Helper()
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatalf("clock_gettime: %v", err)
	}
	return uint64(ts.Nano())
}

// TestTCPHalfClose: after shutdown(SHUT_WR) the peer's FIN moves the client's
// socket to CLOSE while its reply is still queued; the bytes read afterwards
// belong to the connection and must be counted. The test reads only once ss
// shows the client's tuple in TIME-WAIT (the FIN arrived and the socket the
// client holds went to CLOSE) and the whole reply waits in its receive queue.
func TestTCPHalfClose(t *testing.T) {
	tr := startTracer(t, Config{})
	col := newCollector(t, tr)
	ln := listen(t, "tcp4", "127.0.0.1:0")
	server := netip.MustParseAddrPort(ln.Addr().String())
	const send, recv = 4096, 300000
	srvErr := serveOne(ln, func(c net.Conn) error {
		if n, err := io.Copy(io.Discard, c); err != nil || n != send {
			return fmt.Errorf("server read %d bytes before EOF, want %d (%v)", n, send, err)
		}
		return nil
	}, recv)
	// The whole reply must fit in the client's receive queue, or the server's
	// FIN could not arrive before the client reads. FORCE: past rmem_max,
	// which is 208 KiB on stock kernels (the test runs privileged anyway).
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 2*recv) })
		return errors.Join(err, serr)
	}}
	cli, err := d.Dial("tcp4", server.String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	local := netip.MustParseAddrPort(cli.LocalAddr().String())
	if _, err := cli.Write(make([]byte, send)); err != nil {
		t.Fatal(err)
	}
	if err := cli.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if err := <-srvErr; err != nil {
		t.Fatal(err)
	}
	waitTimeWait(t, local, server, 5*time.Second)
	if q := inq(t, cli.(*net.TCPConn)); q != recv {
		t.Fatalf("client's receive queue holds %d bytes after the FIN, want the whole reply, %d", q, recv)
	}
	n, err := io.Copy(io.Discard, cli)
	if err != nil || n != recv {
		t.Fatalf("client read %d bytes, want %d (%v)", n, recv, err)
	}
	cli.Close()
	got := col.waitClosed(1, 5*time.Second, func(c conns.Conn) bool { return c.Local == local && c.Peer == server })[0]
	if got.SentBytes != send || got.RecvBytes != recv {
		t.Errorf("half-closed client: sent %d received %d, want %d and %d", got.SentBytes, got.RecvBytes, send, recv)
	}
}

// waitTimeWait polls ss until the TCP tuple local->peer is in TIME-WAIT: the
// peer's FIN arrived after ours and the kernel moved the socket to CLOSE,
// leaving a time-wait socket in its place. Fails after timeout.
func waitTimeWait(t *testing.T, local, peer netip.AddrPort, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out, err := exec.Command("ss", "-tanH", "state", "time-wait", "src", local.String(), "dst", peer.String()).CombinedOutput()
		if err != nil {
			t.Fatalf("ss: %v: %s", err, out)
		}
		if strings.TrimSpace(string(out)) != "" {
			return
		}
		if time.Now().After(deadline) {
			out, _ := exec.Command("ss", "-tanH", "src", local.String(), "dst", peer.String()).CombinedOutput()
			t.Fatalf("%v->%v not in TIME-WAIT after %v; ss shows: %q", local, peer, timeout, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// inq is how many received bytes wait unread in a TCP socket's receive queue.
func inq(t *testing.T, c *net.TCPConn) int {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ierr error
	if err := rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
		t.Fatal(err)
	}
	if ierr != nil {
		t.Fatalf("SIOCINQ: %v", ierr)
	}
	return n
}

// TestTCPRefused: a connect to a closed port is reported closed with
// ECONNREFUSED, no bytes, and the connecting PID.
func TestTCPRefused(t *testing.T) {
	tr := startTracer(t, Config{})
	col := newCollector(t, tr)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	if c, err := net.Dial("tcp4", target.String()); err == nil {
		c.Close()
		t.Fatal("connect to a closed port succeeded")
	}
	got := col.waitClosed(1, 5*time.Second, func(c conns.Conn) bool { return c.Peer == target })[0]
	const econnrefused = 111
	if got.TCP.FailureReason != econnrefused || got.Direction != conns.DirectionOutgoing || got.PID != pid() || got.SentBytes+got.RecvBytes != 0 {
		t.Errorf("refused connect reported as %+v", got)
	}
}

// TestTCPActiveCounters: an open connection is listed in Active with the bytes
// so far, and its counters only grow between polls.
func TestTCPActiveCounters(t *testing.T) {
	tr := startTracer(t, Config{})
	col := newCollector(t, tr)
	ln := listen(t, "tcp4", "127.0.0.1:0")
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	cli, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	local := netip.MustParseAddrPort(cli.LocalAddr().String())
	for i, want := range []uint64{1000, 3000} {
		cli.Write(make([]byte, 1000*(i+1)))
		a := col.waitActive(5*time.Second, func(c conns.Conn) bool { return c.Local == local && c.SentBytes == want })
		if a.Direction != conns.DirectionOutgoing || a.PID != pid() {
			t.Errorf("active connection %+v", a)
		}
	}
}

// checkOpenRTT: while the connection is open, the RTT and RTT variation the
// tracer reports for each end listed in ends are the kernel's, those ss
// prints for the socket, to the microsecond. A late ACK (a delayed one, or
// one a busy CPU held back) may move them between the two readings, so it
// reads both again until they agree, 20 times at most. (The value is
// checked against the kernel, not against a bound: under load, loopback's
// smoothed RTT itself grows past a millisecond.)
func checkOpenRTT(t *testing.T, col *collector, port uint16, ends map[netip.AddrPort]uint64) {
	t.Helper()
	var diffs []string
	for range 20 {
		diffs = diffs[:0]
		truth := ssTCP(t, port)
		col.poll()
		for local := range ends {
			ss, inSS := truth[local]
			var c conns.Conn
			open := false
			for _, a := range col.active {
				if a.Local == local {
					c, open = a, true
				}
			}
			switch {
			case !inSS || !open:
				diffs = append(diffs, fmt.Sprintf("%v: open for the tracer %v, for ss %v", local, open, inSS))
			case c.TCP.RTT == 0 || c.TCP.RTT != ss.rtt || c.TCP.RTTVar != ss.rttVar:
				diffs = append(diffs, fmt.Sprintf("%v: RTT %v/%v, ss rtt:%v/%v", local, c.TCP.RTT, c.TCP.RTTVar, ss.rtt, ss.rttVar))
			}
		}
		if len(diffs) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Errorf("RTT/RTT variation while open never equal to ss's in 20 readings: %s", strings.Join(diffs, "; "))
}
