// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"errors"
	"fmt"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/aggregate"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadata"
)

// metricDef is one metric of the receiver: where its configuration is and, for
// the sums, how the generated builder records a point of it. The sums are
// declared in metadata.yaml; the histograms, which mdatagen cannot generate
// at this Collector line, are declared here (histogramKeys, histogramInfo).
type metricDef struct {
	// sum returns the generated config's enabled flag and attributes.
	sum func(*metadata.MetricsConfig) (bool, aggregate.AttrSet, error)
	// record writes one point through the builder (sums only).
	record func(mb *metadata.MetricsBuilder, ts pcommon.Timestamp, v int64, a *pointAttrs)
	// histogram: its entry in Config (histograms only).
	histogram func(*Config) *HistogramMetricConfig
}

// sumConfig adapts one generated metric config.
func sumConfig[K ~string](get func(*metadata.MetricsConfig) (bool, []K)) func(*metadata.MetricsConfig) (bool, aggregate.AttrSet, error) {
	return func(mc *metadata.MetricsConfig) (bool, aggregate.AttrSet, error) {
		enabled, names := get(mc)
		set, err := aggregate.ParseAttrSet(names)
		return enabled, set, err
	}
}

// metrics is every metric the aggregator computes, by aggregate.Metric. The
// positional attributes of each record call are the generated builder's API.
var metrics = [aggregate.NumMetrics]metricDef{
	aggregate.ConnectionIO: {
		sum: sumConfig(func(mc *metadata.MetricsConfig) (bool, []metadata.EbpfnetConnectionIoMetricAttributeKey) {
			return mc.EbpfnetConnectionIo.Enabled, mc.EbpfnetConnectionIo.EnabledAttributes
		}),
		record: func(mb *metadata.MetricsBuilder, ts pcommon.Timestamp, v int64, a *pointAttrs) {
			mb.RecordEbpfnetConnectionIoDataPoint(ts, v, a.direction(), a.ioDirection(), a.localAddr(), a.localPort(), a.peerAddr(), a.peerPort(), a.transport(), a.networkType(), a.serverPort(), a.opts...)
		},
	},
	aggregate.ConnectionPackets: {
		sum: sumConfig(func(mc *metadata.MetricsConfig) (bool, []metadata.EbpfnetConnectionPacketCountMetricAttributeKey) {
			return mc.EbpfnetConnectionPacketCount.Enabled, mc.EbpfnetConnectionPacketCount.EnabledAttributes
		}),
		record: func(mb *metadata.MetricsBuilder, ts pcommon.Timestamp, v int64, a *pointAttrs) {
			mb.RecordEbpfnetConnectionPacketCountDataPoint(ts, v, a.direction(), a.ioDirection(), a.localAddr(), a.localPort(), a.peerAddr(), a.peerPort(), a.transport(), a.networkType(), a.serverPort(), a.opts...)
		},
	},
	aggregate.ConnectionOpened: {
		sum: sumConfig(func(mc *metadata.MetricsConfig) (bool, []metadata.EbpfnetConnectionOpenedMetricAttributeKey) {
			return mc.EbpfnetConnectionOpened.Enabled, mc.EbpfnetConnectionOpened.EnabledAttributes
		}),
		record: func(mb *metadata.MetricsBuilder, ts pcommon.Timestamp, v int64, a *pointAttrs) {
			mb.RecordEbpfnetConnectionOpenedDataPoint(ts, v, a.direction(), a.localAddr(), a.localPort(), a.peerAddr(), a.peerPort(), a.transport(), a.networkType(), a.serverPort(), a.opts...)
		},
	},
	aggregate.ConnectionClosed: {
		sum: sumConfig(func(mc *metadata.MetricsConfig) (bool, []metadata.EbpfnetConnectionClosedMetricAttributeKey) {
			return mc.EbpfnetConnectionClosed.Enabled, mc.EbpfnetConnectionClosed.EnabledAttributes
		}),
		record: func(mb *metadata.MetricsBuilder, ts pcommon.Timestamp, v int64, a *pointAttrs) {
			mb.RecordEbpfnetConnectionClosedDataPoint(ts, v, a.direction(), a.localAddr(), a.localPort(), a.peerAddr(), a.peerPort(), a.transport(), a.networkType(), a.serverPort(), a.opts...)
		},
	},
	aggregate.ConnectionCount: {
		sum: sumConfig(func(mc *metadata.MetricsConfig) (bool, []metadata.EbpfnetConnectionCountMetricAttributeKey) {
			return mc.EbpfnetConnectionCount.Enabled, mc.EbpfnetConnectionCount.EnabledAttributes
		}),
		record: func(mb *metadata.MetricsBuilder, ts pcommon.Timestamp, v int64, a *pointAttrs) {
			mb.RecordEbpfnetConnectionCountDataPoint(ts, v, a.direction(), a.localAddr(), a.localPort(), a.peerAddr(), a.peerPort(), a.transport(), a.networkType(), a.serverPort(), a.opts...)
		},
	},
	aggregate.TCPRetransmits: {
		sum: sumConfig(func(mc *metadata.MetricsConfig) (bool, []metadata.EbpfnetTCPRetransmitCountMetricAttributeKey) {
			return mc.EbpfnetTCPRetransmitCount.Enabled, mc.EbpfnetTCPRetransmitCount.EnabledAttributes
		}),
		record: func(mb *metadata.MetricsBuilder, ts pcommon.Timestamp, v int64, a *pointAttrs) {
			mb.RecordEbpfnetTCPRetransmitCountDataPoint(ts, v, a.direction(), a.localAddr(), a.localPort(), a.peerAddr(), a.peerPort(), a.transport(), a.networkType(), a.serverPort(), a.opts...)
		},
	},
	aggregate.TCPFailures: {
		sum: sumConfig(func(mc *metadata.MetricsConfig) (bool, []metadata.EbpfnetTCPFailureCountMetricAttributeKey) {
			return mc.EbpfnetTCPFailureCount.Enabled, mc.EbpfnetTCPFailureCount.EnabledAttributes
		}),
		record: func(mb *metadata.MetricsBuilder, ts pcommon.Timestamp, v int64, a *pointAttrs) {
			mb.RecordEbpfnetTCPFailureCountDataPoint(ts, v, a.direction(), a.errorType(), a.localAddr(), a.localPort(), a.peerAddr(), a.peerPort(), a.transport(), a.networkType(), a.serverPort(), a.opts...)
		},
	},
	aggregate.ConnectionDuration: {histogram: func(c *Config) *HistogramMetricConfig { return &c.ConnectionDuration }},
	aggregate.TCPRTT:             {histogram: func(c *Config) *HistogramMetricConfig { return &c.TCPRTT }},
}

