// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"errors"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadata"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/nat"
)

func loadConfig(t *testing.T, name string) *Config {
	t.Helper()
	cm, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := cm.Sub(component.NewIDWithName(metadata.Type, name).String())
	if err != nil {
		t.Fatal(err)
	}
	cfg := createDefaultConfig()
	if err := sub.Unmarshal(cfg); err != nil {
		t.Fatalf("unmarshal %s: %v", name, err)
	}
	return cfg
}

func TestLoadConfig(t *testing.T) {
	def := loadConfig(t, "")
	if err := confmap.Validate(def); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	if def.CollectionInterval != 10*time.Second || def.MaxTrackedConnections != 65536 || !def.ProtocolClassification || def.Hooks != "auto" ||
		def.Aggregation.MaxSeries != 10000 || !def.ConnectionDuration.Enabled || !def.TCPRTT.Enabled || !def.TCPRTTVariation.Enabled ||
		!def.Metrics.EbpfnetTCPRetransmitCount.Enabled || !def.Metrics.EbpfnetTCPSynRetransmitCount.Enabled || !def.Metrics.EbpfnetTCPFailureCount.Enabled ||
		!def.sampleTCPHealth() || !def.DNSNames.Enabled || def.DNSNames.MaxEntries != 65536 || def.DNSNames.Grace != 5*time.Minute {
		t.Fatalf("defaults: %+v", def)
	}

	c := loadConfig(t, "custom")
	if err := confmap.Validate(c); err != nil {
		t.Fatalf("custom config invalid: %v", err)
	}
	if c.CollectionInterval != 30*time.Second || c.MaxTrackedConnections != 131072 || c.ProtocolClassification ||
		c.Aggregation.MaxSeries != 500 || c.Aggregation.SeriesExpiry != time.Hour || c.Hooks != "kprobe" {
		t.Fatalf("custom: %+v", c)
	}
	if got := c.Metrics.EbpfnetConnectionIo.EnabledAttributes; len(got) != 3 {
		t.Fatalf("io attributes: %v", got)
	}
	if c.ConnectionDuration.Enabled || !c.TCPRTT.Enabled || len(c.TCPRTT.Attributes) != 2 || c.TCPRTTVariation.Enabled {
		t.Fatalf("histograms: duration %+v rtt %+v variation %+v", c.ConnectionDuration, c.TCPRTT, c.TCPRTTVariation)
	}
	if c.Metrics.EbpfnetTCPRetransmitCount.Enabled || !c.ResourceAttributes.ProcessCommandLine.Enabled {
		t.Fatal("toggles not applied")
	}
	// The RTT histogram still needs the poll's samples; without any of the
	// four metrics the tracer reads them only at close.
	if !c.sampleTCPHealth() {
		t.Fatal("rtt on, but the poll would not sample it")
	}
	c.TCPRTT.Enabled, c.Metrics.EbpfnetTCPSynRetransmitCount.Enabled = false, false
	if c.sampleTCPHealth() {
		t.Fatal("no TCP health metric on, but the poll would sample it")
	}
	// The generated metrics (not overridden) keep their defaults.
	if !c.Metrics.EbpfnetConnectionOpened.Enabled {
		t.Fatal("opened disabled")
	}
}

func TestValidateNamesTheKey(t *testing.T) {
	tests := []struct {
		name     string
		sentinel error
		key      string
	}{
		{"negative_interval", ErrInvalidInterval, "collection_interval"},
		{"zero_map_size", ErrInvalidMapSize, "max_tracked_connections"},
		{"bad_hooks", ErrInvalidHooks, "hooks"},
		{"negative_max_series", ErrInvalidMaxSeries, "aggregation::max_series"},
		{"unknown_attribute", nil, "ebpfnet.connection.io"},
		{"negative_failure_logs", ErrInvalidRate, "failure_logs::max_per_second"},
		{"zero_nat_entries", ErrInvalidMaxEntries, "nat::max_entries"},
		{"zero_dns_entries", ErrInvalidMaxEntries, "dns_names::max_entries"},
		{"negative_dns_grace", ErrInvalidExpiry, "dns_names::grace"},
		{"unknown_histogram_attribute", ErrUnknownAttribute, "metrics::ebpfnet.connection.duration::attributes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := confmap.Validate(loadConfig(t, tt.name))
			if err == nil {
				t.Fatal("config accepted")
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("error %q does not wrap %q", err, tt.sentinel)
			}
			if !strings.Contains(err.Error(), tt.key) {
				t.Errorf("error %q does not name %q", err, tt.key)
			}
		})
	}
}

