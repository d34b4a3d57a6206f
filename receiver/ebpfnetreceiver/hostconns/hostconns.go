// SPDX-License-Identifier: Apache-2.0

package hostconns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"time"
	"unicode"

	"go.uber.org/zap"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/aggregate"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/dnsnames"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/procinfo"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/tracer"
)

// The tracer's start errors, for errors.Is: the message of the error Open
// returns says what to do (which capabilities to grant, for instance).
var (
	ErrMissingCapability = tracer.ErrMissingCapability
	ErrNoBTF             = tracer.ErrNoBTF
	ErrHookUnavailable   = tracer.ErrHookUnavailable
	ErrUnsupportedOS     = tracer.ErrUnsupportedOS
)

// Options set up Open.
type Options struct {
	// MaxConnections sizes the kernel connection table (0: the receiver's
	// default, 65536).
	MaxConnections uint32
	// NoProtocolClassification leaves the protocol classifiers unloaded:
	// the rows' protocol fields stay empty.
	NoProtocolClassification bool
	// Logger receives the tracer's start-up report (nil: none).
	Logger *zap.Logger
}

// ErrClosed is what Poll returns after Close.
var ErrClosed = errors.New("tracer closed")

// Tracer is the kernel tracer and what names its connections. Poll and
// Close may be called from any goroutine: one poll runs at a time, and Close
// waits for the one in progress (a terminal UI quits while a poll it started
// still runs).
type Tracer struct {
	mu       sync.Mutex // one Poll at a time, none during or after Close
	closed   bool
	src      conns.Source
	resolver *procinfo.Resolver
	// names names peers from DNS answers, as the receiver does (nil without
	// protocol classification, whose programs capture them).
	names    *dnsnames.Namer
	prev     map[conns.ID]counts // of the open connections at the last poll
	prevTime time.Time
}

// counts are the cumulative counters of one connection that rates are made
// of, and the name its peer got when the connection was first seen (kept for
// its life, as the receiver keeps it).
type counts struct {
	sentBytes, recvBytes, sentPackets, recvPackets uint64
	peerName                                       string
}

// Open loads and attaches the tracer. Its errors wrap ErrMissingCapability,
// ErrNoBTF, ErrHookUnavailable or ErrUnsupportedOS when the host cannot run
// it, and say what is missing. Connections are counted from now on: what a
// connection open before moved is not in its counters.
func Open(opts Options) (*Tracer, error) {
	classify := !opts.NoProtocolClassification
	t, err := tracer.New(tracer.Config{
		MaxConnections:    opts.MaxConnections,
		ClassifyProtocols: classify,
		// The DNS responses are captured by the classifier's programs.
		CaptureDNS: classify,
		Logger:     opts.Logger,
	})
	if err != nil {
		return nil, err
	}
	return newTracer(t, classify), nil
}

// newTracer names peers from DNS answers when dns says the source captures
// them, with the receiver's default bounds.
func newTracer(src conns.Source, dns bool) *Tracer {
	t := &Tracer{
		src:      src,
		resolver: procinfo.New(procinfo.Options{}),
		prev:     map[conns.ID]counts{},
		prevTime: time.Now(),
	}
	if dns {
		t.names = dnsnames.NewNamer(dnsnames.Config{MaxEntries: dnsnames.DefaultMaxEntries, Grace: dnsnames.DefaultGrace})
	}
	return t
}

// Close detaches the tracer: nothing of it stays in the kernel. It is
// idempotent.
func (t *Tracer) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	return t.src.Close()
}

// Snapshot is one poll: every connection open now and every one closed since
// the previous poll, and the tracer's counters of what it could not record.
type Snapshot struct {
	Time time.Time
	// Interval is the time since the previous poll (since Open for the
	// first): the rows' rates are over it.
	Interval time.Duration
	Rows     []Row
	// Lost is the sum of the counters that mean data was lost (a table
	// full, a record lost): the rows then miss connections or bytes.
	Lost uint64
	// Counters are all the tracer's counters, cumulative since Open.
	Counters []Counter
}

