// SPDX-License-Identifier: Apache-2.0

//go:build linux

// Package kern reads what the benchmarks need from the kernel: per-program run statistics,
// the BPF maps and programs a process holds and the load-time constants it loaded, and fills a
// running tracer's connection table with synthetic entries for the scale benchmark.
package kern

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// EnableStats turns on the kernel's BPF run-time statistics until the returned closer is
// closed. They cost two clock reads per program run, so they are on only while measuring.
func EnableStats() (io.Closer, error) {
	return ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
}

// ProgStat is one loaded program's cumulative statistics.
type ProgStat struct {
	ID              ebpf.ProgramID
	Name            string
	Type            ebpf.ProgramType
	RuntimeNS       uint64
	RunCount        uint64
	RecursionMisses uint64
}

// Programs returns the statistics of every loaded program for which keep(name, id) is true.
func Programs(keep func(name string, id ebpf.ProgramID) bool) (map[ebpf.ProgramID]ProgStat, error) {
	out := map[ebpf.ProgramID]ProgStat{}
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("program ids: %w", err)
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		info, err := p.Info()
		if err == nil && keep(info.Name, id) {
			st, serr := p.Stats()
			if serr == nil {
				out[id] = ProgStat{ID: id, Name: info.Name, Type: info.Type, RuntimeNS: uint64(st.Runtime), RunCount: st.RunCount, RecursionMisses: st.RecursionMisses}
			}
		}
		p.Close()
	}
}

// FDObjects lists the BPF programs and maps whose file descriptors process pid holds, with
// each map's memlock (the kernel's estimate of its memory) from /proc/<pid>/fdinfo.
type FDObjects struct {
	Progs map[ebpf.ProgramID]bool
	Maps  map[ebpf.MapID]MapMem
}

// MapMem is one map's kernel memory.
type MapMem struct {
	Name       string
	MaxEntries uint32
	Memlock    uint64 // bytes
}

// ObjectsOf reads /proc/<pid>/fdinfo.
func ObjectsOf(pid int) (FDObjects, error) {
	out := FDObjects{Progs: map[ebpf.ProgramID]bool{}, Maps: map[ebpf.MapID]MapMem{}}
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return out, err
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		f := fdinfo(string(b))
		if v, ok := f["prog_id"]; ok {
			out.Progs[ebpf.ProgramID(v)] = true
		}
		if v, ok := f["map_id"]; ok {
			id := ebpf.MapID(v)
			mm := MapMem{Memlock: f["memlock"], MaxEntries: uint32(f["max_entries"])}
			if m, err := ebpf.NewMapFromID(id); err == nil {
				if info, err := m.Info(); err == nil {
					mm.Name = info.Name
				}
				m.Close()
			}
			out.Maps[id] = mm
		}
	}
	return out, nil
}

func fdinfo(s string) map[string]uint64 {
	out := map[string]uint64{}
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[strings.TrimSpace(k)] = n
		}
	}
	return out
}
