// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"go.uber.org/zap"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// Poll returns the open connections and those closed since the last poll.
//
// Order matters: the ring is drained first, then the table walked. A
// connection that closes after the drain is gone from the table before the
// walk, or was read by the walk while still open; either way its final record
// comes with the next poll, so it is never in Active and Closed at once.
func (t *Tracer) Poll(ctx context.Context) (conns.Snapshot, error) {
	t.pollMu.Lock()
	defer t.pollMu.Unlock()

	// Before the connections: a cgroup exists before any socket its
	// processes own.
	cgroups := t.drainCgroupPaths()
	recs, err := t.drainRing(ctx)
	if err != nil {
		return conns.Snapshot{}, err
	}
	// Before the connections too: a connection's peer was resolved before
	// it connected, so its name is learnt before the connection is named.
	dns := t.drainDNS()
	clk := now()
	// The open connections are most of a poll: reusing last poll's slice saves
	// allocating and faulting in 100k Conn values each time (see conns.Source).
	snap := conns.Snapshot{Time: clk.wall, Active: t.activeBuf[:0], Cgroups: cgroups, DNS: dns}
	released := splitRecords(recs, clk, &snap)
	if err := t.collectReleasedFallback(released); err != nil {
		return conns.Snapshot{}, err
	}
	var idleBefore uint64 // UDP flows whose last datagram is older end
	if clk.mono > uint64(t.udpIdle) {
		idleBefore = clk.mono - uint64(t.udpIdle)
	}
	if err := walkTable(t.table, released, idleBefore, clk, &snap); err != nil {
		return conns.Snapshot{}, err
	}
	t.activeBuf = snap.Active
	t.log.Debug("poll", zap.Int("ring_records", len(recs)), zap.Int("dns_responses", len(dns)), zap.Int("udp_sockets_ended", len(released)),
		zap.Int("active", len(snap.Active)), zap.Int("closed", len(snap.Closed)))
	return snap, nil
}

// drainCgroupPaths takes the cgroups the kernel created since the last poll
// out of cgroup_paths (bpf/cgroup/mkdir.h). It deletes only what it read: an
// insert during the walk waits for the next poll. A path the buffer may have
// cut short is counted and left to the resolver's walk.
func (t *Tracer) drainCgroupPaths() []conns.CgroupPath {
	var (
		id   uint64
		p    netflowCgroupPath
		ids  []uint64
		out  []conns.CgroupPath
		full = uint32(len(p.Path))
	)
	it := t.objs.CgroupPaths.Iterate()
	for it.Next(&id, &p) {
		ids = append(ids, id)
		if p.Len >= full {
			t.cgroupPathsCut++
			continue
		}
		out = append(out, conns.CgroupPath{ID: id, Path: cString(p.Path[:])})
	}
	if err := it.Err(); err != nil {
		t.restarts++ // what the walk missed stays for the next poll
		t.log.Debug("cgroup path table walk", zap.Error(err))
	}
	for _, id := range ids {
		_ = t.objs.CgroupPaths.Delete(id)
	}
	return out
}

// collectReleasedFallback finds UDP sockets released while the ring was full:
// the BPF side left them in socks marked SOCK_RELEASED. It looks only when the
// counter that says so has moved.
func (t *Tracer) collectReleasedFallback(released map[uint64]struct{}) error {
	tel, err := t.kernelCounters()
	if err != nil {
		return err
	}
	failed := tel[netflowTelemetryCounterTELEMETRY_RING_RESERVE_FAILED]
	if failed == t.ringFailedSeen {
		return nil
	}
	t.ringFailedSeen = failed
	var id uint64
	var si netflowSockInfo
	it := t.objs.Socks.Iterate()
	var gone []uint64
	for it.Next(&id, &si) {
		if si.Tracked == uint8(netflowSockTrackStateSOCK_RELEASED) {
			released[id] = struct{}{}
			gone = append(gone, id)
		}
	}
	if err := it.Err(); err != nil {
		t.restarts++
		t.log.Debug("socket table walk", zap.Error(err))
	}
	for _, c := range gone {
		_ = t.objs.Socks.Delete(c)
	}
	return nil
}

