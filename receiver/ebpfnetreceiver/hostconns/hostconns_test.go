// SPDX-License-Identifier: Apache-2.0

package hostconns

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// fakeSource returns its snapshots in turn.
type fakeSource struct {
	snaps []conns.Snapshot
	tel   conns.Telemetry
}

func (f *fakeSource) Poll(context.Context) (conns.Snapshot, error) {
	s := f.snaps[0]
	f.snaps = f.snaps[1:]
	return s, nil
}
func (f *fakeSource) Telemetry() conns.Telemetry { return f.tel }
func (f *fakeSource) Close() error               { return nil }

// pidGone is above the kernel's PID_MAX_LIMIT (4194304): no process has it,
// so /proc never names it and the rows' names come from Comm.
const pidGone = 4194305

func conn(local, peer string, dir conns.Direction, sent, recv uint64) conns.Conn {
	return conns.Conn{
		Key:       conns.Key{Local: netip.MustParseAddrPort(local), Peer: netip.MustParseAddrPort(peer), Netns: 7, PID: pidGone, Transport: conns.TransportTCP},
		Cookie:    uint64(netip.MustParseAddrPort(local).Port()),
		Comm:      "client",
		Direction: dir, SentBytes: sent, RecvBytes: recv, SentPackets: sent / 100, RecvPackets: recv / 100,
		TCP: conns.TCPStats{RTT: 300 * time.Microsecond, RTTVar: 100 * time.Microsecond, Retransmits: 2},
	}
}

// TestPollRatesAndGroup: rates are what the counters grew by over the
// interval between polls; Group sums the connections the receiver's metrics
// put in one series (two clients to one server port) and keeps apart those
// it does not (the other direction).
func TestPollRatesAndGroup(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a1 := conn("10.0.0.1:40001", "10.0.0.2:443", conns.DirectionOutgoing, 1000, 500)
	a2 := conn("10.0.0.1:40002", "10.0.0.2:443", conns.DirectionOutgoing, 3000, 700)
	in := conn("10.0.0.1:8080", "10.0.0.9:50000", conns.DirectionIncoming, 100, 200)
	in.Comm = "" // seen only outside the owner's context: named by the others' Comm
	a1later := a1
	a1later.SentBytes, a1later.SentPackets = 5000, 50
	src := &fakeSource{
		snaps: []conns.Snapshot{
			{Time: t0, Active: []conns.Conn{a1, in}},
			{Time: t0.Add(2 * time.Second), Active: []conns.Conn{a1later, in}, Closed: []conns.Conn{a2}},
		},
		tel: conns.Telemetry{ConnMapFull: 3, Classified: 5},
	}
	tr := newTracer(src, false)
	if _, err := tr.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	snap, err := tr.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if snap.Interval != 2*time.Second || len(snap.Rows) != 3 {
		t.Fatalf("interval %v, %d rows", snap.Interval, len(snap.Rows))
	}
	r := snap.Rows[0]
	if r.SentBytes != 5000 || r.SentBytesRate != 2000 || r.RecvBytesRate != 0 || r.SentPacketsRate != 20 || r.ServerPort != 443 || r.Closed {
		t.Errorf("a1 on the second poll: %+v", r)
	}
	// a2 was first seen at the second poll: all of it is new.
	if r := snap.Rows[2]; r.SentBytesRate != 1500 || !r.Closed {
		t.Errorf("a2: %+v", r)
	}
	if snap.Lost != 3 {
		t.Errorf("lost %d, want 3", snap.Lost)
	}
	for _, c := range snap.Counters {
		want := map[string]Counter{"connection_table_full": {"connection_table_full", 3, true}, "classified": {"classified", 5, false}}[c.Name]
		if (want != Counter{}) && c != want {
			t.Errorf("counter %+v, want %+v", c, want)
		}
	}

	g := Group(snap.Rows)
	if len(g) != 2 {
		t.Fatalf("%d groups, want 2: %+v", len(g), g)
	}
	out := g[0]
	want := Row{
		PID: pidGone, Process: "client", Netns: 7,
		LocalAddress: netip.MustParseAddr("10.0.0.1"), PeerAddress: netip.MustParseAddr("10.0.0.2"), PeerPort: 443, ServerPort: 443,
		Direction: "outgoing", Transport: "tcp", NetworkType: "ipv4",
		SentBytes: 8000, ReceivedBytes: 1200, SentPackets: 80, ReceivedPackets: 12,
		SentBytesRate: 3500, SentPacketsRate: 35, RecvBytesRate: 350, RecvPacketsRate: 3.5,
		RTTMicros: 300, RTTVarMicros: 100, Retransmits: 4, Connections: 2,
	}
	if diff := cmp.Diff(want, out, cmpopts.IgnoreUnexported(Row{}), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("outgoing group (-want +got):\n%s", diff)
	}
	if g[1].LocalPort != 8080 || g[1].PeerPort != 0 || g[1].Connections != 1 || g[1].Process != "client" {
		t.Errorf("incoming group: %+v", g[1])
	}
}

