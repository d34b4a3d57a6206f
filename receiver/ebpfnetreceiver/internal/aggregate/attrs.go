// SPDX-License-Identifier: Apache-2.0

package aggregate

import (
	"cmp"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// AttrSet is a set of data point attributes a metric keeps; the others are
// aggregated away.
type AttrSet uint16

// The data point attributes, named as in metadata.yaml.
const (
	AttrConnectionDirection AttrSet = 1 << iota // ebpfnet.connection.direction
	AttrErrorType                               // error.type
	AttrIODirection                             // network.io.direction
	AttrLocalAddress                            // network.local.address
	AttrLocalPort                               // network.local.port
	AttrPeerAddress                             // network.peer.address
	AttrPeerPort                                // network.peer.port
	AttrProtocolName                            // network.protocol.name
	AttrTransport                               // network.transport
	AttrNetworkType                             // network.type
	AttrRPCSystem                               // rpc.system
	AttrServerPort                              // server.port
	AttrTLSVersion                              // tls.protocol.version
)

var attrNames = map[string]AttrSet{
	"ebpfnet.connection.direction": AttrConnectionDirection,
	"error.type":                   AttrErrorType,
	"network.io.direction":         AttrIODirection,
	"network.local.address":        AttrLocalAddress,
	"network.local.port":           AttrLocalPort,
	"network.peer.address":         AttrPeerAddress,
	"network.peer.port":            AttrPeerPort,
	"network.protocol.name":        AttrProtocolName,
	"network.transport":            AttrTransport,
	"network.type":                 AttrNetworkType,
	"rpc.system":                   AttrRPCSystem,
	"server.port":                  AttrServerPort,
	"tls.protocol.version":         AttrTLSVersion,
}

// ParseAttrSet returns the set holding the named attributes. It fails on a
// name it does not know.
func ParseAttrSet[S ~string](names []S) (AttrSet, error) {
	var set AttrSet
	for _, n := range names {
		a, ok := attrNames[string(n)]
		if !ok {
			return 0, fmt.Errorf("unknown attribute %q", n)
		}
		set |= a
	}
	return set, nil
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

// Attrs are the data point attributes of one series. Attributes the metric
// does not keep are zero. The struct is comparable and is the map key of a
// series within its resource.
type Attrs struct {
	LocalAddr   netip.Addr
	PeerAddr    netip.Addr
	Stack       conns.ProtocolStack
	LocalPort   uint16
	PeerPort    uint16
	ServerPort  uint16
	Errno       uint16 // error.type, see ErrorType
	Transport   conns.Transport
	Direction   conns.Direction
	IODirection IODirection
	IPv6        bool // network.type
	// Overflow marks the overflow series: all other fields are zero.
	Overflow bool
}

// NetworkType returns the value of network.type.
func (a Attrs) NetworkType() string {
	if a.IPv6 {
		return "ipv6"
	}
	return "ipv4"
}

// ErrorType returns the value of error.type: the symbolic name of the errno
// the connection failed with (Linux numbering, the tracer's source).
func (a Attrs) ErrorType() string { return ErrnoName(a.Errno) }

// ErrnoName names the Linux errno values a TCP connection ends with.
func ErrnoName(errno uint16) string {
	switch errno {
	case 0:
		return ""
	case 32:
		return "EPIPE"
	case 100:
		return "ENETDOWN"
	case 101:
		return "ENETUNREACH"
	case 103:
		return "ECONNABORTED"
	case 104:
		return "ECONNRESET"
	case 110:
		return "ETIMEDOUT"
	case 111:
		return "ECONNREFUSED"
	case 112:
		return "EHOSTDOWN"
	case 113:
		return "EHOSTUNREACH"
	}
	return "errno_" + strconv.Itoa(int(errno))
}

// attrsOf returns every attribute of c; project drops what a metric does not keep.
func attrsOf(c *conns.Conn) Attrs {
	local, peer := c.Local.Addr().Unmap(), c.Peer.Addr().Unmap()
	return Attrs{
		LocalAddr:  local,
		PeerAddr:   peer,
		Stack:      c.Stack,
		LocalPort:  c.Local.Port(),
		PeerPort:   c.Peer.Port(),
		ServerPort: serverPort(c),
		Transport:  c.Transport,
		Direction:  c.Direction,
		// An IPv4-mapped address is IPv4 on the wire.
		IPv6: local.Is6() || peer.Is6(),
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

// project keeps the attributes in set and zeroes the others.
func (a Attrs) project(set AttrSet) Attrs {
	var p Attrs
	if set&AttrConnectionDirection != 0 {
		p.Direction = a.Direction
	}
	if set&AttrErrorType != 0 {
		p.Errno = a.Errno
	}
	if set&AttrIODirection != 0 {
		p.IODirection = a.IODirection
	}
	if set&AttrLocalAddress != 0 {
		p.LocalAddr = a.LocalAddr
	}
	if set&AttrLocalPort != 0 {
		p.LocalPort = a.LocalPort
	}
	if set&AttrPeerAddress != 0 {
		p.PeerAddr = a.PeerAddr
	}
	if set&AttrPeerPort != 0 {
		p.PeerPort = a.PeerPort
	}
	if set&AttrProtocolName != 0 {
		p.Stack.Application = a.Stack.Application
	}
	if set&AttrTransport != 0 {
		p.Transport = a.Transport
	}
	if set&AttrNetworkType != 0 {
		p.IPv6 = a.IPv6
	}
	if set&AttrRPCSystem != 0 {
		p.Stack.API = a.Stack.API
	}
	if set&AttrServerPort != 0 {
		p.ServerPort = a.ServerPort
	}
	if set&AttrTLSVersion != 0 {
		p.Stack.Encryption = a.Stack.Encryption
	}
	return p
}

// compareAttrs orders series so output is deterministic.
func compareAttrs(a, b Attrs) int {
	return cmp.Or(
		cmp.Compare(a.Transport, b.Transport),
		boolCmp(a.IPv6, b.IPv6),
		cmp.Compare(a.Direction, b.Direction),
		a.LocalAddr.Compare(b.LocalAddr),
		a.PeerAddr.Compare(b.PeerAddr),
		cmp.Compare(a.ServerPort, b.ServerPort),
		cmp.Compare(a.LocalPort, b.LocalPort),
		cmp.Compare(a.PeerPort, b.PeerPort),
		cmp.Compare(a.Stack.Application, b.Stack.Application),
		cmp.Compare(a.Stack.API, b.Stack.API),
		cmp.Compare(a.Stack.Encryption, b.Stack.Encryption),
		cmp.Compare(a.IODirection, b.IODirection),
		cmp.Compare(a.Errno, b.Errno),
		boolCmp(a.Overflow, b.Overflow),
	)
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
