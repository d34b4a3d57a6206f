// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"net/netip"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"golang.org/x/net/dns/dnsmessage"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadatatest"
)

// dnsAnswerMsg is a response to an A question for name with the addresses.
func dnsAnswerMsg(t *testing.T, name string, addrs ...netip.Addr) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 1, Response: true})
	n := dnsmessage.MustNewName(name)
	if err := b.StartQuestions(); err != nil {
		t.Fatal(err)
	}
	if err := b.Question(dnsmessage.Question{Name: n, Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}); err != nil {
		t.Fatal(err)
	}
	if err := b.StartAnswers(); err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if err := b.AResource(dnsmessage.ResourceHeader{Name: n, Class: dnsmessage.ClassINET, TTL: 60}, dnsmessage.AResource{A: a.As4()}); err != nil {
			t.Fatal(err)
		}
	}
	msg, err := b.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestDNSNamesInMetricsAndTelemetry: the snapshot's DNS responses name the
// outgoing connections of their namespace in the exported metrics, and the
// map's counts and the tracer's DNS drops reach the receiver's telemetry as
// exact deltas.
func TestDNSNamesInMetricsAndTelemetry(t *testing.T) {
	const netns = 4026531840
	api, db, other := netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("10.0.0.8"), netip.MustParseAddr("10.0.0.9")
	conn := func(peer netip.Addr, port uint16, cookie uint64, dir conns.Direction, ns uint32) conns.Conn {
		return conns.Conn{Key: conns.Key{Local: netip.MustParseAddrPort("10.0.0.1:40000"), Peer: netip.AddrPortFrom(peer, port),
			Netns: ns, PID: 100, Transport: conns.TransportTCP}, Cookie: cookie, Direction: dir, SentBytes: 10, SentPackets: 1}
	}
	good := dnsAnswerMsg(t, "api.example.test.", api, db) // db first answered as api...
	later := dnsAnswerMsg(t, "db.example.test.", db)      // ...then as db: the last answer wins
	cut := dnsAnswerMsg(t, "cut.example.test.", other)
	src := &fakeSource{
		polls: []conns.Snapshot{{
			Time: t0.Add(10 * time.Second),
			DNS: []conns.DNSResponse{
				{Netns: netns, Size: len(good), Msg: good},
				{Netns: netns, Size: len(later), Msg: later},
				{Netns: netns, Size: len(cut) + 100, Msg: cut[:len(cut)-3]}, // cut inside its only answer
				{Netns: netns, Size: 5, Msg: []byte{0, 1, 0x81, 0x80, 0}},   // not DNS
			},
			Active: []conns.Conn{
				conn(api, 443, 1, conns.DirectionOutgoing, netns),
				conn(db, 5432, 2, conns.DirectionOutgoing, netns),
				conn(api, 443, 3, conns.DirectionIncoming, netns),   // never named
				conn(api, 443, 4, conns.DirectionOutgoing, netns+1), // another namespace asked nothing
				conn(other, 80, 5, conns.DirectionOutgoing, netns),
			},
		}},
		tel: []conns.Telemetry{{DNSRingFull: 4, DNSNoSocket: 2}},
	}
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(t.Context()) })
	cfg := createDefaultConfig()
	cfg.DNSNames.MaxEntries = 1 // api's entry goes when db's is learnt again
	s := newTestScraper(t, cfg, src, metadatatest.NewSettings(tt))
	md := scrapeAll(t, s, 1)[0]

	got := map[string]string{} // "peer:port cookie-less direction" -> server.address
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		ns := rms.At(i).Resource().Attributes()
		nsv, _ := ns.Get("ebpfnet.netns.inode")
		ms := rms.At(i).ScopeMetrics().At(0).Metrics()
		for k := 0; k < ms.Len(); k++ {
			if ms.At(k).Name() != "ebpfnet.connection.opened" {
				continue
			}
			dps := ms.At(k).Sum().DataPoints()
			for l := 0; l < dps.Len(); l++ {
				a := dps.At(l).Attributes()
				key := str(a, "network.peer.address") + " " + str(a, "ebpfnet.connection.direction") + " " + nsv.AsString()
				got[key] = str(a, "server.address")
			}
		}
	}
	want := map[string]string{
		"10.0.0.7 outgoing 4026531840": "",                // named api, then evicted by the bound of 1 before the poll named it
		"10.0.0.8 outgoing 4026531840": "db.example.test", // the last answer
		"10.0.0.7 incoming 4026531840": "",
		"10.0.0.7 outgoing 4026531841": "",
		"10.0.0.9 outgoing 4026531840": "", // its only answer was cut
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s: server.address %q (present %v), want %q", k, g, ok, v)
		}
	}

	opt := metricdatatest.IgnoreTimestamp()
	metadatatest.AssertEqualEbpfnetDNSResponses(t, tt, []metricdata.DataPoint[int64]{{Value: 4}}, opt)
	metadatatest.AssertEqualEbpfnetDNSAnswers(t, tt, []metricdata.DataPoint[int64]{{Value: 3}}, opt)
	metadatatest.AssertEqualEbpfnetDNSParseErrors(t, tt, []metricdata.DataPoint[int64]{{Value: 1}}, opt)
	metadatatest.AssertEqualEbpfnetDNSTruncated(t, tt, []metricdata.DataPoint[int64]{{Value: 1}}, opt)
	metadatatest.AssertEqualEbpfnetDNSEvictions(t, tt, []metricdata.DataPoint[int64]{{Value: 1}}, opt)
	metadatatest.AssertEqualEbpfnetTracerDNSRingFull(t, tt, []metricdata.DataPoint[int64]{{Value: 4}}, opt)
	metadatatest.AssertEqualEbpfnetTracerDNSNoSocket(t, tt, []metricdata.DataPoint[int64]{{Value: 2}}, opt)
}
