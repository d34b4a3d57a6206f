// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/golden"
	"github.com/open-telemetry/opentelemetry-collector-contrib/pkg/pdatatest/pmetrictest"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receivertest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.uber.org/zap"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/aggregate"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadata"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadatatest"
)

// update rewrites the golden files: go test -run Golden -update, then run
// again without it (golden.WriteMetrics fails the test on purpose).
var update = flag.Bool("update", false, "rewrite testdata/expected_metrics")

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// fakeSource returns one scripted snapshot per poll, then empty ones.
type fakeSource struct {
	polls  []conns.Snapshot
	tel    []conns.Telemetry
	n      int
	closed int
}

func (f *fakeSource) Poll(context.Context) (conns.Snapshot, error) {
	f.n++
	if f.n <= len(f.polls) {
		return f.polls[f.n-1], nil
	}
	return conns.Snapshot{Time: t0.Add(time.Duration(f.n) * 10 * time.Second)}, nil
}

func (f *fakeSource) Telemetry() conns.Telemetry {
	if f.n == 0 || len(f.tel) == 0 {
		return conns.Telemetry{}
	}
	return f.tel[min(f.n, len(f.tel))-1]
}

func (f *fakeSource) Close() error { f.closed++; return nil }

// fakeResolver knows processes 100 (curl in no container), 200 (nginx in a
// container) and 300 (postgres).
type fakeResolver struct{}

func (fakeResolver) resolve(pid, netns uint32, _ uint64) aggregate.Resource {
	r := aggregate.Resource{PID: pid, Netns: netns}
	switch pid {
	case 100:
		r.ExecutableName, r.CommandLine = "curl", "curl https://example.com"
	case 200:
		r.ExecutableName, r.CommandLine = "nginx", "nginx -g daemon off;"
		r.ContainerID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	case 300:
		r.ExecutableName = "postgres"
	}
	return r
}

func (fakeResolver) prune(time.Time) {}

func (fakeResolver) stats() resolverStats { return resolverStats{} }

func (fakeResolver) learn([]conns.CgroupPath) {}

const (
	hostNetns      = 4026531840
	containerNetns = 4026532001
)

func tcp(pid, netns uint32, local, peer string, dir conns.Direction, cookie uint64) conns.Conn {
	return conns.Conn{
		Key: conns.Key{
			Local: netip.MustParseAddrPort(local), Peer: netip.MustParseAddrPort(peer),
			Netns: netns, PID: pid, Transport: conns.TransportTCP,
		},
		Cookie:    cookie,
		Direction: dir,
		Flags:     conns.FlagAssured,
		Start:     t0,
	}
}

func with(c conns.Conn, sent, recv, sentPkts, recvPkts uint64) conns.Conn {
	c.SentBytes, c.RecvBytes, c.SentPackets, c.RecvPackets = sent, recv, sentPkts, recvPkts
	return c
}

func closedAfter(c conns.Conn, d time.Duration) conns.Conn {
	c.Duration = d
	return c
}

func newTestScraper(t *testing.T, cfg *Config, src conns.Source, set receiver.Settings) *ebpfnetScraper {
	t.Helper()
	reg := newRegistry(func(*Config, *zap.Logger) (conns.Source, error) { return src, nil },
		func(*Config) resourceResolver { return fakeResolver{} })
	reg.now = func() time.Time { return t0 }
	s := attachScraper(t, reg, cfg, set)
	if err := s.start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.shutdown(context.Background()) })
	return s
}

