// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// testNetns is a network namespace joined to the host's by a veth pair, with
// addresses from the benchmarking range (198.18.0.0/15) that exist nowhere else.
type testNetns struct {
	name       string
	path       string
	hostAddr   netip.Addr
	insideAddr netip.Addr
}

func newTestNetns(t *testing.T) *testNetns {
	t.Helper()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("the netns test needs iproute2's ip: %v", err)
	}
	n := &testNetns{
		name:       fmt.Sprintf("enet%d", os.Getpid()%100000),
		hostAddr:   netip.MustParseAddr("198.18.0.1"),
		insideAddr: netip.MustParseAddr("198.18.0.2"),
	}
	n.path = "/run/netns/" + n.name
	host, peer := "enh"+n.name[4:], "enp"+n.name[4:]
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", host).Run()
		exec.Command("ip", "netns", "del", n.name).Run()
	})
	run("netns", "add", n.name)
	run("link", "add", host, "type", "veth", "peer", "name", peer)
	run("link", "set", peer, "netns", n.name)
	run("addr", "add", n.hostAddr.String()+"/30", "dev", host)
	run("link", "set", host, "up")
	run("-n", n.name, "addr", "add", n.insideAddr.String()+"/30", "dev", peer)
	run("-n", n.name, "link", "set", peer, "up")
	run("-n", n.name, "link", "set", "lo", "up")
	return n
}

// in runs fn on an OS thread that has joined the namespace: sockets fn makes
// are the namespace's for life.
func (n *testNetns) in(t *testing.T, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	target, err := os.Open(n.path)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatalf("setns: %v", err)
	}
	fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// This thread is in the wrong namespace: do not let it run other goroutines.
		panic(fmt.Sprintf("setns back: %v", err))
	}
}

// listen creates a listener inside the namespace.
func (n *testNetns) listen(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	n.in(t, func() { ln, err = net.Listen(network, addr) })
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestNetns: a connection from the host to a server inside a namespace the
// test creates is reported twice, each end with its own namespace's inode and
// exactly the bytes the test moved each way.
func TestNetns(t *testing.T) {
	col, ns := tracedNetns(t)
	ln, server := ns.server(t)
	const send, recv = 12345, 678 // bytes the client sends and receives
	srvErr := serveOne(ln, func(c net.Conn) error {
		if n, err := io.ReadFull(c, make([]byte, send)); err != nil {
			return fmt.Errorf("server read %d of %d bytes: %w", n, send, err)
		}
		return nil
	}, recv)
	cli, err := net.DialTimeout("tcp4", server.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	client := netip.MustParseAddrPort(cli.LocalAddr().String())
	if _, err := cli.Write(make([]byte, send)); err != nil {
		t.Fatal(err)
	}
	if n, err := io.ReadFull(cli, make([]byte, recv)); err != nil {
		t.Fatalf("client read %d of %d bytes: %v", n, recv, err)
	}
	if err := <-srvErr; err != nil {
		t.Fatal(err)
	}
	cli.Close()

	hostNS, innerNS := selfNetns(t), netnsInode(t, ns.path)
	if hostNS == innerNS {
		t.Fatal("test namespace has the host's inode")
	}
	ends := col.waitClosed(2, 5*time.Second, func(c conns.Conn) bool {
		return c.Transport == conns.TransportTCP && (c.Local == client && c.Peer == server || c.Local == server && c.Peer == client)
	})
	for _, c := range ends {
		wantNS, wantDir, wantSent, wantRecv := hostNS, conns.DirectionOutgoing, uint64(send), uint64(recv)
		if c.Local == server {
			wantNS, wantDir, wantSent, wantRecv = innerNS, conns.DirectionIncoming, recv, send
		}
		if c.Netns != wantNS || c.Direction != wantDir || c.SentBytes != wantSent || c.RecvBytes != wantRecv || c.PID != pid() {
			t.Errorf("%v->%v: netns=%d dir=%v sent=%d received=%d pid=%d, want netns=%d dir=%v sent=%d received=%d pid=%d",
				c.Local, c.Peer, c.Netns, c.Direction, c.SentBytes, c.RecvBytes, c.PID, wantNS, wantDir, wantSent, wantRecv, pid())
		}
	}
}
