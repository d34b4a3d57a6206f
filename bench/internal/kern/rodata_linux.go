// SPDX-License-Identifier: Apache-2.0

//go:build linux

package kern

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// ConstOf reads the load-time value of a `volatile const` global (name) of the BPF object whose
// maps process pid holds: the bytes of that variable in the object's .rodata map, found through
// the map's BTF (the Datasec ".rodata" and its variables). A driver checks with it what a
// process actually loaded, not what its configuration meant to load.
func ConstOf(pid int, name string) ([]byte, error) {
	objs, err := ObjectsOf(pid)
	if err != nil {
		return nil, err
	}
	for id, mm := range objs.Maps {
		if !strings.HasSuffix(mm.Name, ".rodata") {
			continue
		}
		b, found, err := constIn(id, name)
		if err != nil {
			return nil, fmt.Errorf("map %s (%d): %w", mm.Name, id, err)
		}
		if found {
			return b, nil
		}
	}
	return nil, fmt.Errorf("process %d: no .rodata map holds %s", pid, name)
}

func constIn(id ebpf.MapID, name string) ([]byte, bool, error) {
	m, err := ebpf.NewMapFromID(id)
	if err != nil {
		return nil, false, err
	}
	defer m.Close()
	h, err := m.Handle()
	if err != nil {
		return nil, false, fmt.Errorf("btf: %w", err)
	}
	defer h.Close()
	spec, err := h.Spec(nil)
	if err != nil {
		return nil, false, fmt.Errorf("btf: %w", err)
	}
	var sec *btf.Datasec
	if err := spec.TypeByName(".rodata", &sec); err != nil {
		if errors.Is(err, btf.ErrNotFound) {
			return nil, false, nil
		}
		return nil, false, err
	}
	if sec.Size != m.ValueSize() {
		return nil, false, nil // another object's .rodata beside it
	}
	for _, v := range sec.Vars {
		if v.Type.TypeName() != name {
			continue
		}
		val, err := m.LookupBytes(uint32(0))
		if err != nil {
			return nil, false, fmt.Errorf("lookup: %w", err)
		}
		return val[v.Offset : v.Offset+v.Size], true, nil
	}
	return nil, false, nil
}