// attachScraper is the scraper of a metrics receiver of reg, not started.
func attachScraper(t *testing.T, reg *registry, cfg *Config, set receiver.Settings) *ebpfnetScraper {
	t.Helper()
	c, err := reg.attach(set, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.attachMetrics()
	t.Cleanup(func() { reg.detach(c) })
	return &ebpfnetScraper{core: c, cfg: cfg, set: set, now: reg.now}
}

// scrapeAll polls once per scripted snapshot and returns every result.
func scrapeAll(t *testing.T, s *ebpfnetScraper, polls int) []pmetric.Metrics {
	t.Helper()
	var out []pmetric.Metrics
	for range polls {
		md, err := s.scrape(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, md)
	}
	return out
}

func compareGolden(t *testing.T, name string, actual pmetric.Metrics) {
	t.Helper()
	path := filepath.Join("testdata", "expected_metrics", name+".yaml")
	if *update {
		if err := golden.WriteMetrics(t, path, actual, golden.SkipMetricTimestampNormalization()); err != nil {
			t.Fatal(err)
		}
		return
	}
	expected, err := golden.ReadMetrics(path)
	if err != nil {
		t.Fatal(err)
	}
	// Timestamps are deterministic here (the fake clock and snapshots), so
	// they are compared too: start timestamps are part of the contract.
	if err := pmetrictest.CompareMetrics(expected, actual, pmetrictest.IgnoreResourceMetricsOrder(),
		pmetrictest.IgnoreMetricsOrder(), pmetrictest.IgnoreMetricDataPointsOrder()); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestGoldenAggregation: two clients of one server from ephemeral ports
// collapse into one series per server.port; a connection seen in poll 1 and
// closed before poll 2 adds exactly its remaining bytes; a connection opened
// and closed between polls is counted once in opened and closed; classified
// stacks become network.protocol.name, rpc.system and tls.protocol.version.
func TestGoldenAggregation(t *testing.T) {
	a := tcp(100, hostNetns, "10.0.0.1:50000", "10.0.0.2:443", conns.DirectionOutgoing, 1)
	b := tcp(100, hostNetns, "10.0.0.1:50001", "10.0.0.2:443", conns.DirectionOutgoing, 2)
	grpc := tcp(100, hostNetns, "10.0.0.1:50002", "10.0.0.3:8443", conns.DirectionOutgoing, 3)
	grpc.Stack = conns.ProtocolStack{API: conns.APIGRPC, Application: conns.AppHTTP2, Encryption: conns.EncryptionTLS13}
	short := tcp(100, hostNetns, "10.0.0.1:50003", "10.0.0.2:443", conns.DirectionOutgoing, 4)
	src := &fakeSource{polls: []conns.Snapshot{
		{Time: t0.Add(10 * time.Second), Active: []conns.Conn{with(a, 100, 1000, 1, 2), with(b, 10, 20, 1, 1), with(grpc, 300, 400, 3, 4)}},
		{
			Time:   t0.Add(20 * time.Second),
			Active: []conns.Conn{with(b, 15, 20, 2, 1), with(grpc, 350, 900, 4, 6)},
			Closed: []conns.Conn{closedAfter(with(a, 160, 1500, 2, 3), 15*time.Second), closedAfter(with(short, 5, 7, 1, 1), 2*time.Millisecond)},
		},
	}}
	s := newTestScraper(t, createDefaultConfig(), src, receivertest.NewNopSettings(metadata.Type))
	mds := scrapeAll(t, s, 2)
	assertStartsStable(t, mds[0], mds[1])
	compareGolden(t, "aggregation", mds[1])
}

// TestGoldenIPv6AndUDP: an IPv6 TCP server and a UDP DNS server, incoming.
func TestGoldenIPv6AndUDP(t *testing.T) {
	v6 := tcp(300, hostNetns, "[2001:db8::1]:5432", "[2001:db8::2]:41000", conns.DirectionIncoming, 1)
	v6.Stack.Application = conns.AppPostgres
	dns := conns.Conn{
		Key: conns.Key{
			Local: netip.MustParseAddrPort("10.0.0.1:53"), Peer: netip.MustParseAddrPort("10.0.0.9:33333"),
			Netns: hostNetns, PID: 300, Transport: conns.TransportUDP,
		},
		Cookie: 2, Direction: conns.DirectionIncoming, Stack: conns.ProtocolStack{Application: conns.AppDNS},
	}
	// A v4-mapped peer of a dual-stack socket is reported as IPv4.
	mapped := tcp(300, hostNetns, "[::ffff:10.0.0.1]:5432", "[::ffff:10.0.0.7]:41001", conns.DirectionIncoming, 3)
	src := &fakeSource{polls: []conns.Snapshot{{
		Time:   t0.Add(10 * time.Second),
		Active: []conns.Conn{with(v6, 800, 200, 2, 2), with(mapped, 1, 2, 1, 1)},
		Closed: []conns.Conn{closedAfter(with(dns, 120, 40, 1, 1), time.Millisecond)},
	}}}
	s := newTestScraper(t, createDefaultConfig(), src, receivertest.NewNopSettings(metadata.Type))
	compareGolden(t, "ipv6_udp", scrapeAll(t, s, 1)[0])
}

// TestGoldenResources: one resource per process and network namespace, with
// the container id of the containerized process and the command line when
// enabled.
func TestGoldenResources(t *testing.T) {
	cfg := createDefaultConfig()
	cfg.ResourceAttributes.ProcessCommandLine.Enabled = true
	src := &fakeSource{polls: []conns.Snapshot{{
		Time: t0.Add(10 * time.Second),
		Active: []conns.Conn{
			with(tcp(200, containerNetns, "172.17.0.2:80", "172.17.0.1:40000", conns.DirectionIncoming, 1), 500, 100, 1, 1),
			with(tcp(100, hostNetns, "10.0.0.1:50000", "10.0.0.2:443", conns.DirectionOutgoing, 2), 10, 20, 1, 1),
			with(tcp(100, containerNetns, "172.17.0.3:50000", "172.17.0.2:80", conns.DirectionOutgoing, 3), 100, 500, 1, 1),
		},
	}}}
	s := newTestScraper(t, cfg, src, receivertest.NewNopSettings(metadata.Type))
	compareGolden(t, "resources", scrapeAll(t, s, 1)[0])
}

// TestGoldenOverflow: past aggregation.max_series, series fold into one
// series marked otel.metric.overflow=true, and the fold is counted in the
// receiver's telemetry.
func TestGoldenOverflow(t *testing.T) {
	cfg := createDefaultConfig()
	cfg.Aggregation.MaxSeries = 2
	var active []conns.Conn
	for i := range 4 {
		peer := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i + 1)}), 8080)
		c := tcp(100, hostNetns, "10.0.0.1:5000"+string(rune('0'+i)), peer.String(), conns.DirectionOutgoing, uint64(i+1))
		active = append(active, with(c, 100, 0, 1, 0))
	}
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	src := &fakeSource{polls: []conns.Snapshot{{Time: t0.Add(10 * time.Second), Active: active}}}
	s := newTestScraper(t, cfg, src, metadatatest.NewSettings(tt))
	compareGolden(t, "overflow", scrapeAll(t, s, 1)[0])
	// io, packets, opened and count each folded connections 3 and 4.
	metadatatest.AssertEqualEbpfnetAggregationOverflow(t, tt, []metricdata.DataPoint[int64]{{Value: 8}},
		metricdatatest.IgnoreTimestamp())
}