func TestDNSNamesConfig(t *testing.T) {
	c := loadConfig(t, "dns_names")
	if err := confmap.Validate(c); err != nil {
		t.Fatalf("config invalid: %v", err)
	}
	if c.DNSNames != (DNSNamesConfig{Enabled: true, MaxEntries: 1000, Grace: 30 * time.Second}) {
		t.Errorf("dns_names %+v", c.DNSNames)
	}
	off := loadConfig(t, "no_dns_names")
	if err := confmap.Validate(off); err != nil || off.DNSNames.Enabled || off.DNSNames.MaxEntries != 65536 {
		t.Errorf("dns_names off: %+v, %v", off.DNSNames, err)
	}
}

func TestValidateDirect(t *testing.T) {
	cfg := createDefaultConfig()
	cfg.CollectionInterval = 0
	cfg.MaxTrackedConnections = 1 << 33
	cfg.Aggregation.SeriesExpiry = -time.Second
	err := cfg.Validate()
	for _, want := range []error{ErrInvalidInterval, ErrInvalidMapSize, ErrInvalidExpiry} {
		if !errors.Is(err, want) {
			t.Errorf("%v: missing %v", err, want)
		}
	}
}

// TestScraperControllerKeys: initial_delay and timeout are the scraper
// controller's, as in every contrib scraper receiver, and are validated.
func TestScraperControllerKeys(t *testing.T) {
	def := createDefaultConfig()
	if def.InitialDelay != time.Second || def.Timeout != 0 {
		t.Errorf("defaults: initial_delay %v timeout %v, want 1s and 0", def.InitialDelay, def.Timeout)
	}
	c := loadConfig(t, "controller")
	if err := confmap.Validate(c); err != nil {
		t.Fatalf("config invalid: %v", err)
	}
	if c.CollectionInterval != 5*time.Second || c.InitialDelay != 0 || c.Timeout != 3*time.Second {
		t.Errorf("controller: %+v", c.ControllerConfig)
	}
	err := confmap.Validate(loadConfig(t, "negative_timeout"))
	if err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("negative timeout: %v", err)
	}
}

// TestUDPIdleTimeout: the default is the tracer's, and a timeout that is not
// positive is refused by name.
func TestUDPIdleTimeout(t *testing.T) {
	if d := createDefaultConfig().UDPIdleTimeout; d != time.Minute {
		t.Errorf("default udp_idle_timeout %v, want 1m", d)
	}
	err := confmap.Validate(loadConfig(t, "zero_udp_idle"))
	if !errors.Is(err, ErrInvalidInterval) || !strings.Contains(err.Error(), "udp_idle_timeout") {
		t.Errorf("zero udp_idle_timeout: %v", err)
	}
}

// TestFailureLogsConfig: the failure logs allow 100 records a second by
// default; a rate is set by key, and 0 turns them off.
func TestFailureLogsConfig(t *testing.T) {
	if r := loadConfig(t, "").FailureLogs.MaxPerSecond; r != 100 {
		t.Errorf("default failure_logs::max_per_second %d, want 100", r)
	}
	for name, want := range map[string]int{"failure_logs": 5, "no_failure_logs": 0} {
		c := loadConfig(t, name)
		if err := confmap.Validate(c); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.FailureLogs.MaxPerSecond != want {
			t.Errorf("%s: max_per_second %d, want %d", name, c.FailureLogs.MaxPerSecond, want)
		}
	}
}

