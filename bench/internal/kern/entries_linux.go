// SPDX-License-Identifier: Apache-2.0

//go:build linux

package kern

import (
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/cilium/ebpf"
)

// MapEntries counts the entries of each map named in names that process pid holds. It walks
// each map with batch lookups: a hash map's batch walk goes bucket by bucket, so an entry deleted
// meanwhile does not send it back to the first key and count entries twice, as a NextKey walk
// would.
func MapEntries(pid int, names ...string) (map[string]int, error) {
	objs, err := ObjectsOf(pid)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for id, mm := range objs.Maps {
		if !slices.Contains(names, mm.Name) {
			continue
		}
		m, err := ebpf.NewMapFromID(id)
		if err != nil {
			return nil, fmt.Errorf("open %s map %d: %w", mm.Name, id, err)
		}
		n, err := countEntries(m)
		m.Close()
		if err != nil {
			return nil, fmt.Errorf("count %s map %d: %w", mm.Name, id, err)
		}
		out[mm.Name] += n
	}
	for _, name := range names {
		if _, ok := out[name]; !ok {
			return nil, fmt.Errorf("process %d holds no map named %s", pid, name)
		}
	}
	return out, nil
}

func countEntries(m *ebpf.Map) (int, error) {
	const chunk = 4096 // entries per batch; more than any hash bucket holds
	buf := func(size uint32) any {
		t := reflect.SliceOf(reflect.ArrayOf(int(size), reflect.TypeFor[byte]()))
		return reflect.MakeSlice(t, chunk, chunk).Interface()
	}
	keys, vals := buf(m.KeySize()), buf(m.ValueSize())
	var cursor ebpf.MapBatchCursor
	total := 0
	for {
		n, err := m.BatchLookup(&cursor, keys, vals, nil)
		total += n
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
