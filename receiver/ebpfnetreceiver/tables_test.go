// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/confmap/confmaptest"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/aggregate"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadata"
)

// TestAttributeTableMatchesMetadata: the aggregator's attribute table and
// metadata.yaml declare the same connection attributes, with the same
// defaults, so adding one means an entry in each and nothing else drifts.
func TestAttributeTableMatchesMetadata(t *testing.T) {
	md, err := confmaptest.LoadConf("metadata.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The attributes the metrics use (telemetry has its own, ebpfnet.tracer.*).
	used := map[string]bool{}
	optIn := map[string]bool{}
	for name := range md.Get("metrics").(map[string]any) {
		for _, a := range md.Get("metrics::" + name + "::attributes").([]any) {
			used[a.(string)] = true
		}
	}
	for a := range used {
		if md.Get("attributes::"+a+"::requirement_level") == "opt_in" {
			optIn[a] = true
		}
	}
	all := aggregate.Keys(^aggregate.AttrSet(0))
	var usedKeys []string
	for a := range used {
		usedKeys = append(usedKeys, a)
	}
	slices.Sort(usedKeys)
	if !slices.Equal(all, usedKeys) {
		t.Fatalf("attribute table %v, metadata.yaml metrics use %v", all, usedKeys)
	}
	// The histograms' default key is every connection attribute that is not
	// opt-in in metadata.yaml, as the generated sums' defaults are.
	var want []string
	for _, a := range aggregate.Keys(aggregate.PerConnection()) {
		if !optIn[a] {
			want = append(want, a)
		}
	}
	if got := aggregate.Keys(aggregate.DefaultKey()); !slices.Equal(got, want) {
		t.Errorf("default key %v, metadata.yaml's non-opt-in connection attributes %v", got, want)
	}
	if got := createDefaultConfig().ConnectionDuration.Attributes; !slices.Equal(got, want) {
		t.Errorf("duration histogram default attributes %v, want %v", got, want)
	}
}

// TestDomainIsStandardLibraryOnly: the connection domain and the aggregation
// depend on nothing outside the standard library and the project, so they
// build and test anywhere and name no kernel hook, pdata or logger.
func TestDomainIsStandardLibraryOnly(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not on PATH: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./internal/conns", "./internal/aggregate").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const project = "github.com/otelcol-ebpfnet/otelcol-ebpfnet/"
	for _, p := range strings.Fields(string(out)) {
		if !strings.HasPrefix(p, project) {
			t.Errorf("domain package depends on %s", p)
		}
	}
}

// TestMetricTableMatchesMetadata: every metric of metadata.yaml has its row
// in metrics, and every sum row names a metric of metadata.yaml.
func TestMetricTableMatchesMetadata(t *testing.T) {
	generated := map[string]bool{}
	mc := reflect.TypeFor[metadata.MetricsConfig]()
	for i := range mc.NumField() {
		generated[mc.Field(i).Tag.Get("mapstructure")] = true
	}
	rows := map[string]bool{}
	for _, d := range metrics {
		rows[d.name] = true
		if d.histogram == nil && !generated[d.name] {
			t.Errorf("sum %s is not in metadata.yaml", d.name)
		}
		if d.histogram != nil && generated[d.name] {
			t.Errorf("histogram %s is also a generated metric", d.name)
		}
	}
	for name := range generated {
		if !rows[name] {
			t.Errorf("metadata.yaml metric %s has no row in metrics", name)
		}
	}
}