// TestNATConfig: the NAT translation is on by default with the table's
// default bound; the bound is set by key, and a translation that is off
// needs none.
func TestNATConfig(t *testing.T) {
	if c := loadConfig(t, "").NAT; !c.Enabled || c.MaxEntries != nat.DefaultMaxEntries {
		t.Errorf("default nat %+v, want enabled with max_entries %d", c, nat.DefaultMaxEntries)
	}
	for name, want := range map[string]NATConfig{"nat": {Enabled: true, MaxEntries: 1000}, "no_nat": {}} {
		c := loadConfig(t, name)
		if err := confmap.Validate(c); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if c.NAT != want {
			t.Errorf("%s: %+v, want %+v", name, c.NAT, want)
		}
	}
}

// TestPeerGroupsConfig: peer groups are off by default; a list of groups and
// a catch-all load in order; each mistake is refused with its sentinel, the
// key and the offending value.
func TestPeerGroupsConfig(t *testing.T) {
	def := loadConfig(t, "").Aggregation
	if def.PeerGroups != nil || def.OtherPeers != "" {
		t.Errorf("default peer groups %+v, other_peers %q: want none", def.PeerGroups, def.OtherPeers)
	}
	c := loadConfig(t, "peer_groups")
	if err := confmap.Validate(c); err != nil {
		t.Fatalf("peer_groups: %v", err)
	}
	want := []PeerGroupConfig{
		{Name: "cluster", CIDRs: []string{"10.0.0.0/8", "fd00::/8"}},
		{Name: "services", CIDRs: []string{"10.96.0.0/12"}},
		{Name: "private", CIDRs: []string{"172.16.0.0/12", "192.168.0.0/16"}},
	}
	if !reflect.DeepEqual(c.Aggregation.PeerGroups, want) || c.Aggregation.OtherPeers != "public" {
		t.Errorf("peer_groups %+v other_peers %q, want %+v and public", c.Aggregation.PeerGroups, c.Aggregation.OtherPeers, want)
	}
	ac, err := aggregateConfig(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(ac.PeerGroups) != 3 || ac.PeerGroups[0].Prefixes[1] != netip.MustParsePrefix("fd00::/8") || ac.OtherPeers != "public" {
		t.Errorf("aggregate config: groups %+v other %q", ac.PeerGroups, ac.OtherPeers)
	}

	for _, tt := range []struct {
		name     string
		sentinel error
		says     []string // the key and the offending value
	}{
		{"bad_cidr", ErrInvalidCIDR, []string{"aggregation::peer_groups[0]::cidrs", `"10.0.0.0/33"`}},
		{"host_bits_cidr", ErrInvalidCIDR, []string{"aggregation::peer_groups[0]::cidrs", `"10.1.2.3/8"`, "10.0.0.0/8"}},
		{"mapped_cidr", ErrInvalidCIDR, []string{"aggregation::peer_groups[0]::cidrs", `"::ffff:10.0.0.0/104"`, "IPv4-mapped"}},
		{"no_cidrs", ErrNoCIDRs, []string{"aggregation::peer_groups[0]::cidrs", `"cluster"`}},
		{"empty_group_name", ErrInvalidGroupName, []string{"aggregation::peer_groups[0]::name", `""`}},
		{"address_group_name", ErrInvalidGroupName, []string{"aggregation::peer_groups[0]::name", `"10.0.0.1"`}},
		{"duplicate_group", ErrDuplicateGroup, []string{"aggregation::peer_groups[1]::name", `"cluster"`}},
		{"duplicate_cidr", ErrDuplicateCIDR, []string{"aggregation::peer_groups[1]::cidrs", `"10.0.0.0/8"`, `"cluster" and "private"`}},
		{"other_peers_is_group", ErrDuplicateGroup, []string{"aggregation::other_peers", `"public"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := loadConfig(t, tt.name)
			err := confmap.Validate(c)
			if !errors.Is(err, tt.sentinel) {
				t.Fatalf("error %v does not wrap %q", err, tt.sentinel)
			}
			for _, s := range tt.says {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %s", err, s)
				}
			}
			// The receiver would refuse to start with it too.
			if _, err := aggregateConfig(c); !errors.Is(err, tt.sentinel) {
				t.Errorf("aggregateConfig: %v", err)
			}
		})
	}
}
