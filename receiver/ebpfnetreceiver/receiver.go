// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/scraper"
	"go.opentelemetry.io/collector/scraper/scraperhelper"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/aggregate"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadata"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/procinfo"
)

var errNotStarted = errors.New("receiver not started")

// sourceFactory creates the connection source when the receiver starts: the
// kernel tracer in production, a fake in tests.
type sourceFactory func(cfg *Config, logger *zap.Logger) (conns.Source, error)

// hookReporter is a source that says which kernel hook gives each piece of
// data; the receiver exports it in its telemetry.
type hookReporter interface {
	HookChoices() []hookChoice
}

// hookChoice is the kind of kernel hook (tp_btf, fexit, cgroup, ...) a source
// chose for one piece of data (tcp_state, payload, ...).
type hookChoice struct {
	Data, Hook string
}

// resolverFactory creates what fills in resource attributes from a pid.
type resolverFactory func(cfg *Config) resourceResolver

// resourceResolver looks up what the resource attributes need to know about
// a process. prune is called once per poll so the resolver can forget
// processes it has not been asked about for a while.
type resourceResolver interface {
	// resolve: cgroupID is the owner's cgroup id from the kernel (0 when
	// unknown); it names the container even after the process is gone.
	resolve(pid, netns uint32, cgroupID uint64) aggregate.Resource
	prune(now time.Time)
	stats() resolverStats
	// learn records the cgroups the kernel created since the last poll
	// (conns.Snapshot.Cgroups), before the poll's connections are resolved.
	learn([]conns.CgroupPath)
}

// resolverStats are a resolver's cumulative counts of what it could not
// name, exported as the receiver's telemetry.
type resolverStats = procinfo.Stats

// newReceiver is a metrics receiver with a registry of its own (tests).
func newReceiver(set receiver.Settings, cfg *Config, next consumer.Metrics, newSource sourceFactory, newResolver resolverFactory) (receiver.Metrics, error) {
	return newRegistry(newSource, newResolver).newMetrics(set, cfg, next)
}

// newMetrics wires the scraper into the Collector's scraper controller,
// which owns the collection_interval ticker and the receiver's standard
// telemetry (accepted and refused data points).
func (r *registry) newMetrics(set receiver.Settings, cfg *Config, next consumer.Metrics) (receiver.Metrics, error) {
	c, err := r.attach(set, cfg)
	if err != nil {
		return nil, err
	}
	s := &ebpfnetScraper{core: c, cfg: cfg, set: set, now: r.now}
	sc, err := scraper.NewMetrics(s.scrape, scraper.WithStart(s.start), scraper.WithShutdown(s.shutdown))
	if err != nil {
		r.detach(c)
		return nil, err
	}
	ctrl, err := scraperhelper.NewMetricsController(&cfg.ControllerConfig, set, next, scraperhelper.AddMetricsScraper(metadata.Type, sc))
	if err != nil {
		r.detach(c)
		return nil, err
	}
	c.attachMetrics()
	return &ebpfnetReceiver{Metrics: ctrl, core: c}, nil
}

// ebpfnetReceiver makes Shutdown idempotent: the scraper controller closes a
// channel in Shutdown and must not be shut down twice.
type ebpfnetReceiver struct {
	receiver.Metrics
	core        *core
	once        sync.Once
	shutdownErr error
}

// Shutdown stops polling, then lets go of the tracer: the last receiver of
// the component ID closes it, which detaches every program and frees every
// map. Later calls return the first call's result.
func (r *ebpfnetReceiver) Shutdown(ctx context.Context) error {
	r.once.Do(func() {
		r.shutdownErr = r.Metrics.Shutdown(ctx)
		r.core.reg.detach(r.core)
	})
	return r.shutdownErr
}

// ebpfnetScraper polls the source, aggregates and builds the metrics. The
// controller calls scrape from one goroutine, between start and shutdown.
type ebpfnetScraper struct {
	core *core
	cfg  *Config
	set  receiver.Settings
	now  func() time.Time // time.Now; tests pin it

	src       conns.Source
	agg       *aggregate.Aggregator
	out       output
	startTime time.Time
}

func (s *ebpfnetScraper) start(context.Context, component.Host) error {
	aggCfg, err := aggregateConfig(s.cfg)
	if err != nil {
		return err
	}
	src, err := s.core.acquire()
	if err != nil {
		return err
	}
	s.src = src
	s.startTime = s.now()
	aggCfg.Resolve = s.core.resolver.resolve
	if s.core.names != nil {
		aggCfg.PeerName = s.core.names.Name
	}
	s.out = output{
		mb:      metadata.NewMetricsBuilder(s.cfg.MetricsBuilderConfig, s.set, metadata.WithStartTime(pcommon.NewTimestampFromTime(s.startTime))),
		version: s.set.BuildInfo.Version,
	}
	for m, mc := range aggCfg.Metrics {
		s.out.attrs[m] = mc.Attrs
	}
	s.agg = aggregate.New(aggCfg, s.startTime)
	return nil
}

func (s *ebpfnetScraper) shutdown(context.Context) error {
	if s.src == nil {
		return nil
	}
	s.src = nil
	return s.core.release()
}

func (s *ebpfnetScraper) scrape(ctx context.Context) (pmetric.Metrics, error) {
	if s.src == nil {
		return pmetric.NewMetrics(), errNotStarted
	}
	snap, err := s.core.poll(ctx)
	if err != nil {
		return pmetric.NewMetrics(), err
	}
	stats := s.agg.Update(snap)
	s.core.afterPoll(ctx, snap, stats)
	return s.out.build(s.agg.Collect(), snap.Time), nil
}

// tracerCounter is one field of conns.Telemetry and the receiver's counter
// of it.
type tracerCounter struct {
	field   int // index in conns.Telemetry
	counter metric.Int64Counter
}

// tracerCounters pairs every field of conns.Telemetry with the generated
// counter its telemetry tag names; a field without one is an error, so no
// tracer counter goes unexported.
func tracerCounters(tb *metadata.TelemetryBuilder) ([]tracerCounter, error) {
	tt := reflect.TypeFor[conns.Telemetry]()
	builder := reflect.ValueOf(tb).Elem()
	out := make([]tracerCounter, 0, tt.NumField())
	for i := range tt.NumField() {
		name := "EbpfnetTracer" + tt.Field(i).Tag.Get("telemetry")
		f := builder.FieldByName(name)
		c, ok := metric.Int64Counter(nil), false
		if f.IsValid() {
			c, ok = f.Interface().(metric.Int64Counter)
		}
		if !ok {
			return nil, fmt.Errorf("conns.Telemetry.%s: no telemetry counter %s", tt.Field(i).Name, name)
		}
		out = append(out, tracerCounter{field: i, counter: c})
	}
	return out, nil
}

// recordTelemetry adds what the tracer's cumulative counters grew by since
// the last poll to the receiver's own counters.
func (c *core) recordTelemetry(ctx context.Context, tel conns.Telemetry, stats aggregate.Stats) {
	cur, prev := reflect.ValueOf(tel), reflect.ValueOf(c.lastTel)
	c.lastTel = tel
	for _, tc := range c.counters {
		addGrowth(ctx, growth{tc.counter, cur.Field(tc.field).Uint(), prev.Field(tc.field).Uint()})
	}
	if stats.Overflowed > 0 {
		c.telemetry.EbpfnetAggregationOverflow.Add(ctx, int64(stats.Overflowed))
	}
}
