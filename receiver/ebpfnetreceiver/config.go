// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/scraper/scraperhelper"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/aggregate"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/dnsnames"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadata"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/nat"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/tracer"
)

// Sentinel errors of Config.Validate. Each returned error wraps one of them
// and names the offending key.
var (
	ErrInvalidInterval    = errors.New("must be positive")
	ErrInvalidMapSize     = errors.New("must be between 1 and 4294967295")
	ErrInvalidMaxSeries   = errors.New("must not be negative")
	ErrInvalidExpiry      = errors.New("must not be negative")
	ErrUnknownAttribute   = errors.New("unknown attribute")
	ErrInvalidHooks       = errors.New("must be one of " + strings.Join(tracer.HookModes, ", "))
	ErrInvalidRate        = errors.New("must not be negative (0 disables)")
	ErrInvalidGroupName   = errors.New("must be a name, not empty or an IP address")
	ErrDuplicateGroup     = errors.New("names more than one peer group")
	ErrInvalidCIDR        = errors.New("must be a CIDR such as 10.0.0.0/8 or fd00::/8")
	ErrNoCIDRs            = errors.New("must list at least one CIDR")
	ErrDuplicateCIDR      = errors.New("is in more than one peer group")
	ErrInvalidMaxEntries  = errors.New("must be positive")
	errNotHistogramConfig = errors.New("must be a map")
)

// Defaults that are the receiver's own; the table size is the tracer's.
const (
	defaultCollectionInterval = 10 * time.Second
	defaultMaxSeries          = 10000
	defaultSeriesExpiry       = 15 * time.Minute
	defaultFailureLogsRate    = 100
)

// Config is the configuration of the ebpfnet receiver.
type Config struct {
	// ControllerConfig holds collection_interval (how often the receiver
	// polls the tracer and emits metrics), initial_delay (before the first
	// poll) and timeout (of one poll; 0: none), as in every scraper receiver.
	scraperhelper.ControllerConfig `mapstructure:",squash"`
	// MaxTrackedConnections sizes the kernel connection table. Connections
	// past it are not tracked; that is counted in the receiver's telemetry.
	MaxTrackedConnections int64 `mapstructure:"max_tracked_connections"`
	// UDPIdleTimeout ends a UDP flow (a socket and one peer) after this long
	// without a datagram: it is reported closed as of its last datagram and
	// leaves the connection table, so a server that hears from many peers
	// cannot fill it. A later datagram starts a new flow.
	UDPIdleTimeout time.Duration `mapstructure:"udp_idle_timeout"`
	// ProtocolClassification reads the first payload bytes of each
	// connection in the kernel to name its protocol stack (the
	// network.protocol.name, network.protocol.version, rpc.system and
	// tls.protocol.version attributes). Off, the classifier programs are not
	// loaded at all and those attributes are never written. On by default.
	ProtocolClassification bool `mapstructure:"protocol_classification"`
	// Hooks forces how the tracer reads payload, for debugging: auto (the
	// default: the best hook the kernel has), tracepoint, fentry or kprobe.
	Hooks string `mapstructure:"hooks"`
	// Aggregation bounds the series the receiver keeps.
	Aggregation AggregationConfig `mapstructure:"aggregation"`
	// FailureLogs bounds the log records of failed TCP connections, written
	// when the receiver is in a logs pipeline.
	FailureLogs FailureLogsConfig `mapstructure:"failure_logs"`
	// DNSNames names the peers of outgoing connections (server.address)
	// from the DNS responses the host's sockets receive.
	DNSNames DNSNamesConfig `mapstructure:"dns_names"`

	// NAT adds the endpoints the kernel's NAT translates a connection to
	// (the ebpfnet.nat.* attributes), from conntrack.
	NAT NATConfig `mapstructure:"nat"`

	// MetricsBuilderConfig holds the generated `metrics:` and
	// `resource_attributes:` toggles.
	metadata.MetricsBuilderConfig `mapstructure:",squash"`

	// Histograms are configured under the same `metrics:` key as the
	// generated metrics (mdatagen v0.161.0 cannot generate histograms);
	// Unmarshal moves them here.
	ConnectionDuration HistogramMetricConfig `mapstructure:"-"`
	TCPRTT             HistogramMetricConfig `mapstructure:"-"`
	TCPRTTVariation    HistogramMetricConfig `mapstructure:"-"`

	// prevent unkeyed literal initialization
	_ struct{}
}

