// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	conventions "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/aggregate"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadata"
)

// This file is all the pdata the receiver writes: the aggregator hands it
// plain values (aggregate.ResourceData), it returns pmetric.Metrics.

// overflowAttribute marks the series that holds what did not fit in
// max_series, as the OpenTelemetry SDK does for its cardinality limit.
const overflowAttribute = "otel.metric.overflow"

// output turns the aggregator's series into pmetric: the sums through the
// generated metrics builder, the histograms with pmetric directly.
type output struct {
	mb      *metadata.MetricsBuilder
	attrs   [aggregate.NumMetrics]aggregate.AttrSet // what each metric keeps
	version string                                  // the scope version
}

// build writes one ResourceMetrics per process and network namespace, the
// overflow series last under an empty resource.
func (o *output) build(rds []aggregate.ResourceData, now time.Time) pmetric.Metrics {
	out := pmetric.NewMetrics()
	ts := pcommon.NewTimestampFromTime(now)
	var pa pointAttrs
	for _, rd := range rds {
		recorded := 0
		for m, points := range rd.Sums {
			for _, p := range points {
				// Reset only moves the builder's start time, which it stamps on
				// every point recorded next; recorded points stay. This is how
				// each series keeps the start timestamp it got when it first
				// appeared.
				o.mb.Reset(metadata.WithStartTime(pcommon.NewTimestampFromTime(p.Start)))
				pa.set(p.Attrs)
				metrics[m].record(o.mb, ts, p.Value, &pa)
				recorded++
			}
		}
		var md pmetric.Metrics
		var res pcommon.Resource
		if rd.Overflow {
			res = pcommon.NewResource()
			md = o.mb.Emit()
			markOverflow(md)
		} else {
			res = o.resource(rd.Resource)
			md = o.mb.Emit(metadata.WithResource(res))
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
			sm.Scope().SetVersion(o.version)
		}
		ms := rms.At(0).ScopeMetrics().At(0).Metrics()
		for _, m := range []aggregate.Metric{aggregate.ConnectionDuration, aggregate.TCPRTT, aggregate.TCPRTTVariation} {
			appendHistogram(ms, m, o.attrs[m], rd.Histograms[m], now)
		}
		if ms.Len() == 0 {
			continue
		}
		rms.MoveAndAppendTo(out.ResourceMetrics())
	}
	return out
}

func (o *output) resource(r aggregate.Resource) pcommon.Resource {
	return buildResource(o.mb.NewResourceBuilder(), r)
}

// buildResource writes the resource attributes of a process and network
// namespace, for the metrics and the failure logs alike; rb leaves out those
// resource_attributes turns off.
func buildResource(rb *metadata.ResourceBuilder, r aggregate.Resource) pcommon.Resource {
	rb.SetProcessPid(int64(r.PID))
	rb.SetEbpfnetNetnsInode(int64(r.Netns))
	if r.ExecutableName != "" {
		rb.SetProcessExecutableName(r.ExecutableName)
	}
	if r.CommandLine != "" {
		rb.SetProcessCommandLine(r.CommandLine)
	}
	if r.ContainerID != "" {
		rb.SetContainerID(r.ContainerID)
	}
	if r.PodUID != "" {
		rb.SetK8sPodUID(r.PodUID)
	}
	return rb.Emit()
}

// markOverflow leaves only otel.metric.overflow=true on the overflow
// series, as the OpenTelemetry SDK does: the builder wrote the zero value of
// every attribute the metric keeps. md is one Emit: one resource, one scope.
func markOverflow(md pmetric.Metrics) {
	if md.ResourceMetrics().Len() == 0 {
		return
	}
	ms := md.ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	for k := 0; k < ms.Len(); k++ {
		dps := ms.At(k).Sum().DataPoints()
		for l := 0; l < dps.Len(); l++ {
			attrs := dps.At(l).Attributes()
			attrs.Clear()
			attrs.PutBool(overflowAttribute, true)
		}
	}
}

// pointAttrs gives the generated builder one point's attributes in the types
// its record functions take.
type pointAttrs struct {
	a    aggregate.Attrs
	opts []metadata.MetricAttributeOption
}

