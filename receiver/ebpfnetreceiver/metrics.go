// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	conventions "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/aggregate"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadata"
)

// aggregateConfig derives what the aggregator computes from the receiver
// config: which metrics are on and which attributes each keeps. The
// aggregator keys series on exactly the attributes a metric emits, so the
// series count max_series bounds is the one users see, and the metrics
// builder never has two points with the same attributes to merge.
func aggregateConfig(cfg *Config) (aggregate.Config, error) {
	mc := cfg.Metrics
	var out aggregate.Config
	out.MaxSeries = cfg.Aggregation.MaxSeries
	out.SeriesExpiry = cfg.Aggregation.SeriesExpiry
	var errs []error
	set := func(m aggregate.Metric, name string, enabled bool, attrs aggregate.AttrSet, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("metrics::%s::attributes: %w", name, err))
		}
		out.Metrics[m] = aggregate.MetricConfig{Enabled: enabled, Attrs: attrs}
	}
	a, err := aggregate.ParseAttrSet(mc.EbpfnetConnectionIo.EnabledAttributes)
	set(aggregate.ConnectionIO, "ebpfnet.connection.io", mc.EbpfnetConnectionIo.Enabled, a, err)
	a, err = aggregate.ParseAttrSet(mc.EbpfnetConnectionPacketCount.EnabledAttributes)
	set(aggregate.ConnectionPackets, "ebpfnet.connection.packet.count", mc.EbpfnetConnectionPacketCount.Enabled, a, err)
	a, err = aggregate.ParseAttrSet(mc.EbpfnetConnectionOpened.EnabledAttributes)
	set(aggregate.ConnectionOpened, "ebpfnet.connection.opened", mc.EbpfnetConnectionOpened.Enabled, a, err)
	a, err = aggregate.ParseAttrSet(mc.EbpfnetConnectionClosed.EnabledAttributes)
	set(aggregate.ConnectionClosed, "ebpfnet.connection.closed", mc.EbpfnetConnectionClosed.Enabled, a, err)
	a, err = aggregate.ParseAttrSet(mc.EbpfnetConnectionCount.EnabledAttributes)
	set(aggregate.ConnectionCount, "ebpfnet.connection.count", mc.EbpfnetConnectionCount.Enabled, a, err)
	a, err = aggregate.ParseAttrSet(mc.EbpfnetTCPRetransmitCount.EnabledAttributes)
	set(aggregate.TCPRetransmits, "ebpfnet.tcp.retransmit.count", mc.EbpfnetTCPRetransmitCount.Enabled, a, err)
	a, err = aggregate.ParseAttrSet(mc.EbpfnetTCPFailureCount.EnabledAttributes)
	set(aggregate.TCPFailures, "ebpfnet.tcp.failure.count", mc.EbpfnetTCPFailureCount.Enabled, a, err)
	a, err = histogramAttrs(cfg.ConnectionDuration.Attributes)
	set(aggregate.ConnectionDuration, durationKey, cfg.ConnectionDuration.Enabled, a, err)
	a, err = histogramAttrs(cfg.TCPRTT.Attributes)
	set(aggregate.TCPRTT, rttKey, cfg.TCPRTT.Enabled, a, err)
	if len(errs) > 0 {
		return aggregate.Config{}, errors.Join(errs...)
	}
	return out, nil
}

// build turns the aggregator's series into pmetric: the sums through the
// generated metrics builder, the histograms with pmetric directly, one
// ResourceMetrics per process and network namespace, the overflow series
// last under an empty resource.
func (s *ebpfnetScraper) build(now time.Time) pmetric.Metrics {
	out := pmetric.NewMetrics()
	ts := pcommon.NewTimestampFromTime(now)
	for _, rd := range s.agg.Collect() {
		recorded := 0
		for m, points := range rd.Sums {
			for _, p := range points {
				s.record(aggregate.Metric(m), ts, p)
				recorded++
			}
		}
		var md pmetric.Metrics
		var res pcommon.Resource
		if rd.Overflow {
			res = pcommon.NewResource()
			md = s.mb.Emit()
			markOverflow(md)
		} else {
			rb := s.mb.NewResourceBuilder()
			rb.SetProcessPid(int64(rd.Resource.PID))
			rb.SetEbpfnetNetnsInode(int64(rd.Resource.Netns))
			if rd.Resource.ExecutableName != "" {
				rb.SetProcessExecutableName(rd.Resource.ExecutableName)
			}
			if rd.Resource.CommandLine != "" {
				rb.SetProcessCommandLine(rd.Resource.CommandLine)
			}
			if rd.Resource.ContainerID != "" {
				rb.SetContainerID(rd.Resource.ContainerID)
			}
			res = rb.Emit()
			md = s.mb.Emit(metadata.WithResource(res))
		}
		rms := md.ResourceMetrics()
		if rms.Len() == 0 {
			if recorded > 0 {
				continue // the resource attribute filters excluded this resource
			}
			rm := rms.AppendEmpty()
			rm.SetSchemaUrl(conventions.SchemaURL)
			res.CopyTo(rm.Resource())
			sm := rm.ScopeMetrics().AppendEmpty()
			sm.Scope().SetName(metadata.ScopeName)
			sm.Scope().SetVersion(s.set.BuildInfo.Version)
		}
		ms := rms.At(0).ScopeMetrics().At(0).Metrics()
		for _, m := range []aggregate.Metric{aggregate.ConnectionDuration, aggregate.TCPRTT} {
			aggregate.AppendHistogram(ms, m, s.attrs[m], rd.Histograms[m], now)
		}
		if ms.Len() == 0 {
			continue
		}
		rms.MoveAndAppendTo(out.ResourceMetrics())
	}
	return out
}