// AggregationConfig bounds the cardinality of the metrics.
type AggregationConfig struct {
	// MaxSeries is the number of series each metric keeps (all resources
	// together). Past it, data folds into one overflow series marked
	// otel.metric.overflow=true. 0 means no bound.
	MaxSeries int `mapstructure:"max_series"`
	// SeriesExpiry forgets a series whose value has not changed for this
	// long and that has no open connection; if it comes back it starts over
	// with a new start timestamp. 0 keeps every series forever (and
	// max_series then fills up with the series of exited processes).
	SeriesExpiry time.Duration `mapstructure:"series_expiry"`
	// PeerGroups write network.peer.address as the name of the group whose
	// CIDRs hold the peer, instead of the address, so the peers of a group
	// share one series. The most specific CIDR wins (longest-prefix match),
	// whatever the order of the groups; a CIDR may be in one group only.
	// IPv4 CIDRs hold IPv4 peers, IPv4-mapped IPv6 peers included (they are
	// reported as IPv4); IPv6 CIDRs hold IPv6 peers.
	PeerGroups []PeerGroupConfig `mapstructure:"peer_groups"`
	// OtherPeers is the group of every peer no group holds, such as
	// "public" beside groups of the private ranges; "" keeps those peers'
	// addresses.
	OtherPeers string `mapstructure:"other_peers"`
}

// PeerGroupConfig is one peer group: its name, written as the value of
// network.peer.address, and the CIDRs of the addresses it holds.
type PeerGroupConfig struct {
	Name  string   `mapstructure:"name"`
	CIDRs []string `mapstructure:"cidrs"`
}

// FailureLogsConfig bounds the failure logs.
type FailureLogsConfig struct {
	// MaxPerSecond is the rate of log records, with bursts of as many: a
	// token bucket of MaxPerSecond tokens refilled at MaxPerSecond a second
	// of poll time. Failures past it get no record and are counted in
	// ebpfnet_failure_logs_dropped. 0 disables the failure logs (the logs
	// receiver then loads no tracer of its own).
	MaxPerSecond int `mapstructure:"max_per_second"`
}

// NATConfig configures the NAT translation.
type NATConfig struct {
	// Enabled follows conntrack (netlink events, a dump at start) in the
	// collector's network namespace, the named ones (/run/netns) and those
	// of the connections traced. On by default; on a kernel without
	// conntrack it turns itself off with one log line.
	Enabled bool `mapstructure:"enabled"`
	// MaxEntries bounds the translated flows kept (untranslated ones are
	// not kept); past it the oldest are evicted and counted in
	// ebpfnet_nat_table_evictions.
	MaxEntries int `mapstructure:"max_entries"`
}

// DNSNamesConfig configures the peer names: a map per network namespace
// from each address DNS answered to the name the client asked for, from
// which outgoing connections get server.address when first seen.
type DNSNamesConfig struct {
	// Enabled reads the DNS responses the kernel captures. The capture is
	// part of protocol_classification's programs: with that off there are no
	// names (said once in the log at start; not a config error, so turning
	// classification off needs no second change). On by default.
	Enabled bool `mapstructure:"enabled"`
	// MaxEntries bounds the map (addresses of all namespaces together);
	// past it the least recently used name goes, counted in
	// ebpfnet_dns_evictions. About 100 bytes an entry.
	MaxEntries int `mapstructure:"max_entries"`
	// Grace keeps a name this long past its answer's TTL: clients connect
	// a little after they resolve, and some keep using an address after
	// the TTL. 0 keeps names for their TTL alone.
	Grace time.Duration `mapstructure:"grace"`
}

// HistogramMetricConfig configures one histogram metric, with the same keys
// as the generated metric configs.
type HistogramMetricConfig struct {
	Enabled    bool     `mapstructure:"enabled"`
	Attributes []string `mapstructure:"attributes"`
}