func TestStack(t *testing.T) {
	r := Row{TLSVersion: "1.3", ProtocolName: "http", ProtocolVersion: "2", RPCSystem: "grpc"}
	if s := r.Stack(); s != "tls1.3/http2/grpc" {
		t.Errorf("%q", s)
	}
	if s := (&Row{}).Stack(); s != "" {
		t.Errorf("%q", s)
	}
}

// TestPollAfterClose: a poll that comes after Close (the UI's last tick)
// gets ErrClosed instead of reading freed maps.
func TestPollAfterClose(t *testing.T) {
	tr := newTracer(&fakeSource{snaps: []conns.Snapshot{{}}}, false)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Poll(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("poll after close: %v, want ErrClosed", err)
	}
}

// TestPeerNames: an outgoing connection to an address a DNS answer of its
// namespace gave carries the name the client asked for, from the poll that
// first sees it to its close, though the name expires in between; a
// connection to an address nobody resolved, and an incoming one, carry none.
func TestPeerNames(t *testing.T) {
	t0 := time.Unix(1000, 0)
	named := conn("10.0.0.1:40001", "10.0.0.2:443", conns.DirectionOutgoing, 1000, 500)
	other := conn("10.0.0.1:40002", "10.0.0.3:443", conns.DirectionOutgoing, 10, 20)
	in := conn("10.0.0.2:443", "10.0.0.1:40003", conns.DirectionIncoming, 1, 2)
	answer := conns.DNSResponse{Netns: named.Netns, Msg: dnsAnswer(t, "api.example.test.", netip.MustParseAddr("10.0.0.2"), 1)}
	answer.Size = len(answer.Msg)
	later := t0.Add(time.Hour) // past the answer's TTL and the grace
	src := &fakeSource{snaps: []conns.Snapshot{
		{Time: t0, DNS: []conns.DNSResponse{answer}, Active: []conns.Conn{named, other, in}},
		{Time: later, Closed: []conns.Conn{named, other, in}},
	}}
	tr := newTracer(src, true)
	for i, when := range []string{"first seen", "closed after the name expired"} {
		snap, err := tr.Poll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got := map[uint16]string{}
		for _, r := range snap.Rows {
			got[r.LocalPort] = r.PeerName
		}
		want := map[uint16]string{40001: "api.example.test", 40002: "", 443: ""}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("poll %d (%s): peer names by local port (-want +got):\n%s", i, when, diff)
		}
	}
}

// dnsAnswer is a DNS response to an A query for name with one answer.
func dnsAnswer(t *testing.T, name string, addr netip.Addr, ttl uint32) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1, Response: true})
	q := dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.StartQuestions())
	must(b.Question(q))
	must(b.StartAnswers())
	must(b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Type: q.Type, Class: q.Class, TTL: ttl}, dnsmessage.AResource{A: addr.As4()}))
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}
