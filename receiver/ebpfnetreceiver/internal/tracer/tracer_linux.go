// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// Tracer is the kernel connection tracer. It implements conns.Source.
//
// The BPF side keeps a table of open connections (conns) and pushes every
// closed connection, with its final counters, into a ring buffer. A reader
// goroutine moves ring records into memory as the kernel wakes it (once per
// wakeup_watermark bytes, not per record); Poll drains the rest and walks the
// table.
type Tracer struct {
	objs   netflowObjects
	links  []link.Link
	reader *ringbuf.Reader
	log    *zap.Logger

	flushed chan struct{} // the reader reached a Flush mark
	done    chan struct{} // the reader exited

	pendingMu sync.Mutex
	pending   []netflowConnRecord // closed records read from the ring, not yet polled
	lost      uint64              // records that could not be decoded

	pollMu         sync.Mutex // one poll at a time
	restarts       uint64     // table walks that restarted
	ringFailedSeen uint64     // TELEMETRY_RING_RESERVE_FAILED at the last poll

	closeOnce sync.Once
	closeErr  error
}

var _ conns.Source = (*Tracer)(nil)

// ringBytes is the size of the closed-connection ring; the reader is woken
// when a quarter of it is used.
const ringBytes = 1 << 20

// New checks what the kernel and the process offer, loads the BPF programs and
// attaches them. Errors wrap ErrNoBTF, ErrMissingCapability or
// ErrHookUnavailable and say what to do.
func New(cfg Config) (*Tracer, error) {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if err := checkPrerequisites(); err != nil {
		return nil, err
	}
	cgroupPath, err := cgroup2Root()
	if err != nil {
		return nil, err
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones need
	// nothing and RemoveMemlock does nothing there.
	if err := rlimit.RemoveMemlock(); err != nil {
		log.Debug("memlock rlimit left as is", zap.Error(err))
	}

	spec, err := loadNetflow()
	if err != nil {
		return nil, fmt.Errorf("ebpfnet tracer: load BPF object: %w", err)
	}
	size := cfg.MaxConnections
	if size == 0 {
		size = DefaultMaxConnections
	}
	spec.Maps["conns"].MaxEntries = size
	spec.Maps["socks"].MaxEntries = size
	spec.Maps["closed"].MaxEntries = ringBytes
	if err := spec.Variables["wakeup_watermark"].Set(uint64(ringBytes / 4)); err != nil {
		return nil, fmt.Errorf("ebpfnet tracer: set wakeup_watermark: %w", err)
	}

	t := &Tracer{log: log, flushed: make(chan struct{}, 1), done: make(chan struct{})}
	if err := spec.LoadAndAssign(&t.objs, nil); err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			log.Error("BPF verifier rejected a program", zap.String("log", fmt.Sprintf("%+v", verr)))
		}
		return nil, fmt.Errorf("ebpfnet tracer: load BPF programs into the kernel: %w", err)
	}
	progs := map[string]*ebpf.Program{
		"enet_tcp_state": t.objs.EnetTcpState, "enet_tcp_destroy": t.objs.EnetTcpDestroy, "enet_send": t.objs.EnetSend, "enet_recv": t.objs.EnetRecv,
		"enet_sendmsg4": t.objs.EnetSendmsg4, "enet_sendmsg6": t.objs.EnetSendmsg6,
		"enet_recvmsg4": t.objs.EnetRecvmsg4, "enet_recvmsg6": t.objs.EnetRecvmsg6,
		"enet_sock_rel": t.objs.EnetSockRel,
	}
	t.links, err = attachAll(tracepointHooks, progs, spec.Programs, cgroupPath)
	if err != nil {
		return nil, errors.Join(err, t.objs.Close())
	}
	t.reader, err = ringbuf.NewReader(t.objs.Closed)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("ebpfnet tracer: open ring buffer: %w", err), closeLinks(t.links), t.objs.Close())
	}
	go t.readLoop()

	for _, h := range tracepointHooks {
		log.Info("ebpfnet hook attached", zap.String("hook", h.point), zap.String("mode", modeName(h.kind)), zap.String("gives", h.gives))
	}
	log.Info("ebpfnet tracer started", zap.Uint32("max_connections", size), zap.String("cgroup2", cgroupPath))
	return t, nil
}

func modeName(k hookKind) string {
	if k == hookCgroup {
		return "cgroup"
	}
	return "tp_btf"
}