// Counter is one of the tracer's counters: a drop, or an outcome that is no
// loss (Loss false).
type Counter struct {
	// Name is the name of the receiver's telemetry metric of it without its
	// ebpfnet_tracer_ prefix: connection_table_full, records_lost, ...
	Name  string
	Value uint64
	Loss  bool // counted in Snapshot.Lost
}

// Row is one connection, or one group of connections (Group). Bytes and
// packets are payload (TCP: data segments; UDP: datagrams), counted since
// Open; rates are per second over Snapshot.Interval.
type Row struct {
	PID     uint32 `json:"pid"`
	Process string `json:"process"` // executable name, else the kernel's task name
	// ContainerID and PodUID name the process's container and pod ("" on
	// the host, or when unknown).
	ContainerID string `json:"container_id"`
	PodUID      string `json:"pod_uid"`
	Netns       uint32 `json:"netns"` // inode of the network namespace

	LocalAddress netip.Addr `json:"local_address"`
	LocalPort    uint16     `json:"local_port"`
	PeerAddress  netip.Addr `json:"peer_address"`
	PeerPort     uint16     `json:"peer_port"`
	// PeerName is the name an outgoing connection's peer address was
	// resolved from: a DNS answer its network namespace received (the
	// receiver's server.address, with its bounds), taken when the connection
	// is first seen and kept for its life. "" where nobody resolved it, for
	// incoming connections, and without protocol classification (whose
	// programs capture the answers); never guessed (no reverse lookups).
	PeerName string `json:"peer_name"`
	// ServerPort is the listening side's port (the receiver's server.port).
	ServerPort uint16 `json:"server_port"`

	Direction   string `json:"direction"`    // incoming, outgoing, unknown
	Transport   string `json:"transport"`    // tcp, udp
	NetworkType string `json:"network_type"` // ipv4, ipv6
	// The protocol stack; "" where not classified.
	ProtocolName    string `json:"protocol_name"`
	ProtocolVersion string `json:"protocol_version"`
	RPCSystem       string `json:"rpc_system"`
	TLSVersion      string `json:"tls_version"`

	SentBytes       uint64  `json:"sent_bytes"`
	ReceivedBytes   uint64  `json:"received_bytes"`
	SentPackets     uint64  `json:"sent_packets"`
	ReceivedPackets uint64  `json:"received_packets"`
	SentBytesRate   float64 `json:"sent_bytes_per_second"`
	RecvBytesRate   float64 `json:"received_bytes_per_second"`
	SentPacketsRate float64 `json:"sent_packets_per_second"`
	RecvPacketsRate float64 `json:"received_packets_per_second"`

	// RTT and RTTVar are the kernel's smoothed round-trip time and its
	// variation (TCP; 0 before the first sample and for UDP), in
	// microseconds as `ss -ti` shows them. A group's are the mean of its
	// connections that have one.
	RTTMicros    uint64 `json:"rtt_us"`
	RTTVarMicros uint64 `json:"rtt_var_us"`
	// Retransmits counts TCP segments retransmitted after the handshake,
	// SynRetransmits those of the handshake.
	Retransmits    uint64 `json:"retransmits"`
	SynRetransmits uint64 `json:"syn_retransmits"`

	// Closed: the connection closed since the previous poll; these are its
	// final counters and it is not in the next snapshot. A group is closed
	// when all of its connections are.
	Closed bool `json:"closed"`
	// Connections is 1 for a connection, the number of connections of a
	// group.
	Connections int `json:"connections"`

	key groupKey // what Group groups by
}

// Stack is the protocol stack for display: tls1.3/http2/grpc, "" when none
// of it is known.
func (r *Row) Stack() string {
	var parts []string
	if r.TLSVersion != "" {
		parts = append(parts, "tls"+r.TLSVersion)
	}
	if r.ProtocolName != "" {
		parts = append(parts, r.ProtocolName+r.ProtocolVersion)
	}
	if r.RPCSystem != "" {
		parts = append(parts, r.RPCSystem)
	}
	return strings.Join(parts, "/")
}

