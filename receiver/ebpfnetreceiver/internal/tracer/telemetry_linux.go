// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// Telemetry returns the drop and fallback counters since New.
func (t *Tracer) Telemetry() conns.Telemetry {
	k, err := t.kernelCounters()
	if err != nil {
		t.log.Warn("read telemetry", zap.Error(err))
	}
	t.pendingMu.Lock()
	lost := t.lost // and dns_answers records, below
	t.pendingMu.Unlock()
	t.pollMu.Lock()
	restarts, cut, lost := t.restarts+t.table.revisits, t.cgroupPathsCut, lost+t.dnsUndecoded
	t.pollMu.Unlock()
	return conns.Telemetry{
		ConnMapFull:       k[netflowTelemetryCounterTELEMETRY_CONN_MAP_FULL],
		SockMapFull:       k[netflowTelemetryCounterTELEMETRY_SOCK_MAP_FULL],
		RingReserveFailed: k[netflowTelemetryCounterTELEMETRY_RING_RESERVE_FAILED],
		ClosedLost:        k[netflowTelemetryCounterTELEMETRY_CLOSED_LOST],
		MissedPeer:        k[netflowTelemetryCounterTELEMETRY_MISSED_PEER],
		IterationRestarts: restarts,
		LostRecords:       lost,
		TupleReused:       k[netflowTelemetryCounterTELEMETRY_TUPLE_REUSED],
		ListenMapFull:     k[netflowTelemetryCounterTELEMETRY_LISTEN_MAP_FULL],
		CookieMapFull:     k[netflowTelemetryCounterTELEMETRY_COOKIE_MAP_FULL],
		Rescued:           k[netflowTelemetryCounterTELEMETRY_RESCUED],
		Classified:        k[netflowTelemetryCounterTELEMETRY_CLASSIFIED],
		Unclassified:      k[netflowTelemetryCounterTELEMETRY_UNCLASSIFIED],
		ClassifyShort:     k[netflowTelemetryCounterTELEMETRY_CLASSIFY_SHORT],
		CgroupPathLost:    k[netflowTelemetryCounterTELEMETRY_CGROUP_PATH_LOST] + cut,
		DNSRingFull:       k[netflowTelemetryCounterTELEMETRY_DNS_RING_FULL],
		DNSNoSocket:       k[netflowTelemetryCounterTELEMETRY_DNS_NO_SOCKET],
		KernelSkipped:     t.loader.skippedEvents(k[netflowTelemetryCounterTELEMETRY_RESCUED]),
	}
}

// kernelCounters sums the per-CPU telemetry array.
func (t *Tracer) kernelCounters() ([netflowTelemetryCounterTELEMETRY_COUNTER_MAX]uint64, error) {
	var out [netflowTelemetryCounterTELEMETRY_COUNTER_MAX]uint64
	var perCPU []uint64
	for i := range out {
		if err := t.objs.Telemetry.Lookup(uint32(i), &perCPU); err != nil {
			return out, fmt.Errorf("read telemetry counter %d: %w", i, err)
		}
		for _, v := range perCPU {
			out[i] += v
		}
	}
	return out, nil
}

// programMisses is a loaded program's name, role and how often the kernel
// skipped it.
type programMisses struct {
	name   string
	role   role
	misses uint64
}

// recursionMisses lists the kernel's skip count (recursion_misses) of every
// loaded program, in attach order; a program whose stats cannot be read is
// left out.
func (l *loader) recursionMisses() []programMisses {
	out := make([]programMisses, 0, len(l.progs))
	for _, p := range l.progs {
		if st, err := p.Stats(); err == nil {
			out = append(out, programMisses{name: p.name, role: p.role, misses: st.RecursionMisses})
		}
	}
	return out
}

// skippedEvents estimates the events lost to the kernel's recursion guard: the
// skips of every program without a backup, plus the skips of primaries their
// backups did not cover. Zero where the kernel does not count skips (< 5.12).
func (l *loader) skippedEvents(rescued uint64) uint64 {
	var primaries, others uint64
	for _, p := range l.recursionMisses() {
		switch p.role {
		case rolePrimary:
			primaries += p.misses
		case roleBackup:
			// Covered by its primary's skips (see roleBackup).
		case roleSole:
			others += p.misses
		}
	}
	if primaries > rescued {
		others += primaries - rescued
	}
	return others
}
