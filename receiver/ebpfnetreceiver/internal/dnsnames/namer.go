// SPDX-License-Identifier: Apache-2.0

package dnsnames

import (
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// Namer names the peers of outgoing connections, poll after poll: each
// connection keeps the name it got when first seen, so a long-lived
// connection does not lose its name when the answer's TTL runs out, and does
// not change series when its address is answered for another name later.
// Not safe for concurrent use.
type Namer struct {
	names *Names
	// given: the name (maybe "") of each outgoing connection of the last
	// poll's Active, by ID; cur is being filled, prev read. Rebuilt every
	// poll, so it holds only open connections.
	cur, prev map[conns.ID]string
}

// NewNamer returns a Namer over a map bounded by cfg.
func NewNamer(cfg Config) *Namer {
	return &Namer{names: New(cfg), cur: map[conns.ID]string{}, prev: map[conns.ID]string{}}
}

// Stats returns the map's counts.
func (m *Namer) Stats() Stats { return m.names.Stats() }

// Len is the number of names the map holds.
func (m *Namer) Len() int { return m.names.Len() }

// Apply learns the DNS answers of snap, then sets PeerName on its outgoing
// connections (Active and Closed), and drops the names expired by snap.Time.
// The answers come first: a client resolves before it connects, so a
// connection first seen in this poll finds its name.
func (m *Namer) Apply(snap *conns.Snapshot) {
	for _, r := range snap.DNS {
		m.names.Learn(snap.Time, r)
	}
	m.prev, m.cur = m.cur, m.prev
	clear(m.cur)
	for i := range snap.Active {
		c := &snap.Active[i]
		if c.Direction == conns.DirectionOutgoing {
			c.PeerName = m.name(snap, c)
			m.cur[c.ID()] = c.PeerName
		}
	}
	for i := range snap.Closed {
		c := &snap.Closed[i]
		if c.Direction == conns.DirectionOutgoing {
			c.PeerName = m.name(snap, c)
		}
	}
	m.names.Prune(snap.Time)
}

func (m *Namer) name(snap *conns.Snapshot, c *conns.Conn) string {
	if s, ok := m.prev[c.ID()]; ok {
		return s
	}
	s, _ := m.names.Lookup(snap.Time, c.Netns, c.Peer.Addr())
	return s
}
