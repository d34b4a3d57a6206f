// SPDX-License-Identifier: Apache-2.0

package conns

import (
	"context"
	"net/netip"
	"time"
)

// Transport is the layer-4 protocol of a connection.
type Transport uint8

const (
	TransportTCP Transport = iota + 1
	TransportUDP
)

// String returns the semantic-convention value of network.transport.
func (t Transport) String() string {
	switch t {
	case TransportTCP:
		return "tcp"
	case TransportUDP:
		return "udp"
	}
	return "unknown"
}

// Direction says which end opened the connection, seen from the local socket.
type Direction uint8

const (
	DirectionUnknown Direction = iota
	// DirectionIncoming: the local socket accepted it (TCP) or is bound to a
	// fixed port and was reached by the peer (UDP).
	DirectionIncoming
	// DirectionOutgoing: the local socket connected (TCP) or sent from an
	// ephemeral port (UDP).
	DirectionOutgoing
)

// String returns the value used for ebpfnet.connection.direction.
func (d Direction) String() string {
	switch d {
	case DirectionIncoming:
		return "incoming"
	case DirectionOutgoing:
		return "outgoing"
	}
	return "unknown"
}

// Flags record which side has sent payload so far.
type Flags uint8

const (
	// FlagLocalInit: the local end sent payload.
	FlagLocalInit Flags = 1 << iota
	// FlagRemoteInit: the remote end sent payload that the local end received.
	FlagRemoteInit
	// FlagAssured: payload went both ways.
	FlagAssured = FlagLocalInit | FlagRemoteInit
)

// Key identifies a connection. For TCP it is one socket; for an unconnected
// UDP socket there is one Key per peer the socket exchanged datagrams with.
// Addresses are unmapped: an IPv4 peer of a dual-stack IPv6 socket is IPv4.
type Key struct {
	Local     netip.AddrPort
	Peer      netip.AddrPort
	Netns     uint32 // inode of the network namespace
	PID       uint32 // process (thread group) id
	Transport Transport
}

// IsIPv6 reports whether the connection runs over IPv6 on the wire.
func (k Key) IsIPv6() bool { return k.Local.Addr().Is6() || k.Peer.Addr().Is6() }

// TCPStats holds what the kernel's tcp_sock knew when the connection was last
// observed: at each poll while it is open, at its close. Zero for UDP. The
// values are those `ss -ti` prints for the socket.
type TCPStats struct {
	RTT    time.Duration // smoothed round-trip time (SRTT); 0 before the first sample
	RTTVar time.Duration // RTT variation (RTTVAR of RFC 6298, ss's rtt:srtt/rttvar)
	// Retransmits counts segments retransmitted after the handshake, since
	// the tracer first saw the connection.
	Retransmits uint32
	// SynRetransmits counts the handshake's retransmits: SYNs of a connect,
	// SYN-ACKs of an accept (at most 255). A connect that timed out has
	// retransmitted only SYNs.
	SynRetransmits uint8
	// StateTransitions is a bit set: bit n is set when the socket entered
	// TCP state n (include/net/tcp_states.h numbering).
	StateTransitions uint16
	// FailureReason is the errno the connection ended with (0 when it ended
	// cleanly): ECONNREFUSED, ETIMEDOUT, ECONNRESET, ... Failure names it.
	FailureReason uint16
}

