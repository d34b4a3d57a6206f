// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"errors"
	"fmt"
	"reflect"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/aggregate"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadata"
)

// The generated builder's record methods, by the attributes they take.
type (
	// connRecorder: the attributes of a connection.
	connRecorder = func(*metadata.MetricsBuilder, pcommon.Timestamp, int64, metadata.AttributeEbpfnetConnectionDirection,
		string, int64, string, int64, metadata.AttributeNetworkTransport, metadata.AttributeNetworkType, int64, ...metadata.MetricAttributeOption)
	// ioRecorder: those of a connection and network.io.direction.
	ioRecorder = func(*metadata.MetricsBuilder, pcommon.Timestamp, int64, metadata.AttributeEbpfnetConnectionDirection, metadata.AttributeNetworkIoDirection,
		string, int64, string, int64, metadata.AttributeNetworkTransport, metadata.AttributeNetworkType, int64, ...metadata.MetricAttributeOption)
	// failureRecorder: those of a connection and error.type.
	failureRecorder = func(*metadata.MetricsBuilder, pcommon.Timestamp, int64, metadata.AttributeEbpfnetConnectionDirection, metadata.AttributeErrorType,
		string, int64, string, int64, metadata.AttributeNetworkTransport, metadata.AttributeNetworkType, int64, ...metadata.MetricAttributeOption)
)

// metricDef is one metric of the receiver. The sums are declared in
// metadata.yaml and recorded through one of the generated builder's methods;
// the histograms, which mdatagen cannot generate at this Collector line, are
// declared here.
type metricDef struct {
	name string // as metadata.yaml names it; the key under `metrics:`
	// A sum has one recorder.
	conn    connRecorder
	io      ioRecorder
	failure failureRecorder
	// A histogram has its unit, description and entry in Config.
	unit, description string
	histogram         func(*Config) *HistogramMetricConfig
}

// metrics is every metric the aggregator computes, by aggregate.Metric.
var metrics = [aggregate.NumMetrics]metricDef{
	aggregate.ConnectionIO:      {name: "ebpfnet.connection.io", io: (*metadata.MetricsBuilder).RecordEbpfnetConnectionIoDataPoint},
	aggregate.ConnectionPackets: {name: "ebpfnet.connection.packet.count", io: (*metadata.MetricsBuilder).RecordEbpfnetConnectionPacketCountDataPoint},
	aggregate.ConnectionOpened:  {name: "ebpfnet.connection.opened", conn: (*metadata.MetricsBuilder).RecordEbpfnetConnectionOpenedDataPoint},
	aggregate.ConnectionClosed:  {name: "ebpfnet.connection.closed", conn: (*metadata.MetricsBuilder).RecordEbpfnetConnectionClosedDataPoint},
	aggregate.ConnectionCount:   {name: "ebpfnet.connection.count", conn: (*metadata.MetricsBuilder).RecordEbpfnetConnectionCountDataPoint},
	aggregate.TCPRetransmits:    {name: "ebpfnet.tcp.retransmit.count", conn: (*metadata.MetricsBuilder).RecordEbpfnetTCPRetransmitCountDataPoint},
	aggregate.TCPSynRetransmits: {name: "ebpfnet.tcp.syn_retransmit.count", conn: (*metadata.MetricsBuilder).RecordEbpfnetTCPSynRetransmitCountDataPoint},
	aggregate.TCPFailures:       {name: "ebpfnet.tcp.failure.count", failure: (*metadata.MetricsBuilder).RecordEbpfnetTCPFailureCountDataPoint},
	aggregate.ConnectionDuration: {name: "ebpfnet.connection.duration", unit: "s", histogram: func(c *Config) *HistogramMetricConfig { return &c.ConnectionDuration },
		description: "Duration of closed connections, from when the tracer first saw them to their close."},
	aggregate.TCPRTT: {name: "ebpfnet.tcp.rtt", unit: "s", histogram: func(c *Config) *HistogramMetricConfig { return &c.TCPRTT },
		description: "Smoothed round-trip time (SRTT) of TCP connections, sampled once per connection at every poll while it is open and once at its close."},
	aggregate.TCPRTTVariation: {name: "ebpfnet.tcp.rtt.variation", unit: "s", histogram: func(c *Config) *HistogramMetricConfig { return &c.TCPRTTVariation },
		description: "Round-trip time variation (RTTVAR, RFC 6298) of TCP connections, sampled with ebpfnet.tcp.rtt."},
}

// record writes one point of a sum through the builder.
func (d *metricDef) record(mb *metadata.MetricsBuilder, ts pcommon.Timestamp, v int64, a *pointAttrs) {
	switch {
	case d.conn != nil:
		d.conn(mb, ts, v, a.direction(), a.localAddr(), a.localPort(), a.peerAddr(), a.peerPort(), a.transport(), a.networkType(), a.serverPort(), a.opts...)
	case d.io != nil:
		d.io(mb, ts, v, a.direction(), a.ioDirection(), a.localAddr(), a.localPort(), a.peerAddr(), a.peerPort(), a.transport(), a.networkType(), a.serverPort(), a.opts...)
	case d.failure != nil:
		d.failure(mb, ts, v, a.direction(), a.errorType(), a.localAddr(), a.localPort(), a.peerAddr(), a.peerPort(), a.transport(), a.networkType(), a.serverPort(), a.opts...)
	}
}

// sumConfig reads a sum's enabled flag and attributes from the generated
// config: the field whose mapstructure key is the metric's name.
func sumConfig(mc *metadata.MetricsConfig, name string) (aggregate.MetricConfig, error) {
	v := reflect.ValueOf(mc).Elem()
	for i := range v.NumField() {
		if v.Type().Field(i).Tag.Get("mapstructure") != name {
			continue
		}
		f := v.Field(i)
		attrs := f.FieldByName("EnabledAttributes")
		names := make([]string, attrs.Len())
		for j := range names {
			names[j] = attrs.Index(j).String()
		}
		set, err := aggregate.ParseAttrSet(names)
		return aggregate.MetricConfig{Enabled: f.FieldByName("Enabled").Bool(), Attrs: set}, err
	}
	return aggregate.MetricConfig{}, fmt.Errorf("metric %s is not in metadata.yaml", name)
}

// aggregateConfig derives what the aggregator computes from the receiver
// config: which metrics are on and which attributes each keeps. The
// aggregator keys series on exactly the attributes a metric emits, so the
// series count max_series bounds is the one users see, and the metrics
// builder never has two points with the same attributes to merge.
func aggregateConfig(cfg *Config) (aggregate.Config, error) {
	out := aggregate.Config{MaxSeries: cfg.Aggregation.MaxSeries, SeriesExpiry: cfg.Aggregation.SeriesExpiry, OtherPeers: cfg.Aggregation.OtherPeers}
	var errs []error
	groups, err := cfg.Aggregation.peerGroups()
	if err != nil {
		errs = append(errs, err)
	}
	out.PeerGroups = groups
	for m, def := range metrics {
		var mc aggregate.MetricConfig
		var err error
		if def.histogram != nil {
			h := def.histogram(cfg)
			mc.Enabled = h.Enabled
			mc.Attrs, err = histogramAttrs(h.Attributes)
		} else {
			// The generated Validate rejects attributes a metric does not
			// have: an error here is the attribute table lagging behind
			// metadata.yaml (a test pins that they agree).
			mc, err = sumConfig(&cfg.Metrics, def.name)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("metrics::%s::attributes: %w", def.name, err))
		}
		out.Metrics[m] = mc
	}
	if err := errors.Join(errs...); err != nil {
		return aggregate.Config{}, err
	}
	return out, nil
}
