// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver/receivertest"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sys/unix"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver"
)

// scrapeLine is what the collector child prints after each scrape, one JSON object a line.
type scrapeLine struct {
	Ready     bool            `json:"ready,omitempty"`
	Seq       int             `json:"seq"`
	WallNS    int64           `json:"wall_ns"`     // the scrape: tracer poll, aggregation, metrics build
	CPUNS     int64           `json:"cpu_ns"`      // process CPU time during the scrape
	ProcCPUNS int64           `json:"proc_cpu_ns"` // process CPU time since start
	RSSKB     int64           `json:"rss_kb"`
	HWMKB     int64           `json:"hwm_kb"`
	Points    int             `json:"points"`
	Closed    map[int64]int64 `json:"closed"` // ebpfnet.connection.closed by server.port
	Open      map[int64]int64 `json:"open"`   // ebpfnet.connection.count by server.port
	Sent      map[int64]int64 `json:"sent"`   // ebpfnet.connection.io transmit bytes by server.port
	// ClosedOut is Closed of the outgoing ends only (the connecting side): with Closed, it
	// tells which end of a connection a missing close was.
	ClosedOut map[int64]int64  `json:"closed_out"`
	Telemetry map[string]int64 `json:"telemetry"`
}

// runCollector runs the ebpfnet receiver as the collector would (factory, default config but
// the interval, table size, protocol classification and TCP health metrics, scraper controller) with a consumer
// that reports each scrape.
// It stops when stdin closes or on SIGTERM.
func runCollector(args []string) error {
	fs := flag.NewFlagSet("collector", flag.ExitOnError)
	interval := fs.Duration("interval", 10*time.Second, "collection_interval")
	maxConns := fs.Int64("max", 65536, "max_tracked_connections")
	f := ebpfnetreceiver.NewFactory()
	cfg := f.CreateDefaultConfig().(*ebpfnetreceiver.Config)
	fs.BoolVar(&cfg.ProtocolClassification, "classify", cfg.ProtocolClassification, "protocol_classification (default: the receiver's)")
	health := fs.Bool("tcp-health", true, "false: disable the TCP health metrics (RTT, RTT variation, retransmits), so the tracer reads them only at close (tracer.Config.CloseOnlyTCPHealth)")
	_ = fs.Parse(args)
	if !*health {
		cfg.TCPRTT.Enabled, cfg.TCPRTTVariation.Enabled = false, false
		cfg.Metrics.EbpfnetTCPRetransmitCount.Enabled, cfg.Metrics.EbpfnetTCPSynRetransmitCount.Enabled = false, false
	}

	cfg.CollectionInterval = *interval
	cfg.MaxTrackedConnections = *maxConns

	set := receivertest.NewNopSettings(f.Type())
	spans := &spanRecorder{}
	set.TracerProvider = spans
	reader := sdkmetric.NewManualReader()
	set.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))

	out := json.NewEncoder(os.Stdout)
	var mu sync.Mutex
	seq := 0
	next, err := consumer.NewMetrics(func(ctx context.Context, md pmetric.Metrics) error {
		mu.Lock()
		defer mu.Unlock()
		seq++
		wall, cpu := spans.last()
		l := scrapeLine{Seq: seq, WallNS: wall, CPUNS: cpu, ProcCPUNS: procCPU(), Points: md.DataPointCount(),
			Closed: sumByPort(md, "ebpfnet.connection.closed", "", ""), Open: sumByPort(md, "ebpfnet.connection.count", "", ""),
			Sent:      sumByPort(md, "ebpfnet.connection.io", "network.io.direction", "transmit"),
			ClosedOut: sumByPort(md, "ebpfnet.connection.closed", "ebpfnet.connection.direction", "outgoing"),
			Telemetry: telemetry(ctx, reader)}
		l.RSSKB, l.HWMKB = rss()
		return out.Encode(l)
	})
	if err != nil {
		return err
	}
	ctx := context.Background()
	r, err := f.CreateMetrics(ctx, set, cfg, next)
	if err != nil {
		return err
	}
	if err := r.Start(ctx, componenttest.NewNopHost()); err != nil {
		return err
	}
	mu.Lock()
	_ = out.Encode(scrapeLine{Ready: true})
	mu.Unlock()

	stop := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(stop) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-stop:
	case <-sig:
	}
	return r.Shutdown(ctx)
}

// sumByPort sums metric name's data points by server.port; with attr set, only those whose
// attribute attr is val.
func sumByPort(md pmetric.Metrics, name, attr, val string) map[int64]int64 {
	out := map[int64]int64{}
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				m := ms.At(k)
				if m.Name() != name || m.Type() != pmetric.MetricTypeSum {
					continue
				}
				dps := m.Sum().DataPoints()
				for d := 0; d < dps.Len(); d++ {
					dp := dps.At(d)
					if v, ok := dp.Attributes().Get(attr); attr != "" && (!ok || v.Str() != val) {
						continue
					}
					port := int64(-1)
					if v, ok := dp.Attributes().Get("server.port"); ok {
						port = v.Int()
					}
					out[port] += dp.IntValue()
				}
			}
		}
	}
	return out
}

// telemetry reads the receiver's own counters (tracer drops, overflow).
func telemetry(ctx context.Context, r *sdkmetric.ManualReader) map[string]int64 {
	out := map[string]int64{}
	var rm metricdata.ResourceMetrics
	if err := r.Collect(ctx, &rm); err != nil {
		return out
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if s, ok := m.Data.(metricdata.Sum[int64]); ok && strings.Contains(m.Name, "ebpfnet") {
				for _, dp := range s.DataPoints {
					out[m.Name] += dp.Value
				}
			}
		}
	}
	return out
}

func procCPU() int64 {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func rss() (rssKB, hwmKB int64) {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		var v int64
		if _, err := fmt.Sscanf(line, "VmRSS: %d kB", &v); err == nil {
			rssKB = v
		}
		if _, err := fmt.Sscanf(line, "VmHWM: %d kB", &v); err == nil {
			hwmKB = v
		}
	}
	return rssKB, hwmKB
}

// spanRecorder is a TracerProvider that keeps the wall and process CPU time of the last
// scraper span: the scraper controller wraps every scrape in one.
type spanRecorder struct {
	noop.TracerProvider
	mu       sync.Mutex
	wall, cp int64
}

func (p *spanRecorder) Tracer(string, ...trace.TracerOption) trace.Tracer { return recTracer{p: p} }

func (p *spanRecorder) last() (wall, cpu int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.wall, p.cp
}

type recTracer struct {
	noop.Tracer
	p *spanRecorder
}

func (t recTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	ctx, s := t.Tracer.Start(ctx, name, opts...)
	if !strings.HasSuffix(name, "ScrapeMetrics") {
		return ctx, s
	}
	return ctx, &recSpan{Span: s, p: t.p, start: time.Now(), cpu: procCPU()}
}

type recSpan struct {
	trace.Span
	p     *spanRecorder
	start time.Time
	cpu   int64
}

func (s *recSpan) End(opts ...trace.SpanEndOption) {
	wall, cpu := int64(time.Since(s.start)), procCPU()-s.cpu
	s.p.mu.Lock()
	s.p.wall, s.p.cp = wall, cpu
	s.p.mu.Unlock()
	s.Span.End(opts...)
}
