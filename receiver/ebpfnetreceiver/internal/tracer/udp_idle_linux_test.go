// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// TestUDPIdleFlowsEnd: a UDP server in a namespace of its own hears from
// three waves of 40,000 distinct peers, the waves further apart than the idle
// timeout. Every flow is reported closed exactly once with the bytes the
// server itself received from that peer, and a 65,536-entry table never
// fills: idle flows leave it.
func TestUDPIdleFlowsEnd(t *testing.T) {
	const (
		waves = 3
		peers = 40_000
		idle  = 2 * time.Second
	)
	tr := startTracer(t, Config{MaxConnections: 65536, UDPIdleTimeout: idle})
	c := newCollector(t, tr)
	ns := newTestNetns(t)

	var srv int
	var err error
	ns.in(t, func() { srv, err = udpSocket(netip.MustParseAddrPort("127.0.0.1:0")) })
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(srv)
	// Room for a whole wave, so the kernel drops none of it.
	if err := unix.SetsockoptInt(srv, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptTimeval(srv, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100_000}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(srv)
	if err != nil {
		t.Fatal(err)
	}
	srvPort := sa.(*unix.SockaddrInet4).Port

	// The server's own account of what each peer sent it: the ground truth.
	var mu sync.Mutex
	received := map[netip.AddrPort]uint64{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 64)
		for {
			n, from, err := unix.Recvfrom(srv, buf, 0)
			select {
			case <-stop:
				return
			default:
			}
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil {
				t.Errorf("recvfrom: %v", err)
				return
			}
			f := from.(*unix.SockaddrInet4)
			mu.Lock()
			received[netip.AddrPortFrom(netip.AddrFrom4(f.Addr), uint16(f.Port))] += uint64(n)
			mu.Unlock()
		}
	}()
	defer func() { close(stop); <-done }()

	payload := make([]byte, 16)
	isServerFlow := func(cn conns.Conn) bool {
		return cn.Transport == conns.TransportUDP && cn.Local.Port() == uint16(srvPort) && cn.Peer.Addr().As4()[1] >= 10
	}
	for w := range waves {
		// One client socket per wave, sending from 40,000 source addresses of
		// 127.(10+w).0.0/16 (IP_PKTINFO), so the server sees 40,000 peers.
		var cli int
		ns.in(t, func() { cli, err = udpSocket(netip.MustParseAddrPort("0.0.0.0:0")) })
		if err != nil {
			t.Fatal(err)
		}
		to := &unix.SockaddrInet4{Port: srvPort, Addr: [4]byte{127, 0, 0, 1}}
		for i := range peers {
			src := [4]byte{127, byte(10 + w), byte(i >> 8), byte(i)}
			if err := unix.Sendmsg(cli, payload[:1+i%13], pktinfo(src), to, 0); err != nil {
				t.Fatalf("wave %d, peer %d: sendmsg: %v", w, i, err)
			}
			if i%5000 == 0 {
				c.poll() // as the receiver would, while the wave runs
			}
			if i%1000 == 999 {
				// Let the server catch up: a sender that outruns loopback's
				// per-CPU backlog (netdev_max_backlog) loses datagrams in the
				// kernel before any socket sees them, which slow CPUs (the
				// emulated kernels of the matrix) do.
				sent := w*peers + i + 1
				waitFor(t, 30*time.Second, func() bool {
					mu.Lock()
					defer mu.Unlock()
					return len(received) == sent
				}, "server received %d peers, want "+fmt.Sprint(sent), func() any { mu.Lock(); defer mu.Unlock(); return len(received) })
			}
		}
		unix.Close(cli)
		waitFor(t, 30*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(received) == (w+1)*peers
		}, "server received %d peers", func() any { mu.Lock(); defer mu.Unlock(); return len(received) })
		// The wave's flows end once idle; the next wave starts after that.
		c.waitClosed((w+1)*peers, idle+60*time.Second, isServerFlow)
	}

	got := 0
	for _, cn := range c.closed {
		if !isServerFlow(cn) {
			continue
		}
		got++
		want := received[cn.Peer]
		if cn.RecvBytes != want || cn.RecvPackets != 1 || cn.SentBytes != 0 || cn.Direction != conns.DirectionIncoming {
			t.Errorf("flow from %v: recv %d bytes in %d datagrams, sent %d, direction %v; the server received %d bytes in 1",
				cn.Peer, cn.RecvBytes, cn.RecvPackets, cn.SentBytes, cn.Direction, want)
		}
	}
	if got != waves*peers {
		t.Errorf("%d server flows reported closed, want %d", got, waves*peers)
	}
	if tel := tr.Telemetry(); tel.ConnMapFull != 0 || tel.Drops() != 0 {
		t.Errorf("telemetry %+v: want no table-full count and no drop", tel)
	}
}

// udpSocket is a UDP socket bound to addr, made on the calling thread (so in
// its network namespace).
func udpSocket(addr netip.AddrPort) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// pktinfo is the control message that sends a datagram from src.
func pktinfo(src [4]byte) []byte {
	b := make([]byte, unix.CmsgSpace(unix.SizeofInet4Pktinfo))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
	(*unix.Inet4Pktinfo)(unsafe.Pointer(&b[unix.CmsgLen(0)])).Spec_dst = src
	return b
}
