// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// fakeTable is a connection table in memory, for the poll's batching logic
// without a kernel.
type fakeTable struct {
	entries map[netflowConnTuple]netflowConnValue
	takeErr error // returned by take instead of the entry
}

func (f *fakeTable) walk(fn func(k *netflowConnTuple, v *netflowConnValue) error) error {
	for k, v := range f.entries {
		if err := fn(&k, &v); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeTable) take(k *netflowConnTuple, v *netflowConnValue) error {
	if f.takeErr != nil {
		return f.takeErr
	}
	got, ok := f.entries[*k]
	if !ok {
		return fmt.Errorf("take: %w", ebpf.ErrKeyNotExist)
	}
	delete(f.entries, *k)
	*v = got
	return nil
}

func tuple(local, peer string, udp bool) netflowConnTuple {
	l, p := netip.MustParseAddrPort(local), netip.MustParseAddrPort(peer)
	lh, ll := halves(l.Addr())
	ph, pl := halves(p.Addr())
	meta := netflowConnMetadataCONN_TCP | netflowConnMetadataCONN_V4
	if udp {
		meta = netflowConnMetadataCONN_UDP | netflowConnMetadataCONN_V4
	}
	return netflowConnTuple{SaddrH: lh, SaddrL: ll, DaddrH: ph, DaddrL: pl, Sport: l.Port(), Dport: p.Port(), Netns: 1, Pid: 7, Metadata: uint32(meta)}
}

func value(sockID, cookie, sent uint64, flags netflowConnFlags) netflowConnValue {
	var v netflowConnValue
	v.Stats = netflowConnStats{SockId: sockID, Cookie: cookie, SentBytes: sent, Start: 1_000, Timestamp: 2_000, Flags: uint8(flags)}
	return v
}

// TestPollBatching: ring records and table entries become one Snapshot with
// each connection once, open ones in Active, finished ones in Closed and out
// of the table.
func TestPollBatching(t *testing.T) {
	clk := clock{wall: time.Unix(100, 0), mono: 10_000}
	tcpOpen := tuple("10.0.0.1:40000", "10.0.0.2:80", false)
	tcpFallback := tuple("10.0.0.1:40001", "10.0.0.2:80", false) // closed while the ring was full
	udpEnded1 := tuple("10.0.0.1:5353", "10.0.0.3:53", true)     // two peers of one released socket
	udpEnded2 := tuple("10.0.0.1:5353", "10.0.0.4:53", true)
	udpOpen := tuple("10.0.0.1:6000", "10.0.0.3:53", true)
	tcpSameID := tuple("10.0.0.1:40002", "10.0.0.2:80", false) // TCP never ends by sock_release
	tbl := &fakeTable{entries: map[netflowConnTuple]netflowConnValue{
		tcpOpen:     value(0xa, 1, 100, 0),
		tcpFallback: value(0xb, 2, 200, netflowConnFlagsCONN_CLOSED),
		udpEnded1:   value(0xc, 3, 30, 0),
		udpEnded2:   value(0xc, 3, 40, 0),
		udpOpen:     value(0xd, 4, 50, 0),
		tcpSameID:   value(0xc, 5, 60, 0),
	}}
	ringClosed := tuple("10.0.0.1:40003", "10.0.0.2:80", false)
	recs := []netflowConnRecord{
		{Kind: uint32(netflowRecordKindRECORD_CONN_CLOSED), Tuple: ringClosed, Value: value(0xe, 6, 300, 0)},
		{Kind: uint32(netflowRecordKindRECORD_SOCK_RELEASED), Value: value(0xc, 3, 0, 0)},
	}

	var snap conns.Snapshot
	released := splitRecords(recs, clk, &snap)
	if err := walkTable(tbl, released, 0, clk, &snap); err != nil {
		t.Fatal(err)
	}

	sent := func(cs []conns.Conn) map[uint64]bool {
		m := map[uint64]bool{}
		for _, c := range cs {
			if m[c.SentBytes] {
				t.Errorf("connection with %d bytes listed twice", c.SentBytes)
			}
			m[c.SentBytes] = true
		}
		return m
	}
	active, closed := sent(snap.Active), sent(snap.Closed)
	for _, want := range []uint64{100, 50, 60} {
		if !active[want] || closed[want] {
			t.Errorf("open connection (%d bytes): active=%v closed=%v", want, active[want], closed[want])
		}
	}
	for _, want := range []uint64{300, 200, 30, 40} {
		if !closed[want] || active[want] {
			t.Errorf("finished connection (%d bytes): active=%v closed=%v", want, active[want], closed[want])
		}
	}
	if len(tbl.entries) != 3 {
		t.Errorf("%d entries left in the table, want the 3 open ones", len(tbl.entries))
	}
	for _, c := range snap.Closed {
		if c.Transport == conns.TransportUDP && c.Duration != time.Duration(clk.mono-1_000) {
			t.Errorf("released UDP flow without its duration: %v", c.Duration)
		}
	}
}

// TestPollTakeErrors: an entry the BPF side already replaced is skipped (it
// reported the old one itself); any other failure to take an entry is an
// error, never a silent skip.
func TestPollTakeErrors(t *testing.T) {
	k := tuple("10.0.0.1:40001", "10.0.0.2:80", false)
	for _, c := range []struct {
		err     error
		wantErr bool
	}{
		{fmt.Errorf("gone: %w", ebpf.ErrKeyNotExist), false},
		{errors.New("permission denied"), true},
	} {
		tbl := &fakeTable{entries: map[netflowConnTuple]netflowConnValue{k: value(1, 1, 1, netflowConnFlagsCONN_CLOSED)}, takeErr: c.err}
		var snap conns.Snapshot
		err := walkTable(tbl, nil, 0, clock{}, &snap)
		if (err != nil) != c.wantErr || len(snap.Closed)+len(snap.Active) != 0 {
			t.Errorf("take error %v: walk error %v, snapshot %+v", c.err, err, snap)
		}
	}
}

// TestPollEndsIdleUDPFlows: a UDP flow whose last datagram is older than the
// idle threshold is reported closed, as of that datagram, and leaves the
// table; a flow active since, and TCP connections however idle, stay.
func TestPollEndsIdleUDPFlows(t *testing.T) {
	clk := clock{wall: time.Unix(100, 0), mono: 50_000}
	idleFlow := tuple("10.0.0.1:53", "10.0.0.3:40000", true)
	busyFlow := tuple("10.0.0.1:53", "10.0.0.4:40000", true)
	idleTCP := tuple("10.0.0.1:40001", "10.0.0.2:80", false)
	busy := value(0xa, 1, 20, 0)
	busy.Stats.Timestamp = 30_000
	tbl := &fakeTable{entries: map[netflowConnTuple]netflowConnValue{
		idleFlow: value(0xa, 1, 10, 0), // last datagram at 2_000
		busyFlow: busy,
		idleTCP:  value(0xb, 2, 30, 0),
	}}
	var snap conns.Snapshot
	if err := walkTable(tbl, nil, 25_000, clk, &snap); err != nil {
		t.Fatal(err)
	}
	if len(snap.Closed) != 1 || snap.Closed[0].SentBytes != 10 {
		t.Fatalf("closed %+v, want the idle UDP flow only", snap.Closed)
	}
	if d := snap.Closed[0].Duration; d != 1_000 {
		t.Errorf("idle flow duration %v, want its start to its last datagram (1000ns)", d)
	}
	if len(snap.Active) != 2 || len(tbl.entries) != 2 {
		t.Errorf("active %d, table %d: want the busy flow and the TCP connection in both", len(snap.Active), len(tbl.entries))
	}
	if _, ok := tbl.entries[idleFlow]; ok {
		t.Error("idle flow left in the table")
	}
}