// The batching logic of a poll, apart from the kernel so it is tested without
// one: ring records and the connection table in, one Snapshot out.

// connTable is what a poll needs of the kernel connection table; the BPF map
// implements it, tests use a fake.
type connTable interface {
	// walk calls fn once for each entry, in no particular order.
	walk(fn func(k *netflowConnTuple, v *netflowConnValue) error) error
	// take removes an entry and returns its last value, or an error wrapping
	// ebpf.ErrKeyNotExist when it is gone.
	take(k *netflowConnTuple, v *netflowConnValue) error
}

// splitRecords adds the closed connections among ring records to snap and
// returns the UDP sockets that ended (by sock_id).
func splitRecords(recs []netflowConnRecord, clk clock, snap *conns.Snapshot) map[uint64]struct{} {
	released := map[uint64]struct{}{}
	for i := range recs {
		r := &recs[i]
		switch netflowRecordKind(r.Kind) {
		case netflowRecordKindRECORD_CONN_CLOSED:
			snap.Closed = append(snap.Closed, connFromBPF(&r.Tuple, &r.Value, clk))
		case netflowRecordKindRECORD_SOCK_RELEASED:
			released[r.Value.Stats.SockId] = struct{}{}
		}
	}
	return released
}

// walkTable sorts the table's entries into snap: entries of released UDP
// sockets, UDP flows whose last datagram is older than idleBefore
// (CLOCK_MONOTONIC ns) and entries the BPF side could not push to a full ring
// (CONN_CLOSED) are taken out of the table and reported closed; the rest are
// active. The ring must be drained before: a connection that closes after the
// drain is either gone from the table already or read here while still open,
// and its final record comes with the next poll, so no connection is in
// Active and Closed at once. A flow ended for idleness that a datagram starts
// again during the walk is a new entry under the same key, which the walk does
// not visit twice: it is reported from the next poll on.
func walkTable(tbl connTable, released map[uint64]struct{}, idleBefore uint64, clk clock, snap *conns.Snapshot) error {
	return tbl.walk(func(k *netflowConnTuple, v *netflowConnValue) error {
		udp := k.Metadata&uint32(netflowConnMetadataCONN_UDP) != 0
		_, gone := released[v.Stats.SockId]
		gone = gone && udp
		idle := udp && !gone && v.Stats.Timestamp < idleBefore
		if !gone && !idle && v.Stats.Flags&uint8(netflowConnFlagsCONN_CLOSED) == 0 {
			snap.Active = append(snap.Active, connFromBPF(k, v, clk))
			return nil
		}
		// The window this leaves for an idle flow: a datagram whose program
		// looked the entry up just before take removes it adds to the removed
		// value, and those bytes are lost. It needs a datagram within
		// microseconds of the end of a whole idle timeout.
		var final netflowConnValue
		if err := tbl.take(k, &final); errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil // the BPF side replaced it (tuple reuse) and reported the old one itself
		} else if err != nil {
			return fmt.Errorf("collect closed connection: %w", err)
		}
		switch {
		case idle:
			// The flow ended with its last datagram (if one came between the
			// walk's read and take, the entry is gone all the same: what it
			// carried is reported, the next datagram starts a new flow).
			final.Stats.Duration = final.Stats.Timestamp - final.Stats.Start
		case gone && final.Stats.Duration == 0:
			final.Stats.Duration = clk.mono - final.Stats.Start
		}
		snap.Closed = append(snap.Closed, connFromBPF(k, &final, clk))
		return nil
	})
}

// kernelTable is the BPF connection table, read through its BPF iterator
// (bpf/tcp/iter.h: open TCP connections come with the kernel's counts of the
// moment), or, where the kernel refuses iterators, refreshed in place by a
// program the poll runs and then read in batches; with the buffers a walk
// needs kept from one poll to the next (one poll at a time).
type kernelTable struct {
	m       *ebpf.Map
	it      *link.Iter
	refresh *ebpf.Program // set instead of it
	buf     []byte
	seen    map[netflowConnTuple]struct{}
	keys    []netflowConnTuple // batch buffers of the refresh path
	vals    []netflowConnValue
	// revisits counts entries a walk met twice because the table changed under
	// it (Telemetry's IterationRestarts).
	revisits uint64
}