// scrapeTwice scrapes twice from a source whose telemetry is tel at each
// poll and returns the receiver's own telemetry.
func scrapeTwice(t *testing.T, tel [2]conns.Telemetry) *componenttest.Telemetry {
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	src := &fakeSource{
		polls: []conns.Snapshot{{Time: t0.Add(10 * time.Second)}, {Time: t0.Add(20 * time.Second)}},
		tel:   tel[:],
	}
	s := newTestScraper(t, createDefaultConfig(), src, metadatatest.NewSettings(tt))
	scrapeAll(t, s, 2)
	return tt
}

func TestTelemetryFollowsTracerCounters(t *testing.T) {
	tt := scrapeTwice(t, [2]conns.Telemetry{
		{ConnMapFull: 3, LostRecords: 1},
		{ConnMapFull: 5, LostRecords: 1, ClosedLost: 2, RingReserveFailed: 7, MissedPeer: 4, IterationRestarts: 1, SockMapFull: 9,
			KernelSkipped: 6, Rescued: 40},
	})
	opt := metricdatatest.IgnoreTimestamp()
	metadatatest.AssertEqualEbpfnetTracerConnectionTableFull(t, tt, []metricdata.DataPoint[int64]{{Value: 5}}, opt)
	metadatatest.AssertEqualEbpfnetTracerRecordsLost(t, tt, []metricdata.DataPoint[int64]{{Value: 1}}, opt)
	metadatatest.AssertEqualEbpfnetTracerClosedLost(t, tt, []metricdata.DataPoint[int64]{{Value: 2}}, opt)
	metadatatest.AssertEqualEbpfnetTracerRingReserveFailed(t, tt, []metricdata.DataPoint[int64]{{Value: 7}}, opt)
	metadatatest.AssertEqualEbpfnetTracerMissedPeer(t, tt, []metricdata.DataPoint[int64]{{Value: 4}}, opt)
	metadatatest.AssertEqualEbpfnetTracerIterationRestarts(t, tt, []metricdata.DataPoint[int64]{{Value: 1}}, opt)
	metadatatest.AssertEqualEbpfnetTracerSocketTableFull(t, tt, []metricdata.DataPoint[int64]{{Value: 9}}, opt)
	metadatatest.AssertEqualEbpfnetTracerKernelSkipped(t, tt, []metricdata.DataPoint[int64]{{Value: 6}}, opt)
	metadatatest.AssertEqualEbpfnetTracerRescued(t, tt, []metricdata.DataPoint[int64]{{Value: 40}}, opt)
}

