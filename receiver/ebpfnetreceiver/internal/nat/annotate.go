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
	known map[conns.ID]Translation // open connections that have one
	seen  map[conns.ID]bool        // scratch: those of this poll
}

// NewAnnotator returns an Annotator reading t.
func NewAnnotator(t *Table) *Annotator {
	return &Annotator{t: t, known: map[conns.ID]Translation{}, seen: map[conns.ID]bool{}}
}

// Annotate sets NATLocal and NATPeer of the open and the closed
// connections of one poll.
func (a *Annotator) Annotate(active, closed []conns.Conn) {
	clear(a.seen)
	for i := range active {
		if tr, ok := a.translate(&active[i]); ok {
			id := active[i].ID()
			a.known[id], a.seen[id] = tr, true
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

func (a *Annotator) translate(c *conns.Conn) (Translation, bool) {
	tr, ok := a.known[c.ID()]
	if !ok {
		proto := ProtoTCP
		if c.Transport == conns.TransportUDP {
			proto = ProtoUDP
		}
		tr, ok = a.t.Lookup(c.Netns, proto, c.Local, c.Peer)
	}
	c.NATLocal, c.NATPeer = tr.Local, tr.Peer
	return tr, ok
}
