// SPDX-License-Identifier: Apache-2.0

//go:build linux

package kern

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"
)

// FillConns writes n synthetic open TCP connections into the connection table ("conns") that
// process pid holds, as if the tracer had seen them: one local address, peers 10.x.y.z on four
// server ports, owned by ownerPID in network namespace netns, with payload counters. Field
// offsets come from the map's BTF (struct conn_tuple / conn_value), so the fill follows the
// tracer's layout without importing it. It returns the map's memlock before and after.
func FillConns(pid, n int, ownerPID, netns uint32) error {
	objs, err := ObjectsOf(pid)
	if err != nil {
		return err
	}
	var m *ebpf.Map
	for id, mm := range objs.Maps {
		if mm.Name == "conns" {
			if m, err = ebpf.NewMapFromID(id); err != nil {
				return fmt.Errorf("open conns map %d: %w", id, err)
			}
			break
		}
	}
	if m == nil {
		return errors.New("process holds no map named conns")
	}
	defer m.Close()
	h, err := m.Handle()
	if err != nil {
		return fmt.Errorf("conns map BTF: %w", err)
	}
	defer h.Close()
	spec, err := h.Spec(nil)
	if err != nil {
		return fmt.Errorf("conns map BTF: %w", err)
	}
	key, err := newLayout(spec, "conn_tuple", int(m.KeySize()))
	if err != nil {
		return err
	}
	val, err := newLayout(spec, "conn_value", int(m.ValueSize()))
	if err != nil {
		return err
	}
	tcp, err := enumValue(spec, "conn_metadata", "TCP")
	if err != nil {
		return err
	}
	v4, err := enumValue(spec, "conn_metadata", "_V4")
	if err != nil {
		return err
	}
	outgoing, err := enumValue(spec, "conn_direction", "OUTGOING")
	if err != nil {
		return err
	}
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	now := uint64(ts.Nano())
	local := netip.MustParseAddr("10.0.0.1").As16()
	for i := range n {
		k := make([]byte, m.KeySize())
		v := make([]byte, m.ValueSize())
		peer := netip.AddrFrom4([4]byte{10, 1 + byte(i>>22), byte(i >> 14), byte(i % 64)}).As16()
		for _, err := range []error{
			key.bytes(k, "saddr_h", local[:]),
			key.bytes(k, "daddr_h", peer[:]),
			key.put(k, "sport", uint64(uint16(i))),
			key.put(k, "dport", uint64(443+i%4)),
			key.put(k, "netns", uint64(netns)),
			key.put(k, "pid", uint64(ownerPID)),
			key.put(k, "metadata", tcp|v4),
			val.put(v, "stats.sent_bytes", uint64(1000+i)),
			val.put(v, "stats.recv_bytes", 2000),
			val.put(v, "stats.sent_packets", 2),
			val.put(v, "stats.recv_packets", 2),
			val.put(v, "stats.timestamp", now),
			val.put(v, "stats.start", now),
			val.put(v, "stats.cookie", uint64(1<<40+i)),
			val.put(v, "stats.sock_id", uint64(1<<44+i)),
			val.put(v, "stats.direction", outgoing),
		} {
			if err != nil {
				return err
			}
		}
		if err := m.Update(k, v, ebpf.UpdateNoExist); err != nil {
			return fmt.Errorf("conns: insert synthetic entry %d of %d: %w", i, n, err)
		}
	}
	return nil
}

// layout is where each (dotted) field of a struct lives.
type layout map[string]field

type field struct{ off, size int }

func newLayout(spec *btf.Spec, name string, size int) (layout, error) {
	var s *btf.Struct
	if err := spec.TypeByName(name, &s); err != nil {
		return nil, fmt.Errorf("BTF struct %s: %w", name, err)
	}
	if int(s.Size) != size {
		return nil, fmt.Errorf("BTF struct %s is %d bytes, map entry %d", name, s.Size, size)
	}
	l := layout{}
	var walk func(s *btf.Struct, prefix string, base int)
	walk = func(s *btf.Struct, prefix string, base int) {
		for _, mb := range s.Members {
			off := base + int(mb.Offset.Bytes())
			t := btf.UnderlyingType(mb.Type)
			if inner, ok := t.(*btf.Struct); ok {
				walk(inner, prefix+mb.Name+".", off)
				continue
			}
			sz, _ := btf.Sizeof(t)
			l[prefix+mb.Name] = field{off, sz}
		}
	}
	walk(s, "", 0)
	return l, nil
}

func (l layout) put(b []byte, name string, v uint64) error {
	f, ok := l[name]
	if !ok {
		return fmt.Errorf("field %s not in the BTF layout", name)
	}
	switch f.size {
	case 1:
		b[f.off] = byte(v)
	case 2:
		binary.NativeEndian.PutUint16(b[f.off:], uint16(v))
	case 4:
		binary.NativeEndian.PutUint32(b[f.off:], uint32(v))
	case 8:
		binary.NativeEndian.PutUint64(b[f.off:], v)
	default:
		return fmt.Errorf("field %s has %d bytes", name, f.size)
	}
	return nil
}

// bytes copies raw bytes starting at a field: the 16-byte addresses span the _h/_l pair.
func (l layout) bytes(b []byte, name string, raw []byte) error {
	f, ok := l[name]
	if !ok {
		return fmt.Errorf("field %s not in the BTF layout", name)
	}
	copy(b[f.off:], raw)
	return nil
}

// knownEnums are the values of bpf/common/types.h, for when the map's BTF (which cilium/ebpf
// trims to what the maps mention) lacks the enum.
var knownEnums = map[string]uint64{"conn_metadata/TCP": 1, "conn_metadata/_V4": 4, "conn_direction/OUTGOING": 2}

func enumValue(spec *btf.Spec, enum, suffix string) (uint64, error) {
	var e *btf.Enum
	if err := spec.TypeByName(enum, &e); err != nil {
		if v, ok := knownEnums[enum+"/"+suffix]; ok {
			return v, nil
		}
		return 0, fmt.Errorf("BTF enum %s: %w", enum, err)
	}
	for _, v := range e.Values {
		if strings.HasSuffix(v.Name, suffix) {
			return v.Value, nil
		}
	}
	return 0, fmt.Errorf("BTF enum %s has no value ending in %s", enum, suffix)
}