// TestTelemetryCountsWhatIsNotLost: the counters of what the tracer did
// another way (tuple reuse, full listener and cookie tables) are exported
// too, as deltas of the tracer's cumulative values.
func TestTelemetryCountsWhatIsNotLost(t *testing.T) {
	tt := scrapeTwice(t, [2]conns.Telemetry{{TupleReused: 2}, {TupleReused: 8, ListenMapFull: 10, CookieMapFull: 11}})
	opt := metricdatatest.IgnoreTimestamp()
	metadatatest.AssertEqualEbpfnetTracerTupleReused(t, tt, []metricdata.DataPoint[int64]{{Value: 8}}, opt)
	metadatatest.AssertEqualEbpfnetTracerListenerTableFull(t, tt, []metricdata.DataPoint[int64]{{Value: 10}}, opt)
	metadatatest.AssertEqualEbpfnetTracerCookieTableFull(t, tt, []metricdata.DataPoint[int64]{{Value: 11}}, opt)
}

// TestTelemetryCountsClassification: the classification outcomes are
// exported like the other counters.
func TestTelemetryCountsClassification(t *testing.T) {
	tt := scrapeTwice(t, [2]conns.Telemetry{{Classified: 1}, {Classified: 12, Unclassified: 3, ClassifyShort: 2}})
	opt := metricdatatest.IgnoreTimestamp()
	metadatatest.AssertEqualEbpfnetTracerClassified(t, tt, []metricdata.DataPoint[int64]{{Value: 12}}, opt)
	metadatatest.AssertEqualEbpfnetTracerUnclassified(t, tt, []metricdata.DataPoint[int64]{{Value: 3}}, opt)
	metadatatest.AssertEqualEbpfnetTracerClassifyShort(t, tt, []metricdata.DataPoint[int64]{{Value: 2}}, opt)
}

// hookSource is a source that says which kernel hooks it chose.
type hookSource struct {
	fakeSource
	hooks []hookChoice
}

func (h *hookSource) HookChoices() []hookChoice { return h.hooks }

// TestTelemetryExportsHookChoice: the hook the tracer chose for each piece of
// data is a gauge point with the data and the hook kind as attributes.
func TestTelemetryExportsHookChoice(t *testing.T) {
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	src := &hookSource{hooks: []hookChoice{
		{Data: "payload", Hook: "fexit"},
		{Data: "udp_end", Hook: "cgroup"},
	}}
	s := newTestScraper(t, createDefaultConfig(), src, metadatatest.NewSettings(tt))
	scrapeAll(t, s, 1)
	metadatatest.AssertEqualEbpfnetTracerHook(t, tt, []metricdata.DataPoint[int64]{
		{Value: 1, Attributes: attribute.NewSet(attribute.String("ebpfnet.tracer.data", "payload"), attribute.String("ebpfnet.tracer.hook", "fexit"))},
		{Value: 1, Attributes: attribute.NewSet(attribute.String("ebpfnet.tracer.data", "udp_end"), attribute.String("ebpfnet.tracer.hook", "cgroup"))},
	}, metricdatatest.IgnoreTimestamp())
}

// assertStartsStable checks that every series in later has the start
// timestamp it had in earlier.
func assertStartsStable(t *testing.T, earlier, later pmetric.Metrics) {
	t.Helper()
	starts := map[string]pcommon.Timestamp{}
	visitPoints(earlier, func(key string, start pcommon.Timestamp) { starts[key] = start })
	checked := 0
	visitPoints(later, func(key string, start pcommon.Timestamp) {
		if s, ok := starts[key]; ok {
			checked++
			if s != start {
				t.Errorf("series %s: start moved from %v to %v", key, s, start)
			}
		}
	})
	if checked == 0 {
		t.Fatal("no series in common between the two polls")
	}
}

func visitPoints(md pmetric.Metrics, fn func(key string, start pcommon.Timestamp)) {
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		res := rms.At(i).Resource().Attributes().AsRaw()
		ms := rms.At(i).ScopeMetrics().At(0).Metrics()
		for j := 0; j < ms.Len(); j++ {
			m := ms.At(j)
			key := func(attrs pcommon.Map) string {
				return m.Name() + "|" + fmtMap(res) + "|" + fmtMap(attrs.AsRaw())
			}
			switch m.Type() {
			case pmetric.MetricTypeSum:
				for k := 0; k < m.Sum().DataPoints().Len(); k++ {
					dp := m.Sum().DataPoints().At(k)
					fn(key(dp.Attributes()), dp.StartTimestamp())
				}
			case pmetric.MetricTypeHistogram:
				for k := 0; k < m.Histogram().DataPoints().Len(); k++ {
					dp := m.Histogram().DataPoints().At(k)
					fn(key(dp.Attributes()), dp.StartTimestamp())
				}
			}
		}
	}
}