func createDefaultConfig() *Config {
	cc := scraperhelper.NewDefaultControllerConfig()
	cc.CollectionInterval = defaultCollectionInterval
	keep := aggregate.Keys(aggregate.DefaultKey())
	return &Config{
		ControllerConfig:       cc,
		MaxTrackedConnections:  tracer.DefaultMaxConnections,
		UDPIdleTimeout:         tracer.DefaultUDPIdleTimeout,
		ProtocolClassification: true,
		Hooks:                  tracer.HooksAuto,
		Aggregation: AggregationConfig{
			MaxSeries:    defaultMaxSeries,
			SeriesExpiry: defaultSeriesExpiry,
		},
		FailureLogs:          FailureLogsConfig{MaxPerSecond: defaultFailureLogsRate},
		NAT:                  NATConfig{Enabled: true, MaxEntries: nat.DefaultMaxEntries},
		DNSNames:             DNSNamesConfig{Enabled: true, MaxEntries: dnsnames.DefaultMaxEntries, Grace: dnsnames.DefaultGrace},
		MetricsBuilderConfig: metadata.NewDefaultMetricsBuilderConfig(),
		ConnectionDuration:   HistogramMetricConfig{Enabled: true, Attributes: keep},
		TCPRTT:               HistogramMetricConfig{Enabled: true, Attributes: slices.Clone(keep)},
		TCPRTTVariation:      HistogramMetricConfig{Enabled: true, Attributes: slices.Clone(keep)},
	}
}

// sampleTCPHealth reports whether a metric needs the RTT or retransmits of
// open connections, which the tracer then reads at every poll.
func (cfg *Config) sampleTCPHealth() bool {
	m := &cfg.Metrics
	return cfg.TCPRTT.Enabled || cfg.TCPRTTVariation.Enabled || m.EbpfnetTCPRetransmitCount.Enabled || m.EbpfnetTCPSynRetransmitCount.Enabled
}

// histograms are the histogram entries of `metrics:`, by key: the metrics
// table's histogram rows.
func (cfg *Config) histograms() map[string]*HistogramMetricConfig {
	out := map[string]*HistogramMetricConfig{}
	for _, d := range metrics {
		if d.histogram != nil {
			out[d.name] = d.histogram(cfg)
		}
	}
	return out
}

// Unmarshal takes the histogram entries out of `metrics:` and lets the
// generated configs decode the rest.
func (cfg *Config) Unmarshal(conf *confmap.Conf) error {
	for key, dst := range cfg.histograms() {
		path := "metrics" + confmap.KeyDelimiter + key
		if !conf.IsSet(path) {
			continue
		}
		sub, err := conf.Sub(path)
		if err != nil {
			return fmt.Errorf("metrics::%s: %w", key, errNotHistogramConfig)
		}
		if err := sub.Unmarshal(dst); err != nil {
			return fmt.Errorf("metrics::%s: %w", key, err)
		}
		conf.Delete(path)
	}
	return conf.Unmarshal(cfg)
}

// Validate checks the receiver's own keys; the generated metric configs and
// the scraper controller's config validate theirs themselves.
func (cfg *Config) Validate() error {
	var errs []error
	if cfg.CollectionInterval <= 0 {
		errs = append(errs, fmt.Errorf("collection_interval %v: %w", cfg.CollectionInterval, ErrInvalidInterval))
	}
	if cfg.MaxTrackedConnections <= 0 || cfg.MaxTrackedConnections > math.MaxUint32 {
		errs = append(errs, fmt.Errorf("max_tracked_connections %d: %w", cfg.MaxTrackedConnections, ErrInvalidMapSize))
	}
	if cfg.UDPIdleTimeout <= 0 {
		errs = append(errs, fmt.Errorf("udp_idle_timeout %v: %w", cfg.UDPIdleTimeout, ErrInvalidInterval))
	}
	if !slices.Contains(tracer.HookModes, cfg.Hooks) && cfg.Hooks != "" {
		errs = append(errs, fmt.Errorf("hooks %q: %w", cfg.Hooks, ErrInvalidHooks))
	}
	if cfg.Aggregation.MaxSeries < 0 {
		errs = append(errs, fmt.Errorf("aggregation::max_series %d: %w", cfg.Aggregation.MaxSeries, ErrInvalidMaxSeries))
	}
	if cfg.Aggregation.SeriesExpiry < 0 {
		errs = append(errs, fmt.Errorf("aggregation::series_expiry %v: %w", cfg.Aggregation.SeriesExpiry, ErrInvalidExpiry))
	}
	if _, err := cfg.Aggregation.peerGroups(); err != nil {
		errs = append(errs, err)
	}
	if cfg.FailureLogs.MaxPerSecond < 0 {
		errs = append(errs, fmt.Errorf("failure_logs::max_per_second %d: %w", cfg.FailureLogs.MaxPerSecond, ErrInvalidRate))
	}
	if cfg.NAT.Enabled && cfg.NAT.MaxEntries <= 0 {
		errs = append(errs, fmt.Errorf("nat::max_entries %d: %w", cfg.NAT.MaxEntries, ErrInvalidMaxEntries))
	}
	if cfg.DNSNames.MaxEntries <= 0 {
		errs = append(errs, fmt.Errorf("dns_names::max_entries %d: %w", cfg.DNSNames.MaxEntries, ErrInvalidMaxEntries))
	}
	if cfg.DNSNames.Grace < 0 {
		errs = append(errs, fmt.Errorf("dns_names::grace %v: %w", cfg.DNSNames.Grace, ErrInvalidExpiry))
	}
	for key, h := range cfg.histograms() {
		if _, err := histogramAttrs(h.Attributes); err != nil {
			errs = append(errs, fmt.Errorf("metrics::%s::attributes: %w", key, err))
		}
	}
	return errors.Join(errs...)
}

