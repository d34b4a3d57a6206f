// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/receiverhelper"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.uber.org/zap"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/aggregate"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/dnsnames"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadata"
)

// registry holds one core per component ID, so that the metrics and the logs
// receiver of one ID share one tracer: loading two would double what the
// kernel spends. Each factory has its own.
type registry struct {
	newSource   sourceFactory
	newResolver resolverFactory
	newNAT      natFactory       // nil: no NAT translation (tests with fake sources)
	now         func() time.Time // time.Now; tests pin it

	mu    sync.Mutex
	cores map[component.ID]*core
}

func newRegistry(newSource sourceFactory, newResolver resolverFactory) *registry {
	return &registry{newSource: newSource, newResolver: newResolver, now: time.Now, cores: map[component.ID]*core{}}
}

// attach returns the core of set.ID, created with the first receiver's
// settings; each call must be matched by one detach.
func (r *registry) attach(set receiver.Settings, cfg *Config) (*core, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.cores[set.ID]
	if c == nil {
		tb, err := metadata.NewTelemetryBuilder(set.TelemetrySettings)
		if err != nil {
			return nil, fmt.Errorf("telemetry: %w", err)
		}
		c = &core{reg: r, id: set.ID, cfg: cfg, set: set, telemetry: tb}
		r.cores[set.ID] = c
	}
	c.attached++
	return c, nil
}

// detach forgets the core once every receiver that attached it is shut down.
func (r *registry) detach(c *core) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c.attached--
	if c.attached == 0 && r.cores[c.id] == c {
		delete(r.cores, c.id)
	}
}

// core is what the metrics and the logs receiver of one component ID share:
// the configuration, the tracer (acquired by the first Start, closed by the
// last Shutdown), the resolver, the receiver's telemetry and the logs
// consumer. One goroutine polls the source: the metrics scrape when there is
// a metrics receiver, else the logs receiver's own loop.
type core struct {
	reg       *registry
	id        component.ID
	cfg       *Config
	set       receiver.Settings // of the first receiver created
	telemetry *metadata.TelemetryBuilder

	// Set when the receivers are created, before any Start.
	attached   int // under reg.mu
	hasMetrics bool
	logs       consumer.Logs // nil without a logs receiver
	logsObs    *receiverhelper.ObsReport

	mu       sync.Mutex // guards refs, src, resolver, counters
	refs     int
	src      conns.Source
	resolver resourceResolver
	nat      natTranslator // nil when the NAT translation is off
	lastNAT  natStats
	counters []tracerCounter // the tracer's counters and the receiver's
	lastTel  conns.Telemetry
	lastRes  resolverStats
	failures *failureLogger // nil when the failure logs are off
	// names gives outgoing connections server.address (nil with dns_names
	// off): learnt in poll, asked by the aggregator for each new connection;
	// used only by the goroutine that polls.
	names   *dnsnames.Namer
	lastDNS dnsnames.Stats
}

// attachMetrics records that a metrics receiver polls for this ID.
func (c *core) attachMetrics() { c.hasMetrics = true }

// attachLogs records the logs receiver's consumer and its obsreport.
func (c *core) attachLogs(set receiver.Settings, next consumer.Logs) error {
	obs, err := receiverhelper.NewObsReport(receiverhelper.ObsReportSettings{ReceiverID: set.ID, ReceiverCreateSettings: set})
	if err != nil {
		return fmt.Errorf("logs obsreport: %w", err)
	}
	c.logs, c.logsObs = next, obs
	return nil
}

// failureLogsOn reports whether failures become log records.
func (c *core) failureLogsOn() bool { return c.logs != nil && c.cfg.FailureLogs.MaxPerSecond > 0 }

// acquire starts the tracer on the first call and returns it; each
// successful call must be matched by one release. A failed call leaves
// nothing behind, so a later one starts over.
func (c *core) acquire() (conns.Source, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refs > 0 {
		c.refs++
		return c.src, nil
	}
	counters, err := tracerCounters(c.telemetry)
	if err != nil {
		return nil, err
	}
	src, err := c.reg.newSource(c.cfg, c.set.Logger)
	if err != nil {
		return nil, fmt.Errorf("start tracer: %w", err) // the tracer's errors say what is missing
	}
	if hr, ok := src.(hookReporter); ok {
		hooks := hr.HookChoices()
		err := c.telemetry.RegisterEbpfnetTracerHookCallback(func(_ context.Context, o metric.Int64Observer) error {
			for _, h := range hooks {
				o.Observe(1, metric.WithAttributes(attribute.String("ebpfnet.tracer.data", h.Data), attribute.String("ebpfnet.tracer.hook", h.Hook)))
			}
			return nil
		})
		if err != nil {
			c.set.Logger.Warn("cannot export the tracer's hook choice", zap.Error(err))
		}
	}
	c.src, c.counters, c.lastTel, c.lastRes = src, counters, conns.Telemetry{}, resolverStats{}
	c.resolver = c.reg.newResolver(c.cfg)
	c.nat, c.lastNAT = nil, natStats{}
	if c.reg.newNAT != nil {
		c.nat = c.reg.newNAT(c.cfg, c.set.Logger)
	}
	c.names, c.lastDNS = nil, dnsnames.Stats{}
	switch {
	case c.cfg.DNSNames.Enabled && c.cfg.ProtocolClassification:
		c.names = dnsnames.NewNamer(dnsnames.Config{MaxEntries: c.cfg.DNSNames.MaxEntries, Grace: c.cfg.DNSNames.Grace})
	case c.cfg.DNSNames.Enabled:
		c.set.Logger.Info("dns_names is on but protocol_classification is off: the DNS capture is part of the classifier programs, so no connection gets server.address")
	}
	c.failures = nil
	if c.failureLogsOn() {
		c.failures = &failureLogger{
			lb:      metadata.NewLogsBuilder(c.set),
			rac:     c.cfg.ResourceAttributes,
			bucket:  newTokenBucket(c.cfg.FailureLogs.MaxPerSecond),
			resolve: c.resolver.resolve,
		}
	}
	c.refs = 1
	return src, nil
}

