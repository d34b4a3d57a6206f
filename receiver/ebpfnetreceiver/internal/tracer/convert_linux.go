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
		CgroupID:    s.CgroupId,
		Direction:   conns.Direction(s.Direction),
		Flags:       conns.Flags(s.Flags) & conns.FlagAssured,
		SentBytes:   s.SentBytes,
		RecvBytes:   s.RecvBytes,
		SentPackets: s.SentPackets,
		RecvPackets: s.RecvPackets,
		Start:       c.time(s.Start),
		LastSeen:    c.time(s.Timestamp),
		Duration:    time.Duration(s.Duration),
		Stack:       stackFromBPF(s.ProtocolStack),
	}
	if conn.Transport == conns.TransportTCP {
		conn.TCP = conns.TCPStats{
			RTT:              time.Duration(v.Tcp.Rtt) * time.Microsecond,
			RTTVar:           time.Duration(v.Tcp.RttVar) * time.Microsecond,
			Retransmits:      v.Tcp.Retransmits,
			SynRetransmits:   v.Tcp.SynRetransmits,
			StateTransitions: v.Tcp.StateTransitions,
			FailureReason:    uint16(v.Tcp.FailureReason),
		}
	}
	return conn
}

// The kernel's codes of each layer (bpf/common/types.h) and the domain's
// values; a code the tables do not know reads as unknown.
var (
	apiOf = [...]conns.API{
		netflowProtoApiAPI_GRPC: conns.APIGRPC,
	}
	appOf = [...]conns.Application{
		netflowProtoApplicationAPP_HTTP:     conns.AppHTTP,
		netflowProtoApplicationAPP_HTTP10:   conns.AppHTTP10,
		netflowProtoApplicationAPP_HTTP11:   conns.AppHTTP11,
		netflowProtoApplicationAPP_HTTP2:    conns.AppHTTP2,
		netflowProtoApplicationAPP_KAFKA:    conns.AppKafka,
		netflowProtoApplicationAPP_AMQP:     conns.AppAMQP,
		netflowProtoApplicationAPP_REDIS:    conns.AppRedis,
		netflowProtoApplicationAPP_POSTGRES: conns.AppPostgres,
		netflowProtoApplicationAPP_MYSQL:    conns.AppMySQL,
		netflowProtoApplicationAPP_MONGO:    conns.AppMongo,
		netflowProtoApplicationAPP_DNS:      conns.AppDNS,
	}
	encryptionOf = [...]conns.Encryption{
		netflowProtoEncryptionENC_TLS10: conns.EncryptionTLS10,
		netflowProtoEncryptionENC_TLS11: conns.EncryptionTLS11,
		netflowProtoEncryptionENC_TLS12: conns.EncryptionTLS12,
		netflowProtoEncryptionENC_TLS13: conns.EncryptionTLS13,
	}
)

// stackFromBPF decodes a connection's protocol stack.
func stackFromBPF(p netflowProtocolStack) conns.ProtocolStack {
	var st conns.ProtocolStack
	if int(p.Api) < len(apiOf) {
		st.API = apiOf[p.Api]
	}
	if int(p.Application) < len(appOf) {
		st.Application = appOf[p.Application]
	}
	if int(p.Encryption) < len(encryptionOf) {
		st.Encryption = encryptionOf[p.Encryption]
	}
	return st
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