// Conn is one connection with cumulative counters since it was first seen.
type Conn struct {
	Key
	// Cookie is the kernel's socket cookie; with Key it tells two sockets that
	// reused the same tuple apart.
	Cookie uint64
	// Comm is the owner's task name (at most 15 characters) when it made or
	// first used the connection: the process may be gone, and /proc with it,
	// by the time the connection is reported. Empty when the kernel saw the
	// connection only outside the owner's context.
	Comm string
	// CgroupID is the owner's cgroup v2 id (the inode of its cgroup
	// directory) taken with Comm, in the owner's context: it names the
	// container after the process is gone (internal/cgroups resolves it).
	// 0 when the kernel saw the connection only outside the owner's context,
	// or on a host without cgroup v2.
	CgroupID  uint64
	Direction Direction
	Flags     Flags
	Stack     ProtocolStack
	// PeerName is the name the local namespace resolved the peer's address
	// from, through DNS (outgoing connections only; empty when unknown). The
	// tracer leaves it empty; internal/dnsnames fills it in on closed
	// connections, for consumers of single connections, and the aggregator
	// asks it once per connection, when it first sees it.
	PeerName string

	SentBytes   uint64 // payload bytes the local end sent
	RecvBytes   uint64 // payload bytes the local end received
	SentPackets uint64 // TCP: data segments; UDP: datagrams
	RecvPackets uint64

	Start    time.Time // when the tracer first saw the connection
	LastSeen time.Time // last update by the kernel
	// Duration is set for closed connections: close time minus Start.
	Duration time.Duration

	TCP TCPStats

	// NAT is what the kernel's NAT (conntrack) translates the connection's
	// endpoints to on the wire; nil when it does not. Set by the receiver
	// (internal/nat), not the tracer. A pointer: few connections are
	// translated, and every Conn of a million-connection poll pays for it.
	NAT *NAT
}

// NAT is a connection's translated endpoints. A field is the zero AddrPort
// when that end is not translated. For the end that opened the connection
// Peer is where its packets really go (a service's backend after DNAT) and
// Local the source they carry (after SNAT or masquerade); for the end that
// accepted it Peer is the opener before SNAT and Local the address the
// opener dialled.
type NAT struct {
	Local, Peer netip.AddrPort
}

// ID is what stays the same for a connection across polls. A UDP flow that
// ended for idleness and is started again by a later datagram has the same ID:
// it is a new connection once the old one was reported closed.
type ID struct {
	Key
	Cookie uint64
}

// ID returns the identity of c across polls.
func (c *Conn) ID() ID { return ID{Key: c.Key, Cookie: c.Cookie} }

// Snapshot is what one poll returns.
type Snapshot struct {
	// Active holds every connection open at poll time, with its counters so far.
	Active []Conn
	// Closed holds every connection that closed since the previous poll, with
	// its final counters, exactly once. A connection that closed during the
	// poll may be in Closed only; it is never in both.
	Closed []Conn
	// Time is when the poll read the kernel.
	Time time.Time
	// Cgroups are the cgroup2 directories the kernel created since the
	// previous poll: a connection's CgroupID may name one that is gone by
	// now, which no walk of the hierarchy would find.
	Cgroups []CgroupPath
	// DNS holds the DNS responses with answers that local sockets received
	// since the previous poll (with protocol classification on), oldest
	// first per CPU: they name the addresses the connections go to.
	DNS []DNSResponse
}

// DNSResponse is one DNS response a local socket received: the start of the
// message as it came, for the receiver to parse (bad input is expected).
type DNSResponse struct {
	Netns uint32 // inode of the receiving socket's network namespace
	// Size is the length of the whole message; Msg holds its first bytes
	// (at most 512: answers past them are not seen).
	Size int
	Msg  []byte
}

// CgroupPath is one cgroup2 directory: its id (Conn.CgroupID) and its path
// from the hierarchy's root.
type CgroupPath struct {
	ID   uint64
	Path string
}

