// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"testing"

	"github.com/cilium/ebpf"
)

// TestDefaultMaxConnectionsIsC pins Go's copy of the connection table's
// default size to the one bpf/common/sizing.h compiles into the object
// (CONN_MAP_ENTRIES). Go needs its own constant because the receiver's
// configuration uses it on every OS, where the object cannot be loaded.
func TestDefaultMaxConnectionsIsC(t *testing.T) {
	spec, err := loadNetflow()
	if err != nil {
		t.Fatal(err)
	}
	var s netflowMapSpecs
	if err := spec.Assign(&s); err != nil {
		t.Fatal(err)
	}
	if s.Conns.MaxEntries != DefaultMaxConnections {
		t.Errorf("DefaultMaxConnections = %d, bpf/common/sizing.h CONN_MAP_ENTRIES = %d", DefaultMaxConnections, s.Conns.MaxEntries)
	}
}

// TestHookTableCoversObject: every program of the BPF object is in the hook
// table (or is a load-time probe), so none is compiled and never attached,
// and no entry of the table lacks its program.
func TestHookTableCoversObject(t *testing.T) {
	spec, s, err := loadSpec(DefaultMaxConnections)
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{s.EnetPrCookie.Name: true, s.EnetPrSkbread.Name: true}
	for _, dp := range hookTable(&s.netflowProgramSpecs, true) {
		for _, c := range dp.candidates {
			for i, p := range c.programs {
				specs := []*ebpf.ProgramSpec{p.spec}
				if p.byArgs != nil {
					specs = []*ebpf.ProgramSpec{p.byArgs[5], p.byArgs[6]}
				}
				for _, ps := range specs {
					if ps == nil {
						t.Errorf("%s/%s: program %d has no spec", dp.name, c.sub, i)
						continue
					}
					used[ps.Name] = true
				}
			}
		}
	}
	for name := range spec.Programs {
		if !used[name] {
			t.Errorf("program %s of the object is in no hook", name)
		}
	}
}
