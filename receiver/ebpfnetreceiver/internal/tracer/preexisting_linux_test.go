// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// TestConnectionOpenBeforeStart: a connection that carried traffic before the
// tracer started is counted from the tracer's first poll on: whatever the
// first poll shows of it is zero, and afterwards each end shows exactly the
// bytes the test moved since, not the connection's lifetime.
func TestConnectionOpenBeforeStart(t *testing.T) {
	cli, srv := dialPair(t, "tcp4", "127.0.0.1:0")
	server := netip.MustParseAddrPort(srv.LocalAddr().String())
	client := netip.MustParseAddrPort(cli.LocalAddr().String())
	// Before the tracer: 5000 bytes one way, 4000 the other.
	move(t, cli, srv, 5000)
	move(t, srv, cli, 4000)

	tr := startTracer(t, Config{})
	col := newCollector(t, tr)
	col.poll()
	ends := map[netip.AddrPort]bool{client: true, server: true}
	mine := func(c conns.Conn) bool {
		return c.PID == pid() && c.Transport == conns.TransportTCP && ends[c.Local] && ends[c.Peer]
	}
	for _, a := range col.active {
		if mine(a) && (a.SentBytes != 0 || a.RecvBytes != 0) {
			t.Errorf("first poll shows %v with %d sent, %d received: want the counts from now on, zero", a.Local, a.SentBytes, a.RecvBytes)
		}
	}

	const toServer, toClient = 777, 333
	move(t, cli, srv, toServer)
	move(t, srv, cli, toClient)
	want := map[netip.AddrPort][2]uint64{client: {toServer, toClient}, server: {toClient, toServer}}
	col.waitCounts(10*time.Second, mine, want)
}

// move writes n bytes on from and reads all of them on to.
func move(t *testing.T, from, to net.Conn, n int) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { _, err := from.Write(make([]byte, n)); errc <- err }()
	if _, err := io.ReadFull(to, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