// aggregateConfig derives what the aggregator computes from the receiver
// config: which metrics are on and which attributes each keeps. The
// aggregator keys series on exactly the attributes a metric emits, so the
// series count max_series bounds is the one users see, and the metrics
// builder never has two points with the same attributes to merge.
func aggregateConfig(cfg *Config) (aggregate.Config, error) {
	out := aggregate.Config{MaxSeries: cfg.Aggregation.MaxSeries, SeriesExpiry: cfg.Aggregation.SeriesExpiry}
	var errs []error
	for m, def := range metrics {
		var mc aggregate.MetricConfig
		var err error
		if def.histogram != nil {
			h := def.histogram(cfg)
			mc.Enabled = h.Enabled
			if mc.Attrs, err = histogramAttrs(h.Attributes); err != nil {
				err = fmt.Errorf("metrics::%s::attributes: %w", histogramInfo[aggregate.Metric(m)].name, err)
			}
		} else if mc.Enabled, mc.Attrs, err = def.sum(&cfg.Metrics); err != nil {
			// The generated Validate rejects attributes a metric does not
			// have: this is an attribute metadata.yaml has and the table not.
			err = fmt.Errorf("metrics: %w", err)
		}
		errs = append(errs, err)
		out.Metrics[m] = mc
	}
	if err := errors.Join(errs...); err != nil {
		return aggregate.Config{}, err
	}
	return out, nil
}