// Telemetry counts everything the tracer could not record. Each field's
// telemetry tag names the receiver's counter of it (ebpfnet_tracer_<name> in
// metadata.yaml, the generated builder's EbpfnetTracer<name>). Each counter is
// cumulative since Start. A non-zero drop counter means numbers are missing
// somewhere; none of them is ever silent.
type Telemetry struct {
	// ConnMapFull: a connection could not be inserted because the connection
	// table was full; its traffic is not counted.
	ConnMapFull uint64 `telemetry:"ConnectionTableFull"`
	// SockMapFull: a socket could not be tracked because the socket table was
	// full. Counted per attempt: a socket that keeps doing I/O counts again.
	SockMapFull uint64 `telemetry:"SocketTableFull"`
	// RingReserveFailed: a closed connection did not fit in the ring buffer and
	// was left in the connection table for the next poll to collect (not lost).
	RingReserveFailed uint64 `telemetry:"RingReserveFailed"`
	// ClosedLost: a closed connection's final counters were lost (ring buffer
	// full and the table entry could not be kept).
	ClosedLost uint64 `telemetry:"ClosedLost"`
	// MissedPeer: a datagram on an unconnected UDP socket whose peer address
	// was not seen (recv without an address buffer); counted under the
	// unspecified peer.
	MissedPeer uint64 `telemetry:"MissedPeer"`
	// IterationRestarts: times a poll's walk of the kernel tables was upset by
	// changes under it: an entry met twice (reported once) or a walk that
	// stopped early. Not a loss; a high rate means a very busy table.
	IterationRestarts uint64 `telemetry:"IterationRestarts"`
	// LostRecords: ring-buffer records user space could not decode.
	LostRecords uint64 `telemetry:"RecordsLost"`
	// TupleReused: a new UDP socket reused the tuple of an ended one whose
	// entry was still in the table; the old entry was reported closed at once
	// (a loss only when that report was lost, counted in ClosedLost).
	TupleReused uint64 `telemetry:"TupleReused"`
	// ListenMapFull: a TCP listener could not be recorded (listener table
	// full); connections accepted on its port are told incoming by their
	// bound port instead. Not a loss of counts.
	ListenMapFull uint64 `telemetry:"ListenerTableFull"`
	// CookieMapFull: a UDP socket's cookie could not be recorded; the cgroup
	// hook that reports a socket's end cannot name it, so its flows end by
	// the idle timeout instead (delayed, not lost).
	CookieMapFull uint64 `telemetry:"CookieTableFull"`
	// KernelSkipped: events the kernel did not run the tracer's programs for
	// (its per-program recursion guard, hit when a program is interrupted or
	// preempted) and no backup program covered. Not in Drops: TCP counts are
	// the kernel's own and the close of a TCP connection established while
	// the tracer runs comes from sock_ops, so for TCP a skip can only delay
	// who owns a connection; for UDP a skipped send or receive is that call's
	// datagram, uncounted.
	KernelSkipped uint64 `telemetry:"KernelSkipped"`
	// Rescued: events a backup program handled because the kernel skipped the
	// primary. Not a loss; shows how often the guard bites on this host.
	Rescued uint64 `telemetry:"Rescued"`
	// Classified: connections whose protocol stack was decided, some layer
	// known. Unclassified: connections with payload left unknown (no
	// classifier recognised their first bytes, or their streams had started
	// before the tracer did). ClassifyShort: packets a classifier could not
	// decide because they held fewer bytes than it needed (a message split
	// across packets); the connection may still be decided by later bytes.
	// Outcomes, not drops.
	Classified    uint64 `telemetry:"Classified"`
	Unclassified  uint64 `telemetry:"Unclassified"`
	ClassifyShort uint64 `telemetry:"ClassifyShort"`
	// CgroupPathLost: a new cgroup whose path the kernel side could not
	// record (its table full, the path unreadable or longer than it holds).
	// Its connections are named only if the cgroup still exists when the
	// resolver walks the hierarchy.
	CgroupPathLost uint64 `telemetry:"CgroupPathLost"`
	// DNSRingFull: DNS responses the kernel could not hand over (their ring
	// full between two polls); the names they answered are not learnt.
	// DNSNoSocket: DNS responses whose socket's namespace was unknown, not
	// learnt either: where the kernel does not let the capture read the
	// socket (no kernel of the matrix, 5.10 to 7.3) it comes from the socket
	// table, which misses a response that came before its query's send
	// returned, or a full table.
	DNSRingFull uint64 `telemetry:"DNSRingFull"`
	DNSNoSocket uint64 `telemetry:"DNSNoSocket"`
}

// Drops returns the sum of the counters that mean data was lost: a table
// that was full, a record that was lost.
func (t Telemetry) Drops() uint64 {
	return t.ConnMapFull + t.SockMapFull + t.ClosedLost + t.LostRecords
}

// Source is what the receiver needs from a tracer: the kernel tracer
// implements it, tests use a fake.
type Source interface {
	// Poll returns the active connections and those closed since the last poll.
	// The Snapshot's slices are valid until the next Poll, which may reuse
	// them: a consumer copies what it keeps.
	Poll(ctx context.Context) (Snapshot, error)
	// Telemetry returns the drop counters, cumulative since start.
	Telemetry() Telemetry
	// Close detaches every program and frees every map. It is idempotent.
	Close() error
}
