// SPDX-License-Identifier: Apache-2.0

package nat

import (
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// Annotator sets the translated endpoints of a poll's connections from a
// Table. A connection keeps the translation it was first given for its
// life: the aggregator adds each poll's growth to the series of the
// connection's attributes of that poll, so a translation that changed or
// vanished (its entry evicted) would split one connection's counts across
// series. Not safe for concurrent use (one poll at a time).
type Annotator struct {
	t     *Table
	known map[conns.ID]*conns.NAT // open connections that have one
	seen  map[conns.ID]bool       // scratch: those of this poll
}

// NewAnnotator returns an Annotator reading t.
func NewAnnotator(t *Table) *Annotator {
	return &Annotator{t: t, known: map[conns.ID]*conns.NAT{}, seen: map[conns.ID]bool{}}
}

// Annotate sets the NAT of the open and the closed connections of one
// poll. An open connection's is allocated once and shared by its polls.
func (a *Annotator) Annotate(active, closed []conns.Conn) {
	clear(a.seen)
	for i := range active {
		if a.translate(&active[i]) {
			id := active[i].ID()
			a.known[id], a.seen[id] = active[i].NAT, true
		}
	}
	for i := range closed {
		a.translate(&closed[i])
		delete(a.known, closed[i].ID())
	}
	for id := range a.known {
		if !a.seen[id] {
			delete(a.known, id) // gone without a close record
		}
	}
}

// translate sets c.NAT, reporting whether c has one.
func (a *Annotator) translate(c *conns.Conn) bool {
	if n := a.known[c.ID()]; n != nil {
		c.NAT = n
		return true
	}
	c.NAT = nil
	proto := ProtoTCP
	if c.Transport == conns.TransportUDP {
		proto = ProtoUDP
	}
	tr, ok := a.t.Lookup(c.Netns, proto, c.Local, c.Peer)
	if ok {
		c.NAT = &conns.NAT{Local: tr.Local, Peer: tr.Peer}
	}
	return ok
}
