// SPDX-License-Identifier: Apache-2.0

package nat

import (
	"testing"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// TestAnnotatorKeepsTheFirstTranslation: an open connection keeps the
// translation it was first given although its entry changed, so its counts
// stay in one series; a closed one gets it once more and is forgotten; a
// connection without an entry has none.
func TestAnnotatorKeepsTheFirstTranslation(t *testing.T) {
	tb := NewTable(Options{})
	a := NewAnnotator(tb)
	tb.Upsert(7, dnatEntry(snat), 1)
	c := conns.Conn{Key: conns.Key{Local: client, Peer: vip, Netns: 7, Transport: conns.TransportTCP}, Cookie: 1}
	plain := conns.Conn{Key: conns.Key{Local: client, Peer: backend, Netns: 7, Transport: conns.TransportTCP}, Cookie: 2}
	active := []conns.Conn{c, plain}
	a.Annotate(active, nil)
	if n := active[0].NAT; n == nil || *n != (conns.NAT{Local: snat, Peer: backend}) {
		t.Fatalf("first poll: %+v", n)
	}
	if active[1].NAT != nil {
		t.Fatalf("untranslated connection got %+v", *active[1].NAT)
	}
	// The entry is evicted (or replaced): the open connection keeps its own.
	tb.Destroy(7, dnatEntry(snat).Orig, t0)
	tb.Prune(t0.Add(DefaultGrace * 2))
	active = []conns.Conn{c}
	a.Annotate(active, nil)
	if n := active[0].NAT; n == nil || n.Peer != backend {
		t.Fatalf("second poll: %+v", n)
	}
	closed := []conns.Conn{c}
	a.Annotate(nil, closed)
	if n := closed[0].NAT; n == nil || n.Peer != backend {
		t.Fatalf("at close: %+v", n)
	}
	if len(a.known) != 0 {
		t.Fatalf("closed connection still remembered: %v", a.known)
	}
	// A new connection of the same tuple looks the table up again: nothing.
	c.Cookie = 3
	active = []conns.Conn{c}
	a.Annotate(active, nil)
	if active[0].NAT != nil {
		t.Fatalf("a later connection inherited %+v", *active[0].NAT)
	}
}
