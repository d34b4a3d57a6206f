// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// clock converts the kernel's CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns)
// to wall time, with one offset read per poll.
type clock struct {
	wall time.Time
	mono uint64 // CLOCK_MONOTONIC at wall, ns
}

func now() clock {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return clock{wall: time.Now(), mono: uint64(ts.Nano())}
}

func (c clock) time(mono uint64) time.Time {
	if mono == 0 {
		return time.Time{}
	}
	return c.wall.Add(-time.Duration(int64(c.mono - mono)))
}

// addr rebuilds an address from the two native-order halves the BPF side
// stored it in; IPv4 comes back unmapped.
func addr(h, l uint64) netip.Addr {
	var b [16]byte
	binary.NativeEndian.PutUint64(b[:8], h)
	binary.NativeEndian.PutUint64(b[8:], l)
	return netip.AddrFrom16(b).Unmap()
}

func keyFromBPF(t *netflowConnTuple) conns.Key {
	k := conns.Key{
		Local:     netip.AddrPortFrom(addr(t.SaddrH, t.SaddrL), t.Sport),
		Peer:      netip.AddrPortFrom(addr(t.DaddrH, t.DaddrL), t.Dport),
		Netns:     t.Netns,
		PID:       t.Pid,
		Transport: conns.TransportUDP,
	}
	if t.Metadata&uint32(netflowConnMetadataCONN_TCP) != 0 {
		k.Transport = conns.TransportTCP
	}
	return k
}

// connFromBPF turns a table entry or ring record into the domain type.
func connFromBPF(t *netflowConnTuple, v *netflowConnValue, c clock) conns.Conn {
	s := &v.Stats
	conn := conns.Conn{
		Key:         keyFromBPF(t),
		Cookie:      s.Cookie,
		Comm:        cString(s.Comm[:]),
		Direction:   conns.Direction(s.Direction),
		Flags:       conns.Flags(s.Flags) & conns.FlagAssured,
		SentBytes:   s.SentBytes,
		RecvBytes:   s.RecvBytes,
		SentPackets: s.SentPackets,
		RecvPackets: s.RecvPackets,
		Start:       c.time(s.Start),
		LastSeen:    c.time(s.Timestamp),
		Duration:    time.Duration(s.Duration),
		Stack: conns.ProtocolStack{
			API:         conns.API(s.ProtocolStack.Api),
			Application: conns.Application(s.ProtocolStack.Application),
			Encryption:  conns.Encryption(s.ProtocolStack.Encryption),
		},
	}
	if conn.Transport == conns.TransportTCP {
		conn.TCP = conns.TCPStats{
			RTT:              time.Duration(v.Tcp.Rtt) * time.Microsecond,
			RTTVar:           time.Duration(v.Tcp.RttVar) * time.Microsecond,
			Retransmits:      v.Tcp.Retransmits,
			StateTransitions: v.Tcp.StateTransitions,
			FailureReason:    v.Tcp.FailureReason,
		}
	}
	return conn
}

// cString is a NUL-terminated C string of a fixed-size array.
func cString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

const recordSize = int(unsafe.Sizeof(netflowConnRecord{}))

// decodeRecord copies a raw ring-buffer sample into a record. The layout is
// the C struct's (pinned by a test), so a size check is all it needs.
func decodeRecord(raw []byte, rec *netflowConnRecord) error {
	if len(raw) < recordSize {
		return fmt.Errorf("ring record of %d bytes, want %d", len(raw), recordSize)
	}
	*rec = *(*netflowConnRecord)(unsafe.Pointer(&raw[0]))
	return nil
}
