// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/caps"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// These tests need no kernel: they cover the Go side of the ABI.

// TestABISizes pins the generated struct sizes to the C layout (explicit
// padding on both sides); a change to bpf/common/types.h must show up here.
func TestABISizes(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"conn_tuple", unsafe.Sizeof(netflowConnTuple{}), 48},
		{"conn_stats", unsafe.Sizeof(netflowConnStats{}), 104},
		{"tcp_stats", unsafe.Sizeof(netflowTcpStats{}), 16},
		{"conn_value", unsafe.Sizeof(netflowConnValue{}), 120},
		{"conn_record", unsafe.Sizeof(netflowConnRecord{}), 176},
		{"sock_info", unsafe.Sizeof(netflowSockInfo{}), 136},
		{"port_binding", unsafe.Sizeof(netflowPortBinding{}), 8},
		{"udp_peer", unsafe.Sizeof(netflowUdpPeer{}), 24},
		{"protocol_stack", unsafe.Sizeof(netflowProtocolStack{}), 4},
		{"classify_state", unsafe.Sizeof(netflowClassifyState{}), 8},
		{"dns_record", unsafe.Sizeof(netflowDnsRecord{}), 520},
		{"dns_record head (DNS_RECORD_HEAD)", uintptr(dnsRecordHead), 8},
	} {
		if c.got != c.want {
			t.Errorf("sizeof(%s) = %d, want %d", c.name, c.got, c.want)
		}
	}
	spec, err := loadNetflow()
	if err != nil {
		t.Fatal(err)
	}
	if k, v := spec.Maps["conns"].KeySize, spec.Maps["conns"].ValueSize; k != uint32(unsafe.Sizeof(netflowConnTuple{})) || v != uint32(unsafe.Sizeof(netflowConnValue{})) {
		t.Errorf("conns map key/value %d/%d bytes, Go types %d/%d", k, v, unsafe.Sizeof(netflowConnTuple{}), unsafe.Sizeof(netflowConnValue{}))
	}
}

// halves splits an address the way the BPF side stores it.
func halves(a netip.Addr) (h, l uint64) {
	b := a.As16()
	return *(*uint64)(unsafe.Pointer(&b[0])), *(*uint64)(unsafe.Pointer(&b[8]))
}

func TestConnFromBPF(t *testing.T) {
	sh, sl := halves(netip.MustParseAddr("::ffff:10.1.2.3"))
	dh, dl := halves(netip.MustParseAddr("2001:db8::7"))
	tuple := netflowConnTuple{SaddrH: sh, SaddrL: sl, DaddrH: dh, DaddrL: dl, Sport: 40000, Dport: 443, Netns: 4026531840, Pid: 42,
		Metadata: uint32(netflowConnMetadataCONN_TCP | netflowConnMetadataCONN_V6)}
	var v netflowConnValue
	v.Stats = netflowConnStats{SentBytes: 10, RecvBytes: 20, SentPackets: 1, RecvPackets: 2, Start: 1_000_000_000, Timestamp: 3_000_000_000,
		Duration: 2_000_000_000, Cookie: 77, Flags: uint8(netflowConnFlagsCONN_ASSURED | netflowConnFlagsCONN_CLOSED), Direction: 2}
	v.Stats.ProtocolStack.Application = uint8(conns.AppHTTP)
	for i, c := range "curl" {
		v.Stats.Comm[i] = int8(c)
	}
	v.Tcp = netflowTcpStats{Rtt: 150, RttVar: 30, Retransmits: 4, SynRetransmits: 3, StateTransitions: 1 << 1, FailureReason: 104}
	wall := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	c := connFromBPF(&tuple, &v, clock{wall: wall, mono: 10_000_000_000})

	want := conns.Conn{
		Key: conns.Key{Local: netip.MustParseAddrPort("10.1.2.3:40000"), Peer: netip.MustParseAddrPort("[2001:db8::7]:443"),
			Netns: 4026531840, PID: 42, Transport: conns.TransportTCP},
		Cookie: 77, Comm: "curl", Direction: conns.DirectionOutgoing, Flags: conns.FlagAssured,
		SentBytes: 10, RecvBytes: 20, SentPackets: 1, RecvPackets: 2,
		Start: wall.Add(-9 * time.Second), LastSeen: wall.Add(-7 * time.Second), Duration: 2 * time.Second,
		Stack: conns.ProtocolStack{Application: conns.AppHTTP},
		TCP:   conns.TCPStats{RTT: 150 * time.Microsecond, RTTVar: 30 * time.Microsecond, Retransmits: 4, SynRetransmits: 3, StateTransitions: 2, FailureReason: 104},
	}
	if c != want {
		t.Errorf("connFromBPF:\n got %+v\nwant %+v", c, want)
	}

	tuple.Metadata = uint32(netflowConnMetadataCONN_UDP | netflowConnMetadataCONN_V4)
	if u := connFromBPF(&tuple, &v, clock{}); u.Transport != conns.TransportUDP || u.TCP != (conns.TCPStats{}) {
		t.Errorf("UDP conversion kept TCP fields: %+v", u)
	}
}