// markOverflow leaves only otel.metric.overflow=true on the overflow
// series, as the OpenTelemetry SDK does: the builder wrote the zero value of
// every attribute the metric keeps.
func markOverflow(md pmetric.Metrics) {
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				dps := ms.At(k).Sum().DataPoints()
				for l := 0; l < dps.Len(); l++ {
					attrs := dps.At(l).Attributes()
					attrs.Clear()
					attrs.PutBool(aggregate.OverflowAttribute, true)
				}
			}
		}
	}
}

// record writes one sum point through the metrics builder, with the start
// timestamp of its own series.
func (s *ebpfnetScraper) record(m aggregate.Metric, ts pcommon.Timestamp, p aggregate.Point) {
	// Reset only moves the builder's start time, which it stamps on every
	// point recorded next; recorded points stay. This is how each series
	// keeps the start timestamp it got when it first appeared.
	s.mb.Reset(metadata.WithStartTime(pcommon.NewTimestampFromTime(p.Start)))
	a := p.Attrs
	dir := metadata.MapAttributeEbpfnetConnectionDirection[a.Direction.String()]
	transport := metadata.MapAttributeNetworkTransport[a.Transport.String()]
	netType := metadata.MapAttributeNetworkType[a.NetworkType()]
	ioDir := metadata.MapAttributeNetworkIoDirection[a.IODirection.String()]
	local, peer := addrString(a.LocalAddr.String(), a.LocalAddr.IsValid()), addrString(a.PeerAddr.String(), a.PeerAddr.IsValid())
	lport, pport, sport := int64(a.LocalPort), int64(a.PeerPort), int64(a.ServerPort)
	var opts []metadata.MetricAttributeOption
	if v := a.Stack.Application.String(); v != "" {
		opts = append(opts, metadata.WithNetworkProtocolNameMetricAttribute(v))
	}
	if v := a.Stack.API.String(); v != "" {
		opts = append(opts, metadata.WithRPCSystemMetricAttribute(v))
	}
	if v := a.Stack.Encryption.TLSVersion(); v != "" {
		opts = append(opts, metadata.WithTLSProtocolVersionMetricAttribute(v))
	}
	v := p.Value
	switch m {
	case aggregate.ConnectionIO:
		s.mb.RecordEbpfnetConnectionIoDataPoint(ts, v, dir, ioDir, local, lport, peer, pport, transport, netType, sport, opts...)
	case aggregate.ConnectionPackets:
		s.mb.RecordEbpfnetConnectionPacketCountDataPoint(ts, v, dir, ioDir, local, lport, peer, pport, transport, netType, sport, opts...)
	case aggregate.ConnectionOpened:
		s.mb.RecordEbpfnetConnectionOpenedDataPoint(ts, v, dir, local, lport, peer, pport, transport, netType, sport, opts...)
	case aggregate.ConnectionClosed:
		s.mb.RecordEbpfnetConnectionClosedDataPoint(ts, v, dir, local, lport, peer, pport, transport, netType, sport, opts...)
	case aggregate.ConnectionCount:
		s.mb.RecordEbpfnetConnectionCountDataPoint(ts, v, dir, local, lport, peer, pport, transport, netType, sport, opts...)
	case aggregate.TCPRetransmits:
		s.mb.RecordEbpfnetTCPRetransmitCountDataPoint(ts, v, dir, local, lport, peer, pport, transport, netType, sport, opts...)
	case aggregate.TCPFailures:
		s.mb.RecordEbpfnetTCPFailureCountDataPoint(ts, v, dir, a.ErrorType(), local, lport, peer, pport, transport, netType, sport, opts...)
	}
}

func addrString(s string, valid bool) string {
	if !valid {
		return ""
	}
	return s
}
