// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
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
	maps   *ebpf.Collection // every map of the object, loaded once
	objs   netflowMaps      // the named ones
	loader *loader          // the programs and links chosen for this kernel
	hooks  []HookChoice
	// cookies: the kernel assigns socket cookies to our tracing programs
	// (5.12+); otherwise Conn.Cookie is synthetic where none was assigned yet.
	cookies bool
	reader  *ringbuf.Reader
	log     *zap.Logger

	flushed chan struct{} // the reader reached a Flush mark
	done    chan struct{} // the reader exited

	pendingMu sync.Mutex
	pending   []netflowConnRecord // closed records read from the ring, not yet polled
	lost      uint64              // records that could not be decoded

	pollMu         sync.Mutex   // one poll at a time
	activeBuf      []conns.Conn // Snapshot.Active of the last poll, reused by the next
	table          *kernelTable // the connection table and its walk buffers
	restarts       uint64       // socket-table walks that stopped early (see collectReleasedFallback)
	ringFailedSeen uint64       // TELEMETRY_RING_RESERVE_FAILED at the last poll

	closeOnce sync.Once
	closeErr  error
}

var _ conns.Source = (*Tracer)(nil)

// ringBytes is the size of the closed-connection ring: about 27,000 records,
// 1.4 s of closes at 20,000 connections per second, so a reader delayed by a
// busy CPU or a GC pause rarely falls back to the table (RingReserveFailed:
// delayed to the next poll, not lost). The reader is woken when an eighth of
// it is used.
const ringBytes = 4 << 20

// New checks what the kernel and the process offer, loads the BPF programs and
// attaches, for each piece of data, the best hook the running kernel has.
// Errors wrap ErrNoBTF, ErrMissingCapability or ErrHookUnavailable and say
// what to do.
func New(cfg Config) (*Tracer, error) {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	force := cfg.Hooks
	if force == "auto" {
		force = ""
	}
	if force != "" && force != ModeTracepoint && force != ModeFentry && force != ModeKprobe {
		return nil, fmt.Errorf("ebpfnet tracer: hooks %q: want one of %s", cfg.Hooks, strings.Join(HookModes, ", "))
	}
	if err := checkPrerequisites(); err != nil {
		return nil, err
	}
	kernelBTF, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("ebpfnet tracer: %w: %w", ErrNoBTF, err)
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
	for _, m := range []string{"conns", "socks", "udp_cookies"} {
		spec.Maps[m].MaxEntries = size
	}
	spec.Maps["closed"].MaxEntries = ringBytes
	cookies := probeCookieHelper(spec, kernelBTF)
	if err := setVariables(spec, map[string]any{"wakeup_watermark": uint64(ringBytes / 8), "cookie_helper": boolByte(cookies)}); err != nil {
		return nil, err
	}

	t := &Tracer{log: log, cookies: cookies, flushed: make(chan struct{}, 1), done: make(chan struct{})}
	mapsOnly := &ebpf.CollectionSpec{Maps: spec.Maps, Variables: spec.Variables, Types: spec.Types, ByteOrder: spec.ByteOrder}
	if t.maps, err = ebpf.NewCollection(mapsOnly); err != nil {
		return nil, fmt.Errorf("ebpfnet tracer: create BPF maps: %w", err)
	}
	t.objs = netflowMaps{Closed: t.maps.Maps["closed"], Conns: t.maps.Maps["conns"], IoArgs: t.maps.Maps["io_args"],
		ListenPorts: t.maps.Maps["listen_ports"], Socks: t.maps.Maps["socks"], Telemetry: t.maps.Maps["telemetry"],
		UdpCookies: t.maps.Maps["udp_cookies"], UdpPending: t.maps.Maps["udp_pending"]}
	t.table = newKernelTable(t.objs.Conns)
	t.loader = &loader{spec: spec, maps: t.maps.Maps, cgroupPath: cgroupPath, kernelBTF: kernelBTF, log: log}
	t.hooks, err = t.loader.choose(hookTable(), allowHooks(force, cookies))
	if err != nil {
		return nil, errors.Join(err, t.loader.close(), closeCollection(t.maps))
	}
	t.reader, err = ringbuf.NewReader(t.objs.Closed)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("ebpfnet tracer: open ring buffer: %w", err), t.loader.close(), closeCollection(t.maps))
	}
	go t.readLoop()

	for _, h := range t.hooks {
		log.Info("ebpfnet hook attached", zap.String("data", h.Data), zap.String("mode", h.Mode), zap.String("hook", h.Hook), zap.String("gives", h.Gives))
	}
	log.Info("ebpfnet tracer started", zap.Uint32("max_connections", size), zap.String("cgroup2", cgroupPath), zap.Bool("socket_cookies", cookies), zap.String("hooks_option", cfg.Hooks))
	return t, nil
}