// Poll reads the tracer once.
func (t *Tracer) Poll(ctx context.Context) (Snapshot, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return Snapshot{}, ErrClosed
	}
	snap, err := t.src.Poll(ctx)
	if err != nil {
		return Snapshot{}, fmt.Errorf("poll tracer: %w", err)
	}
	if snap.Time.IsZero() {
		snap.Time = time.Now()
	}
	t.resolver.Learn(snap.Cgroups)
	if t.names != nil {
		t.names.Apply(&snap) // names the closed ones
	}
	out := Snapshot{Time: snap.Time, Interval: snap.Time.Sub(t.prevTime)}
	out.Rows = make([]Row, 0, len(snap.Active)+len(snap.Closed))
	resources := map[resourceKey]aggregate.Resource{}
	next := make(map[conns.ID]counts, len(snap.Active))
	add := func(c *conns.Conn, closed bool) {
		rk := resourceKey{c.PID, c.Netns, c.CgroupID}
		res, ok := resources[rk]
		if !ok {
			res = t.resolver.Resolve(c.PID, c.Netns, c.CgroupID)
		}
		// A process gone from /proc is named by the first task name the
		// kernel gave with one of its connections, on all of them, as the
		// receiver names its resource.
		res.NameFromComm(c.Comm)
		resources[rk] = res
		prev, seen := t.prev[c.ID()]
		switch {
		case t.names == nil:
		case seen: // named when first seen, for its life
			c.PeerName = prev.peerName
		case !closed: // a closed one first seen now was named by Apply
			c.PeerName = t.names.Name(c)
		}
		row := rowOf(c, res, closed)
		cur := counts{c.SentBytes, c.RecvBytes, c.SentPackets, c.RecvPackets, c.PeerName}
		row.setRates(prev, cur, out.Interval)
		if !closed {
			next[c.ID()] = cur
		}
		out.Rows = append(out.Rows, row)
	}
	for i := range snap.Active {
		add(&snap.Active[i], false)
	}
	for i := range snap.Closed {
		add(&snap.Closed[i], true)
	}
	t.prev, t.prevTime = next, snap.Time
	t.resolver.Prune(snap.Time)
	tel := t.src.Telemetry()
	out.Lost, out.Counters = tel.Drops(), countersOf(tel)
	return out, nil
}

type resourceKey struct {
	pid, netns uint32
	cgroupID   uint64
}

// groupKey is the receiver's series key: the resource and the attributes.
type groupKey struct {
	pid, netns uint32
	attrs      aggregate.Attrs
}

// groupAttrs are the attributes the receiver's series are keyed on by
// default (metadata.yaml's defaults, which a receiver test pins to
// aggregate.DefaultKey).
var groupAttrs = aggregate.DefaultKey()

func rowOf(c *conns.Conn, res aggregate.Resource, closed bool) Row {
	key := aggregate.KeyOf(c, groupAttrs)
	r := Row{
		PID:             c.PID,
		Process:         res.ExecutableName,
		ContainerID:     res.ContainerID,
		PodUID:          res.PodUID,
		Netns:           c.Netns,
		LocalAddress:    c.Local.Addr().Unmap(),
		LocalPort:       c.Local.Port(),
		PeerAddress:     c.Peer.Addr().Unmap(),
		PeerPort:        c.Peer.Port(),
		PeerName:        c.PeerName,
		ServerPort:      uint16(key.Int(aggregate.AttrServerPort)),
		Direction:       c.Direction.String(),
		Transport:       c.Transport.String(),
		NetworkType:     key.Str(aggregate.AttrNetworkType),
		ProtocolName:    c.Stack.Application.String(),
		ProtocolVersion: c.Stack.Application.Version(),
		RPCSystem:       c.Stack.API.String(),
		TLSVersion:      c.Stack.Encryption.TLSVersion(),
		SentBytes:       c.SentBytes,
		ReceivedBytes:   c.RecvBytes,
		SentPackets:     c.SentPackets,
		ReceivedPackets: c.RecvPackets,
		Closed:          closed,
		Connections:     1,
		key:             groupKey{pid: c.PID, netns: c.Netns, attrs: key},
	}
	if c.Transport == conns.TransportTCP {
		r.RTTMicros = uint64(c.TCP.RTT.Microseconds())
		r.RTTVarMicros = uint64(c.TCP.RTTVar.Microseconds())
		r.Retransmits = uint64(c.TCP.Retransmits)
		r.SynRetransmits = uint64(c.TCP.SynRetransmits)
	}
	return r
}

