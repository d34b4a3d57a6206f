// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/metric/metricdata/metricdatatest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadatatest"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/nat"
)

// fakeNAT translates every connection to peer 10.244.1.7:8080 and reports
// scripted counts, one per poll.
type fakeNAT struct {
	polls    int
	scripted []natStats
	closed   bool
}

func (f *fakeNAT) annotate(snap *conns.Snapshot) {
	for i := range snap.Active {
		snap.Active[i].NAT = &conns.NAT{Peer: netip.MustParseAddrPort("10.244.1.7:8080")}
	}
	f.polls++
}
func (f *fakeNAT) stats() natStats { return f.scripted[f.polls-1] }
func (f *fakeNAT) close() error    { f.closed = true; return nil }

// TestNATIsAppliedBeforeAggregation: the translator sees every poll before
// the aggregator, its attributes reach the data points, its counts become
// the receiver's telemetry as deltas, and the last shutdown closes it.
func TestNATIsAppliedBeforeAggregation(t *testing.T) {
	tt := componenttest.NewTelemetry()
	t.Cleanup(func() { _ = tt.Shutdown(context.Background()) })
	c := with(tcp(100, hostNetns, "10.0.0.1:50000", "10.96.0.10:80", conns.DirectionOutgoing, 1), 10, 20, 1, 1)
	src := &fakeSource{polls: []conns.Snapshot{
		{Time: t0.Add(10 * time.Second), Active: []conns.Conn{c}},
		{Time: t0.Add(20 * time.Second), Active: []conns.Conn{c}},
	}}
	fn := &fakeNAT{scripted: []natStats{{Events: 5, Lost: 1}, {Events: 12, Lost: 1, Resyncs: 1, NetnsRefused: 2, Evictions: 3}}}
	reg := newRegistry(func(*Config, *zap.Logger) (conns.Source, error) { return src, nil },
		func(*Config) resourceResolver { return fakeResolver{} })
	reg.newNAT = func(*Config, *zap.Logger) natTranslator { return fn }
	reg.now = func() time.Time { return t0 }
	s := attachScraper(t, reg, createDefaultConfig(), metadatatest.NewSettings(tt))
	if err := s.start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	mds := scrapeAll(t, s, 2)
	found := false
	rms := mds[1].ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		ms := rms.At(i).ScopeMetrics().At(0).Metrics()
		for k := 0; k < ms.Len(); k++ {
			if ms.At(k).Name() != "ebpfnet.connection.io" {
				continue
			}
			dps := ms.At(k).Sum().DataPoints()
			for l := 0; l < dps.Len(); l++ {
				a := dps.At(l).Attributes()
				peer, _ := a.Get("ebpfnet.nat.peer.address")
				port, _ := a.Get("ebpfnet.nat.server.port")
				if peer.AsString() != "10.244.1.7" || port.Int() != 8080 {
					t.Errorf("data point without the translation: %v", a.AsRaw())
				}
				if _, ok := a.Get("ebpfnet.nat.local.address"); ok {
					t.Errorf("untranslated local end written: %v", a.AsRaw())
				}
				found = true
			}
		}
	}
	if !found {
		t.Fatal("no ebpfnet.connection.io data point")
	}
	opt := metricdatatest.IgnoreTimestamp()
	metadatatest.AssertEqualEbpfnetNatEvents(t, tt, []metricdata.DataPoint[int64]{{Value: 12}}, opt)
	metadatatest.AssertEqualEbpfnetNatEventsLost(t, tt, []metricdata.DataPoint[int64]{{Value: 1}}, opt)
	metadatatest.AssertEqualEbpfnetNatResyncs(t, tt, []metricdata.DataPoint[int64]{{Value: 1}}, opt)
	metadatatest.AssertEqualEbpfnetNatNetnsRefused(t, tt, []metricdata.DataPoint[int64]{{Value: 2}}, opt)
	metadatatest.AssertEqualEbpfnetNatTableEvictions(t, tt, []metricdata.DataPoint[int64]{{Value: 3}}, opt)
	if err := s.shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !fn.closed {
		t.Error("the translator was not closed with the tracer")
	}
}

// TestNATOffWithoutConntrack: where the kernel has no conntrack netlink, or
// it cannot be read, the translation turns itself off with one log line
// saying why, and the receiver runs on; nat::enabled false opens nothing.
func TestNATOffWithoutConntrack(t *testing.T) {
	defer func(f func(*nat.Table, *zap.Logger) (*nat.Watcher, error)) { newWatcher = f }(newWatcher)
	for _, tc := range []struct {
		err   error
		level string
	}{
		{fmt.Errorf("netlink netfilter socket: %w", nat.ErrNoConntrack), "info"},
		{errors.New("bind conntrack groups: operation not permitted"), "warn"},
	} {
		newWatcher = func(*nat.Table, *zap.Logger) (*nat.Watcher, error) { return nil, tc.err }
		core, logs := observer.New(zap.DebugLevel)
		if tr := newConntrackNAT(createDefaultConfig(), zap.New(core)); tr != nil {
			t.Fatalf("%v: translator %v, want none", tc.err, tr)
		}
		if logs.Len() != 1 || logs.All()[0].Level.String() != tc.level {
			t.Fatalf("%v: logs %v, want one %s line", tc.err, logs.All(), tc.level)
		}
	}
	newWatcher = func(*nat.Table, *zap.Logger) (*nat.Watcher, error) {
		t.Fatal("nat::enabled false opened conntrack")
		return nil, nil
	}
	cfg := createDefaultConfig()
	cfg.NAT.Enabled = false
	if tr := newConntrackNAT(cfg, zap.NewNop()); tr != nil {
		t.Fatal("translation on with nat::enabled false")
	}
}