func TestDecodeRecord(t *testing.T) {
	var r netflowConnRecord
	if err := decodeRecord(make([]byte, recordSize-1), &r); err == nil {
		t.Error("short record accepted")
	}
	raw := make([]byte, recordSize)
	raw[0] = byte(netflowRecordKindRECORD_SOCK_RELEASED)
	if err := decodeRecord(raw, &r); err != nil || r.Kind != uint32(netflowRecordKindRECORD_SOCK_RELEASED) {
		t.Errorf("decode: %v %+v", err, r)
	}
}

func TestMissingCaps(t *testing.T) {
	all := uint64(1<<caps.BPF | 1<<caps.Perfmon | 1<<caps.NetAdmin)
	if err := missingCaps(all); err != nil {
		t.Errorf("all capabilities: %v", err)
	}
	if err := missingCaps(1 << caps.SysAdmin); err != nil {
		t.Errorf("CAP_SYS_ADMIN alone: %v", err)
	}
	err := missingCaps(1 << caps.NetAdmin)
	if !errors.Is(err, ErrMissingCapability) || !strings.Contains(err.Error(), "CAP_BPF, CAP_PERFMON") || strings.Contains(err.Error(), "CAP_NET_ADMIN,") {
		t.Errorf("missing BPF and PERFMON: %v", err)
	}
}