// histogramAttrs parses the attribute list of a histogram: the histograms
// keep only attributes of the connection, not those that split a
// measurement (network.io.direction, error.type).
func histogramAttrs(names []string) (aggregate.AttrSet, error) {
	valid := aggregate.PerConnection()
	set, err := aggregate.ParseAttrSet(names)
	if err != nil || set&^valid != 0 {
		return 0, fmt.Errorf("%w in %q, valid attributes: %v", ErrUnknownAttribute, names, aggregate.Keys(valid))
	}
	return set, nil
}

// peerGroups parses peer_groups for the aggregator; its errors name the key
// and the offending value.
func (ac *AggregationConfig) peerGroups() ([]aggregate.PeerGroup, error) {
	var errs []error
	badName := func(name string) bool {
		_, err := netip.ParseAddr(name)
		return strings.TrimSpace(name) == "" || err == nil
	}
	names := map[string]bool{}
	owner := map[netip.Prefix]string{} // CIDR -> its group
	out := make([]aggregate.PeerGroup, 0, len(ac.PeerGroups))
	for i, g := range ac.PeerGroups {
		at := fmt.Sprintf("aggregation::peer_groups[%d]", i)
		switch {
		case badName(g.Name):
			errs = append(errs, fmt.Errorf("%s::name %q: %w", at, g.Name, ErrInvalidGroupName))
		case names[g.Name]:
			errs = append(errs, fmt.Errorf("%s::name %q: %w", at, g.Name, ErrDuplicateGroup))
		}
		names[g.Name] = true
		if len(g.CIDRs) == 0 {
			errs = append(errs, fmt.Errorf("%s::cidrs of %q: %w", at, g.Name, ErrNoCIDRs))
		}
		pg := aggregate.PeerGroup{Name: g.Name}
		for _, c := range g.CIDRs {
			p, err := parseCIDR(c)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s::cidrs %q: %w", at, c, err))
				continue
			}
			if prev, ok := owner[p]; ok {
				errs = append(errs, fmt.Errorf("%s::cidrs %q: %w (%q and %q)", at, c, ErrDuplicateCIDR, prev, g.Name))
				continue
			}
			owner[p] = g.Name
			pg.Prefixes = append(pg.Prefixes, p)
		}
		out = append(out, pg)
	}
	if o := ac.OtherPeers; o != "" {
		switch {
		case badName(o):
			errs = append(errs, fmt.Errorf("aggregation::other_peers %q: %w", o, ErrInvalidGroupName))
		case names[o]:
			errs = append(errs, fmt.Errorf("aggregation::other_peers %q: %w (the catch-all and a group of peer_groups)", o, ErrDuplicateGroup))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// parseCIDR parses one CIDR of a peer group. It refuses what would silently
// match other addresses than written: host bits set (10.1.2.3/8: 10.0.0.0/8,
// or 10.1.2.3/32?) and an IPv4-mapped prefix, which no peer would match (the
// tracer reports IPv4-mapped peers as IPv4).
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return p, fmt.Errorf("%w: %w", ErrInvalidCIDR, err)
	case p != p.Masked():
		return p, fmt.Errorf("%w: host bits set (the network is %s)", ErrInvalidCIDR, p.Masked())
	case p.Addr().Is4In6():
		return p, fmt.Errorf("%w: IPv4-mapped (write it as IPv4)", ErrInvalidCIDR)
	}
	return p, nil
}