// setRates sets the rates from what the counters grew by since the previous
// poll (prev is zero for a connection new since then: counted from zero).
func (r *Row) setRates(prev, cur counts, interval time.Duration) {
	if interval <= 0 {
		return
	}
	rate := func(cur, prev uint64) float64 {
		if cur < prev { // the tracer restarted the counter: all of it is new
			prev = 0
		}
		return float64(cur-prev) / interval.Seconds()
	}
	r.SentBytesRate = rate(cur.sentBytes, prev.sentBytes)
	r.RecvBytesRate = rate(cur.recvBytes, prev.recvBytes)
	r.SentPacketsRate = rate(cur.sentPackets, prev.sentPackets)
	r.RecvPacketsRate = rate(cur.recvPackets, prev.recvPackets)
}

// Group sums the rows that the receiver's metrics put in one series: one
// process (pid and network namespace) and the same default attributes
// (direction, transport, network type, local and peer address, server port
// and protocol stack); the ephemeral port is what it leaves out. A group's
// LocalPort is its ServerPort when incoming, its PeerPort when outgoing, the
// other 0. Rows keep the order of their first connection.
func Group(rows []Row) []Row {
	var out []Row
	at := map[groupKey]int{}
	rtts := map[int]int{} // group index -> connections with an RTT sample
	for _, r := range rows {
		i, ok := at[r.key]
		if !ok {
			i = len(out)
			at[r.key] = i
			g := r
			g.LocalPort, g.PeerPort = 0, 0
			switch r.Direction {
			case conns.DirectionIncoming.String():
				g.LocalPort = r.ServerPort
			case conns.DirectionOutgoing.String():
				g.PeerPort = r.ServerPort
			}
			g.SentBytes, g.ReceivedBytes, g.SentPackets, g.ReceivedPackets = 0, 0, 0, 0
			g.SentBytesRate, g.RecvBytesRate, g.SentPacketsRate, g.RecvPacketsRate = 0, 0, 0, 0
			g.RTTMicros, g.RTTVarMicros, g.Retransmits, g.SynRetransmits = 0, 0, 0, 0
			g.Closed, g.Connections = true, 0
			out = append(out, g)
		}
		g := &out[i]
		g.SentBytes += r.SentBytes
		g.ReceivedBytes += r.ReceivedBytes
		g.SentPackets += r.SentPackets
		g.ReceivedPackets += r.ReceivedPackets
		g.SentBytesRate += r.SentBytesRate
		g.RecvBytesRate += r.RecvBytesRate
		g.SentPacketsRate += r.SentPacketsRate
		g.RecvPacketsRate += r.RecvPacketsRate
		g.Retransmits += r.Retransmits
		g.SynRetransmits += r.SynRetransmits
		g.Closed = g.Closed && r.Closed
		g.Connections += r.Connections
		if r.RTTMicros > 0 {
			// Sums until the end, then divided.
			g.RTTMicros += r.RTTMicros
			g.RTTVarMicros += r.RTTVarMicros
			rtts[i]++
		}
	}
	for i, n := range rtts {
		out[i].RTTMicros /= uint64(n)
		out[i].RTTVarMicros /= uint64(n)
	}
	return out
}

// countersOf lists the tracer's counters under the names of the receiver's
// telemetry (the telemetry tag of each conns.Telemetry field). A counter is a
// loss when conns.Telemetry.Drops counts it: that method is the one list of
// them.
func countersOf(tel conns.Telemetry) []Counter {
	v := reflect.ValueOf(tel)
	var out []Counter
	for i := range v.NumField() {
		f := v.Type().Field(i)
		tag := f.Tag.Get("telemetry")
		if tag == "" {
			continue
		}
		var alone conns.Telemetry
		reflect.ValueOf(&alone).Elem().Field(i).SetUint(1)
		out = append(out, Counter{Name: snake(tag), Value: v.Field(i).Uint(), Loss: alone.Drops() > 0})
	}
	return out
}

// snake turns ConnectionTableFull into connection_table_full.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