// release closes the tracer when the last user lets it go.
func (c *core) release() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refs == 0 {
		return nil
	}
	c.refs--
	if c.refs > 0 {
		return nil
	}
	var err error
	if cerr := c.src.Close(); cerr != nil {
		err = fmt.Errorf("close tracer: %w", cerr)
	}
	if c.nat != nil {
		if cerr := c.nat.close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("close conntrack: %w", cerr))
		}
		c.nat = nil
	}
	c.src = nil
	c.telemetry.Shutdown() // unregisters the hook callback
	return err
}

// afterPoll is what every poll does besides the metrics, in the goroutine
// that polled: the receiver's telemetry, the failure logs, the resolver's
// pruning.
func (c *core) afterPoll(ctx context.Context, snap conns.Snapshot, stats aggregate.Stats) {
	c.recordTelemetry(ctx, c.src.Telemetry(), stats)
	c.emitFailures(ctx, snap)
	c.resolver.prune(snap.Time)
	c.recordResolverStats(ctx)
	c.recordNATStats(ctx)
	c.recordDNSStats(ctx)
}

// recordDNSStats adds what the peer-name map's counts grew by since the
// last poll to the receiver's telemetry.
func (c *core) recordDNSStats(ctx context.Context) {
	if c.names == nil {
		return
	}
	cur, prev := c.names.Stats(), c.lastDNS
	addGrowth(ctx,
		growth{c.telemetry.EbpfnetDNSResponses, cur.Responses, prev.Responses},
		growth{c.telemetry.EbpfnetDNSAnswers, cur.Answers, prev.Answers},
		growth{c.telemetry.EbpfnetDNSParseErrors, cur.ParseErrors, prev.ParseErrors},
		growth{c.telemetry.EbpfnetDNSTruncated, cur.Truncated, prev.Truncated},
		growth{c.telemetry.EbpfnetDNSEvictions, cur.Evictions, prev.Evictions})
	c.lastDNS = cur
}

// growth is one cumulative count now and at the last poll, and the
// telemetry counter its growth goes to.
type growth struct {
	counter  metric.Int64Counter
	now, was uint64
}

// addGrowth adds what each count grew by to its counter; a count that went
// back (its source started again) adds nothing.
func addGrowth(ctx context.Context, gs ...growth) {
	for _, g := range gs {
		if g.now > g.was {
			g.counter.Add(ctx, int64(g.now-g.was))
		}
	}
}

// recordResolverStats adds what the resolver's counts grew by since the last
// poll to the receiver's telemetry.
func (c *core) recordResolverStats(ctx context.Context) {
	cur := c.resolver.stats()
	addGrowth(ctx,
		growth{c.telemetry.EbpfnetCgroupUnknown, cur.UnknownCgroups, c.lastRes.UnknownCgroups},
		growth{c.telemetry.EbpfnetCgroupEvictions, cur.CgroupEvictions, c.lastRes.CgroupEvictions})
	c.lastRes = cur
}

// emitFailures sends the failure logs of snap to the logs consumer and
// counts the records the rate bound dropped.
func (c *core) emitFailures(ctx context.Context, snap conns.Snapshot) {
	if c.failures == nil {
		return
	}
	b := c.failures.build(snap)
	if b.dropped > 0 {
		c.telemetry.EbpfnetFailureLogsDropped.Add(ctx, int64(b.dropped))
	}
	if b.records == 0 {
		return
	}
	obsCtx := c.logsObs.StartLogsOp(ctx)
	err := c.logs.ConsumeLogs(obsCtx, b.logs)
	c.logsObs.EndLogsOp(obsCtx, metadata.Type.String(), b.records, err)
	if err != nil {
		c.set.Logger.Warn("failure logs not consumed", zap.Int("records", b.records), zap.Error(err))
	}
}

// poll reads the tracer once; a snapshot without a time gets the time now.
// The connections get their NAT translation here, before anything reads
// them.
func (c *core) poll(ctx context.Context) (conns.Snapshot, error) {
	snap, err := c.src.Poll(ctx)
	if err != nil {
		return conns.Snapshot{}, fmt.Errorf("poll tracer: %w", err)
	}
	if snap.Time.IsZero() {
		snap.Time = c.reg.now()
	}
	c.resolver.learn(snap.Cgroups)
	if c.nat != nil {
		c.nat.annotate(&snap)
	}
	if c.names != nil {
		c.names.Apply(&snap)
	}
	return snap, nil
}

// pollForLogs is one poll of a logs receiver that has no metrics receiver
// beside it.
func (c *core) pollForLogs(ctx context.Context) error {
	snap, err := c.poll(ctx)
	if err != nil {
		return err
	}
	c.afterPoll(ctx, snap, aggregate.Stats{})
	return nil
}
