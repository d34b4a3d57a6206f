// SPDX-License-Identifier: Apache-2.0

package aggregate

import (
	"cmp"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// AttrSet is a set of data point attributes a metric keeps; the others are
// aggregated away. Each bit is one entry of the attributes table.
type AttrSet uint32

// The data point attributes. Everything else about each one (its key, how it
// is read from a connection, how it is written) is its entry in attributes.
const (
	AttrConnectionDirection AttrSet = 1 << iota
	AttrErrorType
	AttrIODirection
	AttrLocalAddress
	AttrLocalPort
	AttrPeerAddress
	AttrPeerPort
	AttrProtocolName
	AttrProtocolVersion
	AttrTransport
	AttrNetworkType
	AttrRPCSystem
	AttrServerPort
	AttrTLSVersion
	AttrNATPeerAddress
	AttrNATLocalAddress
	AttrNATServerPort
	AttrServerAddress
	numAttrs = iota
)

// kind is how an attribute's value is stored and written.
type kind uint8

const (
	kindStr  kind = iota // a small code, written as the string name() gives
	kindInt              // an integer (ports), written as an int
	kindAddr             // an IP address, stored in Attrs.addrs[slot]
	kindName             // a name from outside (DNS), stored in Attrs.name: the one attribute of this kind
)

// attribute is one data point attribute, declared once: adding an attribute
// is one entry here (plus its AttrSet bit) and its entry in metadata.yaml.
type attribute struct {
	set AttrSet
	key string // as metadata.yaml names it
	kind
	slot uint8 // kindAddr: index in Attrs.addrs
	bit  uint8 // index of set's bit, in Attrs.vals (set by init)
	// inDefaultKey: the histograms keep it unless configured otherwise (the
	// sums' defaults are metadata.yaml's; a test pins that they agree).
	inDefaultKey bool
	// perConnection: a fact of the connection, so every metric, histograms
	// included, may keep it. The others split a measurement (which direction
	// the bytes went, why it failed) and only the metrics that declare them
	// in metadata.yaml have them.
	perConnection bool
	// optional: written only when known (conditionally required).
	optional bool
	// read takes the value from a connection; nil for what the aggregator
	// sets itself (network.io.direction).
	read func(c *conns.Conn) uint16
	addr func(c *conns.Conn) netip.Addr // kindAddr
	text func(c *conns.Conn) string     // kindName
	name func(v uint16) string          // kindStr
}

// attributes is the attribute table, in the order series are sorted by.
var attributes = [numAttrs]attribute{
	{set: AttrTransport, key: "network.transport", kind: kindStr, inDefaultKey: true, perConnection: true,
		read: func(c *conns.Conn) uint16 { return uint16(c.Transport) },
		name: func(v uint16) string { return conns.Transport(v).String() }},
	{set: AttrNetworkType, key: "network.type", kind: kindStr, inDefaultKey: true, perConnection: true,
		// An IPv4-mapped address is IPv4 on the wire.
		read: func(c *conns.Conn) uint16 { return b2u(c.Local.Addr().Unmap().Is6() || c.Peer.Addr().Unmap().Is6()) },
		name: func(v uint16) string { return [2]string{"ipv4", "ipv6"}[v&1] }},
	{set: AttrConnectionDirection, key: "ebpfnet.connection.direction", kind: kindStr, inDefaultKey: true, perConnection: true,
		read: func(c *conns.Conn) uint16 { return uint16(c.Direction) },
		name: func(v uint16) string { return conns.Direction(v).String() }},
	{set: AttrLocalAddress, key: "network.local.address", kind: kindAddr, slot: 0, inDefaultKey: true, perConnection: true,
		addr: func(c *conns.Conn) netip.Addr { return c.Local.Addr().Unmap() }},
	{set: AttrPeerAddress, key: "network.peer.address", kind: kindAddr, slot: 1, inDefaultKey: true, perConnection: true,
		addr: func(c *conns.Conn) netip.Addr { return c.Peer.Addr().Unmap() }},
	{set: AttrServerPort, key: "server.port", kind: kindInt, inDefaultKey: true, perConnection: true,
		read: serverPort},
	// The peer's name (internal/dnsnames): one per peer address in practice,
	// so keeping it beside network.peer.address adds next to no series.
	{set: AttrServerAddress, key: "server.address", kind: kindName, inDefaultKey: true, perConnection: true, optional: true,
		text: func(c *conns.Conn) string { return c.PeerName }},
	{set: AttrLocalPort, key: "network.local.port", kind: kindInt, perConnection: true,
		read: func(c *conns.Conn) uint16 { return c.Local.Port() }},
	{set: AttrPeerPort, key: "network.peer.port", kind: kindInt, perConnection: true,
		read: func(c *conns.Conn) uint16 { return c.Peer.Port() }},
	{set: AttrProtocolName, key: "network.protocol.name", kind: kindStr, inDefaultKey: true, perConnection: true, optional: true,
		read: func(c *conns.Conn) uint16 { return uint16(c.Stack.Application) },
		name: func(v uint16) string { return conns.Application(v).String() }},
	{set: AttrProtocolVersion, key: "network.protocol.version", kind: kindStr, inDefaultKey: true, perConnection: true, optional: true,
		read: func(c *conns.Conn) uint16 { return uint16(c.Stack.Application) },
		name: func(v uint16) string { return conns.Application(v).Version() }},
	{set: AttrRPCSystem, key: "rpc.system", kind: kindStr, inDefaultKey: true, perConnection: true, optional: true,
		read: func(c *conns.Conn) uint16 { return uint16(c.Stack.API) },
		name: func(v uint16) string { return conns.API(v).String() }},
	{set: AttrTLSVersion, key: "tls.protocol.version", kind: kindStr, inDefaultKey: true, perConnection: true, optional: true,
		read: func(c *conns.Conn) uint16 { return uint16(c.Stack.Encryption) },
		name: func(v uint16) string { return conns.Encryption(v).TLSVersion() }},
	// The NAT translation (internal/nat): written only for translated
	// connections, so optional; the ephemeral ports of either end are left
	// out as network.local.port and network.peer.port are by default.
	{set: AttrNATPeerAddress, key: "ebpfnet.nat.peer.address", kind: kindAddr, slot: 2, inDefaultKey: true, perConnection: true, optional: true,
		addr: func(c *conns.Conn) netip.Addr { return natOf(c).Peer.Addr().Unmap() }},
	{set: AttrNATLocalAddress, key: "ebpfnet.nat.local.address", kind: kindAddr, slot: 3, inDefaultKey: true, perConnection: true, optional: true,
		addr: func(c *conns.Conn) netip.Addr { return natOf(c).Local.Addr().Unmap() }},
	{set: AttrNATServerPort, key: "ebpfnet.nat.server.port", kind: kindInt, inDefaultKey: true, perConnection: true, optional: true,
		read: natServerPort},
	{set: AttrIODirection, key: "network.io.direction", kind: kindStr, optional: true,
		name: func(v uint16) string { return IODirection(v).String() }},
	{set: AttrErrorType, key: "error.type", kind: kindStr, optional: true,
		read: func(c *conns.Conn) uint16 { return uint16(c.TCP.Failure()) },
		name: func(v uint16) string { return conns.Failure(v).String() }},
}

// numAddrs is the number of kindAddr attributes (Attrs.addrs).
const numAddrs = 4

// Lookups derived from the table once.
var (
	attrIndex  = map[string]int{} // key -> index in attributes
	bitToEntry [numAttrs]*attribute
	addrSlot   [numAttrs]int8 // bit -> index in Attrs.addrs, or -1
)

func init() {
	for i := range attributes {
		at := &attributes[i]
		b := bits.TrailingZeros32(uint32(at.set))
		if bits.OnesCount32(uint32(at.set)) != 1 || bitToEntry[b] != nil {
			panic(fmt.Sprintf("attribute %s: bad or repeated AttrSet bit", at.key))
		}
		at.bit = uint8(b)
		bitToEntry[b] = at
		attrIndex[at.key] = i
		addrSlot[b] = -1
		if at.kind == kindAddr {
			addrSlot[b] = int8(at.slot)
		}
	}
}

func b2u(b bool) uint16 {
	if b {
		return 1
	}
	return 0
}

// ParseAttrSet returns the set holding the named attributes. It fails on a
// name it does not know.
func ParseAttrSet[S ~string](names []S) (AttrSet, error) {
	var set AttrSet
	for _, n := range names {
		i, ok := attrIndex[string(n)]
		if !ok {
			return 0, fmt.Errorf("unknown attribute %q", n)
		}
		set |= attributes[i].set
	}
	return set, nil
}

// PerConnection is the set of the attributes every metric may keep; the
// others only the metrics that declare them.
func PerConnection() AttrSet { return setOf(func(at *attribute) bool { return at.perConnection }) }

// DefaultKey is the set of attributes the histograms keep by default.
func DefaultKey() AttrSet { return setOf(func(at *attribute) bool { return at.inDefaultKey }) }

func setOf(keep func(*attribute) bool) AttrSet {
	var set AttrSet
	for i := range attributes {
		if keep(&attributes[i]) {
			set |= attributes[i].set
		}
	}
	return set
}

// Keys returns the keys of the attributes in set, sorted.
func Keys(set AttrSet) []string {
	var out []string
	for i := range attributes {
		if set&attributes[i].set != 0 {
			out = append(out, attributes[i].key)
		}
	}
	slices.Sort(out)
	return out
}

// IODirection is the value of network.io.direction.
type IODirection uint8

const (
	IONone IODirection = iota
	IOTransmit
	IOReceive
)

// String returns the semantic-convention value.
func (d IODirection) String() string {
	switch d {
	case IOTransmit:
		return "transmit"
	case IOReceive:
		return "receive"
	}
	return ""
}

// Attrs are the data point attributes of one series, stored by attribute:
// attributes the metric does not keep are zero. The struct is comparable and
// is the map key of a series within its resource.
type Attrs struct {
	addrs [numAddrs]netip.Addr
	// vals by AttrSet bit. For an address it is zero, or the group the
	// address fell in (Config.PeerGroups, an index of groupNames): the
	// attribute is then written as the group's name and addrs[slot] is
	// zero. Keeping the group in vals keeps Attrs, a map key hashed for
	// every series update, as small as without groups.
	vals [numAttrs]uint16
	// name is server.address. A string rather than an interned code like
	// the peer groups': the names come and go with DNS answers, and a
	// table of codes would need an eviction of its own; the string shares
	// its bytes with the name map and hashes in a few ns.
	name string
	// Overflow marks the overflow series: all other fields are zero.
	Overflow bool
}

// AttrsOf returns every attribute of c that c itself says, for what writes a
// single connection (the failure logs) with the metrics' keys and values.
func AttrsOf(c *conns.Conn) Attrs { return attrsOf(c) }

// attrsOf returns every attribute of c that c itself says; project drops what
// a metric does not keep.
func attrsOf(c *conns.Conn) Attrs {
	var a Attrs
	for i := range attributes {
		at := &attributes[i]
		switch {
		case at.addr != nil:
			a.addrs[at.slot] = at.addr(c)
		case at.text != nil:
			a.name = at.text(c)
		case at.read != nil:
			a.vals[at.bit] = at.read(c)
		}
	}
	return a
}

// with returns a with the single attribute at set to v.
func (a Attrs) with(at AttrSet, v uint16) Attrs {
	a.vals[bits.TrailingZeros32(uint32(at))] = v
	return a
}

// project keeps the attributes in set and zeroes the others.
func (a Attrs) project(set AttrSet) Attrs {
	var p Attrs
	for s := uint32(set); s != 0; s &= s - 1 {
		b := bits.TrailingZeros32(s)
		p.vals[b] = a.vals[b]
		if slot := addrSlot[b]; slot >= 0 {
			p.addrs[slot] = a.addrs[slot]
		}
	}
	if set&AttrServerAddress != 0 {
		p.name = a.name
	}
	return p
}

// Str returns the value of the string or address attribute at as written
// ("" for an unknown address or an unset optional attribute).
func (a Attrs) Str(at AttrSet) string {
	e := bitToEntry[bits.TrailingZeros32(uint32(at))]
	switch e.kind {
	case kindAddr:
		return a.addrString(e)
	case kindName:
		return a.name
	}
	return e.name(a.vals[e.bit])
}

// Int returns the value of the integer attribute at.
func (a Attrs) Int(at AttrSet) int64 { return int64(a.vals[bits.TrailingZeros32(uint32(at))]) }

// Value is one attribute as written on a data point: Str, or Int when IsInt.
type Value struct {
	Key   string
	Str   string
	Int   int64
	IsInt bool
}

// Values calls fn for each attribute of set that a has, in table order;
// optional attributes are left out while unknown.
func (a Attrs) Values(set AttrSet, fn func(Value)) {
	for i := range attributes {
		at := &attributes[i]
		if set&at.set == 0 {
			continue
		}
		v := Value{Key: at.key}
		switch at.kind {
		case kindInt:
			v.Int, v.IsInt = int64(a.vals[at.bit]), true
		case kindAddr:
			v.Str = a.addrString(at)
		case kindName:
			v.Str = a.name
		default:
			v.Str = at.name(a.vals[at.bit])
		}
		if at.optional && (v.IsInt && v.Int == 0 || !v.IsInt && v.Str == "") {
			continue
		}
		fn(v)
	}
}

// addrString is the address attribute at as written: its group's name, its
// address, or "" when unknown.
func (a Attrs) addrString(at *attribute) string {
	if g := a.vals[at.bit]; g != 0 {
		return groupName(g)
	}
	if !a.addrs[at.slot].IsValid() {
		return ""
	}
	return a.addrs[at.slot].String()
}

// groupPeer replaces the peer address with its group, if m gives it one.
func (a *Attrs) groupPeer(m *peerMatcher) {
	b := bits.TrailingZeros32(uint32(AttrPeerAddress))
	slot := addrSlot[b]
	if g, ok := m.lookup(a.addrs[slot]); ok {
		a.addrs[slot], a.vals[b] = netip.Addr{}, g
	}
}

// serverPort is the port of the listening side: the local port of an
// incoming connection, the peer port of an outgoing one. When the direction is
// unknown the lower non-zero port is the better guess: ephemeral ports are
// allocated from the top of the range.
func serverPort(c *conns.Conn) uint16 {
	lp, pp := c.Local.Port(), c.Peer.Port()
	switch c.Direction {
	case conns.DirectionIncoming:
		return lp
	case conns.DirectionOutgoing:
		return pp
	}
	switch {
	case lp == 0:
		return pp
	case pp == 0:
		return lp
	}
	return min(lp, pp)
}

// natServerPort is the translated port of the listening side: the
// translated peer's of an outgoing connection (the backend's port after
// DNAT), the translated local one of an incoming connection (the port the
// client dialled); 0 when that side is not translated. An unknown direction
// takes the side serverPort took.
func natServerPort(c *conns.Conn) uint16 {
	if c.NAT == nil {
		return 0
	}
	out := c.Direction == conns.DirectionOutgoing
	if c.Direction == conns.DirectionUnknown {
		out = serverPort(c) == c.Peer.Port()
	}
	if out {
		return natOf(c).Peer.Port()
	}
	return natOf(c).Local.Port()
}

// natOf is c's translation; the zero one when there is none.
func natOf(c *conns.Conn) conns.NAT {
	if c.NAT == nil {
		return conns.NAT{}
	}
	return *c.NAT
}

// compareAttrs orders series, in table order, so output is deterministic.
func compareAttrs(a, b Attrs) int {
	for i := range attributes {
		at := &attributes[i]
		var c int
		switch at.kind {
		case kindAddr:
			c = a.addrs[at.slot].Compare(b.addrs[at.slot])
			if c == 0 && a.vals[at.bit] != b.vals[at.bit] {
				c = cmp.Compare(groupName(a.vals[at.bit]), groupName(b.vals[at.bit]))
			}
		case kindName:
			c = cmp.Compare(a.name, b.name)
		default:
			c = cmp.Compare(a.vals[at.bit], b.vals[at.bit])
		}
		if c != 0 {
			return c
		}
	}
	return boolCmp(a.Overflow, b.Overflow)
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}
