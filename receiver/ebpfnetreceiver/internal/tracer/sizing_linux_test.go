// SPDX-License-Identifier: Apache-2.0

package tracer

import "testing"

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
