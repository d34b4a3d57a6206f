// SPDX-License-Identifier: Apache-2.0

package aggregate

import (
	"net/netip"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// OverflowAttribute marks the series that holds what did not fit in
// MaxSeries, as the OpenTelemetry SDK does for its cardinality limit.
const OverflowAttribute = "otel.metric.overflow"

// histogramInfo describes the histograms mdatagen cannot generate at the
// Collector line we build on; README.md documents them next to documentation.md.
var histogramInfo = map[Metric]struct{ name, unit, description string }{
	ConnectionDuration: {"ebpfnet.connection.duration", "s", "Duration of closed connections, from when the tracer first saw them to their close."},
	TCPRTT:             {"ebpfnet.tcp.rtt", "s", "Smoothed round-trip time of TCP connections, one sample per connection per poll and at close."},
}

// HistogramName returns the metric name of histogram m.
func HistogramName(m Metric) string { return histogramInfo[m].name }

// PutAttrs writes the attributes of set that a holds into dst. The
// conditionally required ones (protocol name, RPC system, TLS version) are
// written only when known. The overflow series carries only
// otel.metric.overflow=true.
func PutAttrs(dst pcommon.Map, a Attrs, set AttrSet) {
	if a.Overflow {
		dst.PutBool(OverflowAttribute, true)
		return
	}
	if set&AttrConnectionDirection != 0 {
		dst.PutStr("ebpfnet.connection.direction", a.Direction.String())
	}
	if set&AttrErrorType != 0 && a.Errno != 0 {
		dst.PutStr("error.type", a.ErrorType())
	}
	if set&AttrIODirection != 0 && a.IODirection != IONone {
		dst.PutStr("network.io.direction", a.IODirection.String())
	}
	if set&AttrLocalAddress != 0 {
		dst.PutStr("network.local.address", addrString(a.LocalAddr))
	}
	if set&AttrLocalPort != 0 {
		dst.PutInt("network.local.port", int64(a.LocalPort))
	}
	if set&AttrPeerAddress != 0 {
		dst.PutStr("network.peer.address", addrString(a.PeerAddr))
	}
	if set&AttrPeerPort != 0 {
		dst.PutInt("network.peer.port", int64(a.PeerPort))
	}
	if v := a.Stack.Application.String(); set&AttrProtocolName != 0 && v != "" {
		dst.PutStr("network.protocol.name", v)
	}
	if set&AttrTransport != 0 {
		dst.PutStr("network.transport", a.Transport.String())
	}
	if set&AttrNetworkType != 0 {
		dst.PutStr("network.type", a.NetworkType())
	}
	if v := a.Stack.API.String(); set&AttrRPCSystem != 0 && v != "" {
		dst.PutStr("rpc.system", v)
	}
	if set&AttrServerPort != 0 {
		dst.PutInt("server.port", int64(a.ServerPort))
	}
	if v := a.Stack.Encryption.TLSVersion(); set&AttrTLSVersion != 0 && v != "" {
		dst.PutStr("tls.protocol.version", v)
	}
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// AppendHistogram appends histogram m with points to ms, as a cumulative
// explicit-bucket histogram; it appends nothing when points is empty.
func AppendHistogram(ms pmetric.MetricSlice, m Metric, set AttrSet, points []HistogramPoint, now time.Time) {
	if len(points) == 0 {
		return
	}
	info := histogramInfo[m]
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
		PutAttrs(dp.Attributes(), p.Attrs, set)
	}
}