// TestStackDecoding: each kernel code of each layer decodes to the value the
// attributes write, and codes the tables do not know to nothing.
func TestStackDecoding(t *testing.T) {
	for _, c := range []struct {
		in               netflowProtocolStack
		name, version    string
		rpc, tls         string
		wantUnclassified bool
	}{
		{in: netflowProtocolStack{Application: uint8(netflowProtoApplicationAPP_HTTP11)}, name: "http", version: "1.1"},
		{in: netflowProtocolStack{Application: uint8(netflowProtoApplicationAPP_HTTP10)}, name: "http", version: "1.0"},
		{in: netflowProtocolStack{Application: uint8(netflowProtoApplicationAPP_HTTP)}, name: "http"},
		{in: netflowProtocolStack{Api: uint8(netflowProtoApiAPI_GRPC), Application: uint8(netflowProtoApplicationAPP_HTTP2), Encryption: uint8(netflowProtoEncryptionENC_TLS13)},
			name: "http", version: "2", rpc: "grpc", tls: "1.3"},
		{in: netflowProtocolStack{Application: uint8(netflowProtoApplicationAPP_KAFKA)}, name: "kafka"},
		{in: netflowProtocolStack{Application: uint8(netflowProtoApplicationAPP_AMQP)}, name: "amqp"},
		{in: netflowProtocolStack{Application: uint8(netflowProtoApplicationAPP_REDIS)}, name: "redis"},
		{in: netflowProtocolStack{Application: uint8(netflowProtoApplicationAPP_POSTGRES)}, name: "postgresql"},
		{in: netflowProtocolStack{Application: uint8(netflowProtoApplicationAPP_MYSQL)}, name: "mysql"},
		{in: netflowProtocolStack{Application: uint8(netflowProtoApplicationAPP_MONGO)}, name: "mongodb"},
		{in: netflowProtocolStack{Application: uint8(netflowProtoApplicationAPP_DNS)}, name: "dns"},
		{in: netflowProtocolStack{Encryption: uint8(netflowProtoEncryptionENC_TLS12)}, tls: "1.2"},
		{in: netflowProtocolStack{Api: 200, Application: 200, Encryption: 200, Flags: 0xff}, wantUnclassified: true},
	} {
		st := stackFromBPF(c.in)
		got := [4]string{st.Application.String(), st.Application.Version(), st.API.String(), st.Encryption.TLSVersion()}
		if want := [4]string{c.name, c.version, c.rpc, c.tls}; got != want {
			t.Errorf("%+v: decoded %q, want %q", c.in, got, want)
		}
		if c.wantUnclassified && st != (conns.ProtocolStack{}) {
			t.Errorf("%+v: unknown codes decoded to %+v", c.in, st)
		}
	}
}

// FuzzStackFromBPF: whatever bytes the kernel hands over, the decoded stack
// writes only the values metadata.yaml documents, a version only with its
// protocol, and unknown codes read as unclassified.
func FuzzStackFromBPF(f *testing.F) {
	f.Add(uint8(0), uint8(0), uint8(0), uint8(0))
	f.Add(uint8(1), uint8(2), uint8(4), uint8(1))
	f.Add(uint8(0), uint8(11), uint8(3), uint8(0x3f))
	names := []string{"", "http", "kafka", "amqp", "redis", "postgresql", "mysql", "mongodb", "dns"}
	f.Fuzz(func(t *testing.T, api, app, enc, flags uint8) {
		st := stackFromBPF(netflowProtocolStack{Api: api, Application: app, Encryption: enc, Flags: flags})
		if n := st.Application.String(); !slices.Contains(names, n) {
			t.Fatalf("application %d: name %q", app, n)
		}
		if v := st.Application.Version(); !slices.Contains([]string{"", "1.0", "1.1", "2"}, v) || (v != "" && st.Application.String() != "http") {
			t.Fatalf("application %d: version %q of %q", app, v, st.Application.String())
		}
		if r := st.API.String(); r != "" && r != "grpc" {
			t.Fatalf("api %d: %q", api, r)
		}
		if v := st.Encryption.TLSVersion(); !slices.Contains([]string{"", "1.0", "1.1", "1.2", "1.3"}, v) {
			t.Fatalf("encryption %d: %q", enc, v)
		}
		if int(app) >= len(appOf) && st.Application != conns.AppUnknown ||
			int(api) >= len(apiOf) && st.API != conns.APIUnknown ||
			int(enc) >= len(encryptionOf) && st.Encryption != conns.EncryptionNone {
			t.Fatalf("unknown codes %d/%d/%d decoded to %+v", api, app, enc, st)
		}
	})
}

// FuzzDecodeRecord: any bytes from the ring or the iterator decode or fail
// cleanly, and a decoded record's stack is one FuzzStackFromBPF accepts.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(make([]byte, recordSize))
	f.Add(make([]byte, recordSize-1))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var rec netflowConnRecord
		err := decodeRecord(raw, &rec)
		if (err != nil) != (len(raw) < recordSize) {
			t.Fatalf("%d bytes: err %v", len(raw), err)
		}
		if err == nil {
			c := connFromBPF(&rec.Tuple, &rec.Value, clock{})
			_ = c.Stack.Application.String()
		}
	})
}