// optionalAttrs are the attributes the builder takes as options, written only
// when known.
var optionalAttrs = []struct {
	at   aggregate.AttrSet
	with func(string) metadata.MetricAttributeOption
}{
	{aggregate.AttrProtocolName, metadata.WithNetworkProtocolNameMetricAttribute},
	{aggregate.AttrProtocolVersion, metadata.WithNetworkProtocolVersionMetricAttribute},
	{aggregate.AttrRPCSystem, metadata.WithRPCSystemMetricAttribute},
	{aggregate.AttrTLSVersion, metadata.WithTLSProtocolVersionMetricAttribute},
	{aggregate.AttrNATPeerAddress, metadata.WithEbpfnetNatPeerAddressMetricAttribute},
	{aggregate.AttrNATLocalAddress, metadata.WithEbpfnetNatLocalAddressMetricAttribute},
	{aggregate.AttrServerAddress, metadata.WithServerAddressMetricAttribute},
}

func (p *pointAttrs) set(a aggregate.Attrs) {
	p.a, p.opts = a, p.opts[:0]
	for _, o := range optionalAttrs {
		if v := a.Str(o.at); v != "" {
			p.opts = append(p.opts, o.with(v))
		}
	}
	if v := a.Int(aggregate.AttrNATServerPort); v != 0 { // 0: not translated
		p.opts = append(p.opts, metadata.WithEbpfnetNatServerPortMetricAttribute(v))
	}
}

func (p *pointAttrs) direction() metadata.AttributeEbpfnetConnectionDirection {
	return metadata.MapAttributeEbpfnetConnectionDirection[p.a.Str(aggregate.AttrConnectionDirection)]
}

func (p *pointAttrs) ioDirection() metadata.AttributeNetworkIoDirection {
	return metadata.MapAttributeNetworkIoDirection[p.a.Str(aggregate.AttrIODirection)]
}

func (p *pointAttrs) transport() metadata.AttributeNetworkTransport {
	return metadata.MapAttributeNetworkTransport[p.a.Str(aggregate.AttrTransport)]
}

func (p *pointAttrs) networkType() metadata.AttributeNetworkType {
	return metadata.MapAttributeNetworkType[p.a.Str(aggregate.AttrNetworkType)]
}

func (p *pointAttrs) errorType() metadata.AttributeErrorType {
	return metadata.MapAttributeErrorType[p.a.Str(aggregate.AttrErrorType)]
}

func (p *pointAttrs) localAddr() string { return p.a.Str(aggregate.AttrLocalAddress) }
func (p *pointAttrs) peerAddr() string  { return p.a.Str(aggregate.AttrPeerAddress) }
func (p *pointAttrs) localPort() int64  { return p.a.Int(aggregate.AttrLocalPort) }
func (p *pointAttrs) peerPort() int64   { return p.a.Int(aggregate.AttrPeerPort) }
func (p *pointAttrs) serverPort() int64 { return p.a.Int(aggregate.AttrServerPort) }

// putAttrs writes the attributes of set that a holds into dst, from the
// attribute table; the overflow series carries only otel.metric.overflow=true.
func putAttrs(dst pcommon.Map, a aggregate.Attrs, set aggregate.AttrSet) {
	if a.Overflow {
		dst.PutBool(overflowAttribute, true)
		return
	}
	a.Values(set, func(v aggregate.Value) {
		if v.IsInt {
			dst.PutInt(v.Key, v.Int)
		} else {
			dst.PutStr(v.Key, v.Str)
		}
	})
}

// appendHistogram appends histogram m with points to ms, as a cumulative
// explicit-bucket histogram; it appends nothing when points is empty.
func appendHistogram(ms pmetric.MetricSlice, m aggregate.Metric, set aggregate.AttrSet, points []aggregate.HistogramPoint, now time.Time) {
	if len(points) == 0 {
		return
	}
	info := &metrics[m]
	metric := ms.AppendEmpty()
	metric.SetName(info.name)
	metric.SetUnit(info.unit)
	metric.SetDescription(info.description)
	h := metric.SetEmptyHistogram()
	h.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	dps := h.DataPoints()
	dps.EnsureCapacity(len(points))
	ts := pcommon.NewTimestampFromTime(now)
	for _, p := range points {
		dp := dps.AppendEmpty()
		dp.SetStartTimestamp(pcommon.NewTimestampFromTime(p.Start))
		dp.SetTimestamp(ts)
		dp.SetCount(p.Count)
		dp.SetSum(p.Sum)
		if p.Count > 0 {
			dp.SetMin(p.Min)
			dp.SetMax(p.Max)
		}
		dp.ExplicitBounds().FromRaw(p.Bounds)
		dp.BucketCounts().FromRaw(p.BucketCounts)
		putAttrs(dp.Attributes(), p.Attrs, set)
	}
}