// allowHooks returns the candidate filter for the forcing option. The cgroup
// release hook names sockets by cookie, so it serves only when the payload
// programs could record cookies (tp_btf or fexit, 5.12+).
func allowHooks(force string, cookies bool) func(dataPoint, candidate, []HookChoice) bool {
	return func(dp dataPoint, c candidate, chosen []HookChoice) bool {
		switch dp.name {
		case "payload":
			return force == "" || c.mode == force
		case "udp_end":
			if c.mode == ModeCgroup {
				payload := ""
				for _, h := range chosen {
					if h.Data == "payload" {
						payload = h.Hook
					}
				}
				return cookies && (payload == "tp_btf" || payload == "fexit") && force != ModeKprobe
			}
			return force == "" || c.mode == force || force == ModeTracepoint
		}
		return true
	}
}

// probeCookieHelper loads (never attaches) a tracing program that asks for a
// socket cookie: the kernel either accepts it (5.12+) or not.
func probeCookieHelper(spec *ebpf.CollectionSpec, kernelBTF *btf.Spec) bool {
	ps := spec.Programs["enet_pr_cookie"]
	if ps == nil {
		return false
	}
	sub := &ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{"enet_pr_cookie": ps}, Types: spec.Types, ByteOrder: spec.ByteOrder}
	coll, err := ebpf.NewCollectionWithOptions(sub, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: kernelBTF}})
	if err != nil {
		return false
	}
	coll.Close()
	return true
}

func setVariables(spec *ebpf.CollectionSpec, vars map[string]any) error {
	for name, v := range vars {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("ebpfnet tracer: variable %s missing from the BPF object", name)
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("ebpfnet tracer: set %s: %w", name, err)
		}
	}
	return nil
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func closeCollection(c *ebpf.Collection) error {
	if c != nil {
		c.Close()
	}
	return nil
}

// Hooks returns the hook chosen for each piece of data on this kernel.
func (t *Tracer) Hooks() []HookChoice { return append([]HookChoice(nil), t.hooks...) }

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
	// The open connections are most of a poll: reusing last poll's slice saves
	// allocating and faulting in 100k Conn values each time (see conns.Source).
	snap := conns.Snapshot{Time: clk.wall, Active: t.activeBuf[:0]}
	released := splitRecords(recs, clk, &snap)
	if err := t.collectReleasedFallback(released); err != nil {
		return conns.Snapshot{}, fmt.Errorf("ebpfnet tracer: poll: %w", err)
	}
	if err := walkTable(t.table, released, clk, &snap); err != nil {
		return conns.Snapshot{}, fmt.Errorf("ebpfnet tracer: poll: %w", err)
	}
	t.activeBuf = snap.Active
	t.log.Debug("poll", zap.Int("ring_records", len(recs)), zap.Int("udp_sockets_ended", len(released)),
		zap.Int("active", len(snap.Active)), zap.Int("closed", len(snap.Closed)))
	return snap, nil
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
	restarts := t.restarts + t.table.revisits
	t.pollMu.Unlock()
	return conns.Telemetry{
		ConnMapFull:       k[netflowTelemetryCounterTELEMETRY_CONN_MAP_FULL],
		SockMapFull:       k[netflowTelemetryCounterTELEMETRY_SOCK_MAP_FULL],
		RingReserveFailed: k[netflowTelemetryCounterTELEMETRY_RING_RESERVE_FAILED],
		ClosedLost:        k[netflowTelemetryCounterTELEMETRY_CLOSED_LOST],
		MissedPeer:        k[netflowTelemetryCounterTELEMETRY_MISSED_PEER],
		IterationRestarts: restarts,
		LostRecords:       lost,
		Rescued:           k[netflowTelemetryCounterTELEMETRY_RESCUED],
		KernelSkipped:     t.loader.skippedEvents(k[netflowTelemetryCounterTELEMETRY_RESCUED]),
	}
}

// Close detaches every program and frees every map: nothing of the tracer
// stays in the kernel. It is idempotent.
func (t *Tracer) Close() error {
	t.closeOnce.Do(func() {
		errs := []error{t.loader.close()}
		if t.reader != nil {
			errs = append(errs, t.reader.Close())
			<-t.done
		}
		t.maps.Close()
		t.closeErr = errors.Join(errs...)
	})
	return t.closeErr
}

func now() clock {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return clock{wall: time.Now(), mono: uint64(ts.Nano())}
}
