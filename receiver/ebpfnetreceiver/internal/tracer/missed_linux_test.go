// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// detach closes the links of every program serving one of the data points,
// as if the kernel skipped each of their events from now on.
func detach(t *testing.T, tr *Tracer, data ...string) {
	t.Helper()
	n := 0
	for i, p := range tr.loader.progs {
		if slices.Contains(data, p.data) {
			if err := tr.loader.links[i].Close(); err != nil {
				t.Fatalf("detach %s: %v", p.name, err)
			}
			tr.loader.links[i] = detached{tr.loader.links[i]} // the tracer's Close must not close it again
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no program serves %v", data)
	}
}

// detached is a link the test closed already: closing it again (some link
// kinds, such as kprobes as perf events, fail a second close) does nothing.
type detached struct{ link.Link }

func (detached) Close() error { return nil }

// TestCountsSurviveMissedEvents: TCP counts come from the kernel's socket
// counters, so events the tracer never sees after a connection is known
// cannot change them. Once both ends are known, the test removes the payload
// programs (every send and receive event from then on is missed) and, in a
// second case, the state and destroy tracepoints as well (the close comes from
// sock_ops alone). Each end must still show exactly the bytes the test moved
// while open, and again when closed.
func TestCountsSurviveMissedEvents(t *testing.T) {
	for _, tc := range []struct {
		name   string
		detach []string
	}{
		{"payload", []string{dataPayload}},
		{"payload, state and destroy", []string{dataPayload, "tcp_state", "tcp_destroy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := startTracer(t, Config{})
			col := newCollector(t, tr)
			cli, srv := dialPair(t, "tcp6", "[::1]:0")
			client := netip.MustParseAddrPort(cli.LocalAddr().String())
			server := netip.MustParseAddrPort(srv.LocalAddr().String())
			move(t, cli, srv, 10) // each end's first I/O names its owner
			move(t, srv, cli, 20)
			ends := func(c conns.Conn) bool {
				return c.PID == pid() && c.Transport == conns.TransportTCP &&
					(c.Local == client && c.Peer == server || c.Local == server && c.Peer == client)
			}
			col.waitActive(5*time.Second, ends)

			detach(t, tr, tc.detach...)
			const toServer, toClient = 123457, 65537
			move(t, cli, srv, toServer)
			move(t, srv, cli, toClient)
			want := map[netip.AddrPort][2]uint64{client: {10 + toServer, 20 + toClient}, server: {20 + toClient, 10 + toServer}}
			col.waitCounts(5*time.Second, ends, want)

			cli.Close()
			srv.Close()
			for _, c := range col.waitClosed(2, 5*time.Second, ends) {
				if w := want[c.Local]; c.SentBytes != w[0] || c.RecvBytes != w[1] {
					t.Errorf("closed %v: sent %d received %d, want %d and %d", c.Local, c.SentBytes, c.RecvBytes, w[0], w[1])
				}
			}
		})
	}
}
