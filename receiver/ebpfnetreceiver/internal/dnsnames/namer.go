// SPDX-License-Identifier: Apache-2.0

package dnsnames

import (
	"time"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// Namer names the peers of outgoing connections, poll after poll. It keeps
// no state per connection: whoever keeps connections across polls asks Name
// once, when it first sees one, and keeps the answer (the aggregator does,
// so a long-lived connection keeps its name past the answer's TTL and its
// series never change name mid-connection), which costs one small lookup
// per new connection instead of one per connection and poll. Not safe for
// concurrent use.
type Namer struct {
	names *Names
	now   time.Time // of the last snapshot applied
}

// NewNamer returns a Namer over a map bounded by cfg.
func NewNamer(cfg Config) *Namer { return &Namer{names: New(cfg)} }

// Stats returns the map's counts.
func (m *Namer) Stats() Stats { return m.names.Stats() }

// Len is the number of names the map holds.
func (m *Namer) Len() int { return m.names.Len() }

// Apply learns the DNS answers of snap, drops the names expired by its time,
// and sets PeerName on its closed outgoing connections, which are reported
// once and read by consumers of single connections (the failure logs). The
// answers come first: a client resolves before it connects, so a connection
// first seen in this poll finds its name.
func (m *Namer) Apply(snap *conns.Snapshot) {
	m.now = snap.Time
	for _, r := range snap.DNS {
		m.names.Learn(snap.Time, r)
	}
	m.names.Prune(snap.Time)
	for i := range snap.Closed {
		snap.Closed[i].PeerName = m.Name(&snap.Closed[i])
	}
}

// Name is the name c's namespace resolved c's peer from, as of the last
// snapshot applied; "" for a connection that is not outgoing or a peer
// nobody resolved.
func (m *Namer) Name(c *conns.Conn) string {
	if c.Direction != conns.DirectionOutgoing {
		return ""
	}
	s, _ := m.names.Lookup(m.now, c.Netns, c.Peer.Addr())
	return s
}