// readLoop moves ring records into t.pending until the reader is closed.
func (t *Tracer) readLoop() {
	defer close(t.done)
	var rec ringbuf.Record
	for {
		err := t.reader.ReadInto(&rec)
		switch {
		case err == nil:
			var r netflowConnRecord
			t.pendingMu.Lock()
			if decodeRecord(rec.RawSample, &r) == nil {
				t.pending = append(t.pending, r)
			} else {
				t.lost++
			}
			t.pendingMu.Unlock()
		case errors.Is(err, ringbuf.ErrFlushed):
			t.flushed <- struct{}{}
		case errors.Is(err, ringbuf.ErrClosed):
			return
		default:
			t.log.Warn("ring buffer read", zap.Error(err))
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// drainRing returns every record submitted before the call.
func (t *Tracer) drainRing(ctx context.Context) ([]netflowConnRecord, error) {
	if err := t.reader.Flush(); err != nil {
		return nil, fmt.Errorf("flush ring buffer: %w", err)
	}
	select {
	case <-t.flushed:
	case <-t.done:
		return nil, errors.New("ring buffer reader stopped")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	t.pendingMu.Lock()
	recs := t.pending
	t.pending = nil
	t.pendingMu.Unlock()
	return recs, nil
}

// Poll returns the open connections and those closed since the last poll.
//
// Order matters: the ring is drained first, then the table walked. A
// connection that closes after the drain is gone from the table before the
// walk, or was read by the walk while still open; either way its final record
// comes with the next poll, so it is never in Active and Closed at once.
func (t *Tracer) Poll(ctx context.Context) (conns.Snapshot, error) {
	t.pollMu.Lock()
	defer t.pollMu.Unlock()

	recs, err := t.drainRing(ctx)
	if err != nil {
		return conns.Snapshot{}, fmt.Errorf("ebpfnet tracer: poll: %w", err)
	}
	clk := now()
	snap := conns.Snapshot{Time: clk.wall}
	released := map[uint64]struct{}{}
	for i := range recs {
		r := &recs[i]
		switch netflowRecordKind(r.Kind) {
		case netflowRecordKindRECORD_CONN_CLOSED:
			snap.Closed = append(snap.Closed, connFromBPF(&r.Tuple, &r.Value, clk))
		case netflowRecordKindRECORD_SOCK_RELEASED:
			released[r.Value.Stats.Cookie] = struct{}{}
		}
	}
	if err := t.collectReleasedFallback(released); err != nil {
		return conns.Snapshot{}, fmt.Errorf("ebpfnet tracer: poll: %w", err)
	}
	if err := t.walkTable(&snap, released, clk); err != nil {
		return conns.Snapshot{}, fmt.Errorf("ebpfnet tracer: poll: %w", err)
	}
	return snap, nil
}

// walkTable reads the connection table in batches. Entries of released UDP
// sockets and entries the BPF side could not push to the full ring
// (CONN_CLOSED) are deleted and reported closed; the rest are active.
func (t *Tracer) walkTable(snap *conns.Snapshot, released map[uint64]struct{}, clk clock) error {
	const batch = 4096
	keys := make([]netflowConnTuple, batch)
	vals := make([]netflowConnValue, batch)
	var cursor ebpf.MapBatchCursor
	seen := make(map[netflowConnTuple]struct{})
	for {
		n, err := t.objs.Conns.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < n; i++ {
			k, v := &keys[i], &vals[i]
			if _, dup := seen[*k]; dup {
				continue // the kernel walk revisited a bucket after concurrent updates
			}
			seen[*k] = struct{}{}
			_, gone := released[v.Stats.Cookie]
			gone = gone && k.Metadata&uint32(netflowConnMetadataCONN_UDP) != 0
			if !gone && v.Stats.Flags&uint8(netflowConnFlagsCONN_CLOSED) == 0 {
				snap.Active = append(snap.Active, connFromBPF(k, v, clk))
				continue
			}
			var final netflowConnValue
			if err := t.objs.Conns.LookupAndDelete(k, &final); err != nil {
				continue // the BPF side replaced it (tuple reuse) and reported the old one itself
			}
			if gone && final.Stats.Duration == 0 {
				final.Stats.Duration = uint64(clk.mono) - final.Stats.Start
			}
			snap.Closed = append(snap.Closed, connFromBPF(k, &final, clk))
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("walk connection table: %w", err)
		}
	}
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
	var cookie uint64
	var si netflowSockInfo
	it := t.objs.Socks.Iterate()
	var gone []uint64
	for it.Next(&cookie, &si) {
		if si.Tracked == uint8(netflowSockTrackStateSOCK_RELEASED) {
			released[cookie] = struct{}{}
			gone = append(gone, cookie)
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

// Telemetry returns the drop and fallback counters since New.
func (t *Tracer) Telemetry() conns.Telemetry {
	k, err := t.kernelCounters()
	if err != nil {
		t.log.Warn("read telemetry", zap.Error(err))
	}
	t.pendingMu.Lock()
	lost := t.lost
	t.pendingMu.Unlock()
	t.pollMu.Lock()
	restarts := t.restarts
	t.pollMu.Unlock()
	return conns.Telemetry{
		ConnMapFull:       k[netflowTelemetryCounterTELEMETRY_CONN_MAP_FULL],
		SockMapFull:       k[netflowTelemetryCounterTELEMETRY_SOCK_MAP_FULL],
		RingReserveFailed: k[netflowTelemetryCounterTELEMETRY_RING_RESERVE_FAILED],
		ClosedLost:        k[netflowTelemetryCounterTELEMETRY_CLOSED_LOST],
		MissedPeer:        k[netflowTelemetryCounterTELEMETRY_MISSED_PEER],
		IterationRestarts: restarts,
		LostRecords:       lost,
	}
}

// Close detaches every program and frees every map: nothing of the tracer
// stays in the kernel. It is idempotent.
func (t *Tracer) Close() error {
	t.closeOnce.Do(func() {
		errs := []error{closeLinks(t.links)}
		if t.reader != nil {
			errs = append(errs, t.reader.Close())
			<-t.done
		}
		errs = append(errs, t.objs.Close())
		t.closeErr = errors.Join(errs...)
	})
	return t.closeErr
}

func now() clock {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return clock{wall: time.Now(), mono: uint64(ts.Nano())}
}