// fmtMap prints m with sorted keys (fmt sorts map keys).
func fmtMap(m map[string]any) string { return fmt.Sprint(m) }

func TestStartFailsWithTheTracerError(t *testing.T) {
	missing := errors.New("tracer: missing capability CAP_BPF")
	set := receivertest.NewNopSettings(metadata.Type)
	r, err := newReceiver(set, createDefaultConfig(), consumertest.NewNop(),
		func(*Config, *zap.Logger) (conns.Source, error) { return nil, missing },
		func(*Config) resourceResolver { return fakeResolver{} })
	if err != nil {
		t.Fatal(err)
	}
	err = r.Start(context.Background(), componenttest.NewNopHost())
	if !errors.Is(err, missing) {
		t.Fatalf("start: want the tracer's error wrapped, got %v", err)
	}
	if err := r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownIsIdempotentAndClosesTheSource(t *testing.T) {
	src := &fakeSource{}
	cfg := createDefaultConfig()
	cfg.CollectionInterval = time.Hour
	sink := new(consumertest.MetricsSink)
	r, err := newReceiver(receivertest.NewNopSettings(metadata.Type), cfg, sink,
		func(*Config, *zap.Logger) (conns.Source, error) { return src, nil },
		func(*Config) resourceResolver { return fakeResolver{} })
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := r.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if src.closed != 1 {
		t.Fatalf("source closed %d times, want 1", src.closed)
	}
}

// TestGoldenTCPHealth: with the defaults, an open connection adds an RTT and
// an RTT variation sample at every poll and its retransmits as they grow;
// failed connects count by error.type with their SYN retransmits apart, a
// reset after the handshake counts as reset, a clean close not at all.
func TestGoldenTCPHealth(t *testing.T) {
	const (
		synSent, established, closed = 1 << 2, 1 << 1, 1 << 7
		econnrefused, etimedout      = 111, 110
		econnreset                   = 104
	)
	health := func(c conns.Conn, rtt, rttVar time.Duration, retrans uint32, syn uint8, transitions, errno uint16) conns.Conn {
		c.TCP = conns.TCPStats{RTT: rtt, RTTVar: rttVar, Retransmits: retrans, SynRetransmits: syn, StateTransitions: transitions, FailureReason: errno}
		return c
	}
	long := tcp(100, hostNetns, "10.0.0.1:50000", "10.0.0.2:443", conns.DirectionOutgoing, 1)
	clean := tcp(100, hostNetns, "10.0.0.1:50001", "10.0.0.2:443", conns.DirectionOutgoing, 2)
	refused := tcp(100, hostNetns, "10.0.0.1:50002", "10.0.0.9:80", conns.DirectionOutgoing, 3)
	timedOut := tcp(100, hostNetns, "10.0.0.1:50003", "10.0.0.9:80", conns.DirectionOutgoing, 4)
	reset := tcp(100, hostNetns, "10.0.0.1:50004", "10.0.0.2:443", conns.DirectionOutgoing, 5)
	src := &fakeSource{polls: []conns.Snapshot{
		{Time: t0.Add(10 * time.Second), Active: []conns.Conn{
			health(with(long, 100, 1000, 1, 2), 400*time.Microsecond, 100*time.Microsecond, 0, 0, synSent|established, 0),
		}},
		{
			Time: t0.Add(20 * time.Second),
			Active: []conns.Conn{
				health(with(long, 5000, 9000, 9, 8), 80*time.Millisecond, 20*time.Millisecond, 3, 0, synSent|established, 0),
			},
			Closed: []conns.Conn{
				closedAfter(health(with(clean, 10, 10, 1, 1), 300*time.Microsecond, 80*time.Microsecond, 0, 1, synSent|established|closed, 0), time.Second),
				closedAfter(health(refused, 0, 0, 0, 0, synSent|closed, econnrefused), time.Millisecond),
				closedAfter(health(timedOut, 0, 0, 0, 2, synSent|closed, etimedout), 7*time.Second),
				closedAfter(health(with(reset, 20, 0, 1, 0), 500*time.Microsecond, 200*time.Microsecond, 1, 0, synSent|established|closed, econnreset), 2*time.Second),
			},
		},
	}}
	s := newTestScraper(t, createDefaultConfig(), src, receivertest.NewNopSettings(metadata.Type))
	mds := scrapeAll(t, s, 2)
	compareGolden(t, "tcp_health", mds[1])
}