// iterReadBytes is how much one read of the iterator asks for: the kernel
// runs the program for the entries that fit, about 390 records.
const iterReadBytes = 64 << 10

// batchEntries is how many entries one batch lookup of the refresh path asks
// for: about the bytes of one iterator read.
const batchEntries = iterReadBytes / recordSize

func newKernelTable(m *ebpf.Map, it *link.Iter, refresh *ebpf.Program) *kernelTable {
	kt := &kernelTable{m: m, it: it, refresh: refresh, seen: map[netflowConnTuple]struct{}{}}
	if it != nil {
		kt.buf = make([]byte, iterReadBytes+recordSize)
	} else {
		kt.keys, kt.vals = make([]netflowConnTuple, batchEntries), make([]netflowConnValue, batchEntries)
	}
	return kt
}

// walk reads every entry of the table from a new run of the iterator. A read
// can end inside a record: the rest comes with the next. A hash table walk can
// revisit a bucket when entries move under it; an entry is passed to fn once.
func (kt *kernelTable) walk(fn func(k *netflowConnTuple, v *netflowConnValue) error) error {
	if kt.it == nil {
		return kt.walkRefreshed(fn)
	}
	rd, err := kt.it.Open()
	if err != nil {
		return fmt.Errorf("walk connection table: %w", err)
	}
	defer rd.Close()
	clear(kt.seen) // keeps its buckets for the next walk
	held := 0
	var rec netflowConnRecord
	for {
		n, rerr := rd.Read(kt.buf[held:])
		held += n
		off := 0
		for ; held-off >= recordSize; off += recordSize {
			if err := decodeRecord(kt.buf[off:off+recordSize], &rec); err != nil {
				return fmt.Errorf("walk connection table: %w", err)
			}
			if _, dup := kt.seen[rec.Tuple]; dup {
				kt.revisits++
				continue
			}
			kt.seen[rec.Tuple] = struct{}{}
			if err := fn(&rec.Tuple, &rec.Value); err != nil {
				return err
			}
		}
		held = copy(kt.buf, kt.buf[off:held])
		if errors.Is(rerr, io.EOF) || (rerr == nil && n == 0) {
			if held != 0 {
				return fmt.Errorf("walk connection table: %d bytes of a partial record at the end", held)
			}
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("walk connection table: %w", rerr)
		}
	}
}

// walkRefreshed is walk where the kernel refuses iterators: the refresh
// program writes fresh counts into every open TCP entry, then batch lookups
// read the table. A hash table's batch walk goes bucket by bucket and never
// repeats one, but an entry deleted and inserted again under the same key
// between two batches may be met twice: it is passed to fn once.
func (kt *kernelTable) walkRefreshed(fn func(k *netflowConnTuple, v *netflowConnValue) error) error {
	if kt.refresh == nil {
		return errors.New("walk connection table: neither an iterator nor a refresh program")
	}
	if _, err := kt.refresh.Run(&ebpf.RunOptions{}); err != nil {
		return fmt.Errorf("walk connection table: refresh: %w", err)
	}
	clear(kt.seen)
	var cursor ebpf.MapBatchCursor
	for {
		n, err := kt.m.BatchLookup(&cursor, kt.keys, kt.vals, nil)
		for i := range n {
			if _, dup := kt.seen[kt.keys[i]]; dup {
				kt.revisits++
				continue
			}
			kt.seen[kt.keys[i]] = struct{}{}
			if err := fn(&kt.keys[i], &kt.vals[i]); err != nil {
				return err
			}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil // the end of the table
		}
		if err != nil {
			return fmt.Errorf("walk connection table: %w", err)
		}
	}
}

// take removes a finished entry from the table and returns its last value.
// Hash maps gained lookup-and-delete in 5.14; before that it is a lookup and a
// delete, which is as good here: a finished entry is written again only if a
// new socket reuses the tuple in between, and then the BPF side reports the
// old one itself.
func (kt *kernelTable) take(k *netflowConnTuple, v *netflowConnValue) error {
	err := kt.m.LookupAndDelete(k, v)
	if err == nil || errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	if err := kt.m.Lookup(k, v); err != nil {
		return err
	}
	return kt.m.Delete(k)
}
