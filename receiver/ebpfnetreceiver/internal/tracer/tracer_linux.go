// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"go.uber.org/zap"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// Tracer is the kernel connection tracer. It implements conns.Source.
type Tracer struct {
	objs   netflowMaps      // the object's maps, created once
	maps   *ebpf.Collection // the sections of the object's globals
	loader *loader          // the programs and links chosen for this kernel
	hooks  []Hook
	// cookies: the kernel assigns socket cookies to our tracing programs
	// (5.12+); otherwise Conn.Cookie is synthetic where none was assigned yet.
	cookies bool
	reader  *ringbuf.Reader
	// dnsReader reads dns_answers, only from Poll (drainDNS).
	dnsReader *ringbuf.Reader
	log       *zap.Logger

	flushed chan struct{} // the reader reached a Flush mark
	done    chan struct{} // the reader exited

	pendingMu sync.Mutex
	pending   []netflowConnRecord // closed records read from the ring, not yet polled
	lost      uint64              // records that could not be decoded
	// dnsUndecoded: dns_answers records too short for their length (never
	// expected; under pollMu).
	dnsUndecoded uint64

	pollMu         sync.Mutex    // one poll at a time
	activeBuf      []conns.Conn  // Snapshot.Active of the last poll, reused by the next
	table          *kernelTable  // the connection table and its walk buffers
	udpIdle        time.Duration // UDP flows idle this long are ended (Config.UDPIdleTimeout)
	restarts       uint64        // socket-table walks that stopped early (see collectReleasedFallback)
	ringFailedSeen uint64        // TELEMETRY_RING_RESERVE_FAILED at the last poll
	cgroupPathsCut uint64        // new cgroups whose path filled cgroup_path.path: maybe cut short (drainCgroupPaths)

	closeOnce sync.Once
	closeErr  error
}

var _ conns.Source = (*Tracer)(nil)

// New checks what the kernel and the process offer, loads the BPF programs and
// attaches, for each piece of data, the best hook the running kernel has.
// Errors wrap ErrNoBTF, ErrMissingCapability or ErrHookUnavailable and say
// what to do.
func New(cfg Config) (*Tracer, error) {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if cfg.Hooks != "" && !slices.Contains(HookModes, cfg.Hooks) {
		return nil, fmt.Errorf("hooks %q: want one of %s", cfg.Hooks, strings.Join(HookModes, ", "))
	}
	force := cfg.Hooks
	if force == HooksAuto {
		force = ""
	}
	if err := checkPrerequisites(); err != nil {
		return nil, err
	}
	kernelBTF, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoBTF, err)
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

	size := cfg.MaxConnections
	if size == 0 {
		size = DefaultMaxConnections
	}
	spec, specs, err := loadSpec(size)
	if err != nil {
		return nil, err
	}
	cookies, err := setCookieHelper(specs, spec, kernelBTF)
	if err != nil {
		return nil, err
	}
	if err := specs.SampleTcpHealth.Set(boolByte(!cfg.CloseOnlyTCPHealth)); err != nil {
		return nil, fmt.Errorf("set variable: %w", err)
	}
	if err := specs.CaptureDns.Set(boolByte(cfg.CaptureDNS && cfg.ClassifyProtocols)); err != nil {
		return nil, fmt.Errorf("set variable: %w", err)
	}
	skbRead, err := setSkbReadKernel(specs, spec)
	if err != nil {
		return nil, err
	}

	idle := cfg.UDPIdleTimeout
	if idle <= 0 {
		idle = DefaultUDPIdleTimeout
	}
	t := &Tracer{log: log, cookies: cookies, udpIdle: idle, flushed: make(chan struct{}, 1), done: make(chan struct{})}
	byName, err := t.createMaps(spec)
	if err != nil {
		return nil, err
	}
	t.loader = &loader{spec: spec, maps: byName, cgroupPath: cgroupPath, kernelBTF: kernelBTF, log: log}
	t.hooks, err = t.loader.choose(hookTable(&specs.netflowProgramSpecs, cfg.ClassifyProtocols), allowHooks(force, cookies))
	if err != nil {
		return nil, errors.Join(err, t.loader.close(), t.closeMaps())
	}
	t.table = newKernelTable(t.objs.Conns, t.loader.iterator(), t.loader.refresher())
	t.reader, err = ringbuf.NewReader(t.objs.Closed)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open ring buffer: %w", err), t.loader.close(), t.closeMaps())
	}
	t.dnsReader, err = ringbuf.NewReader(t.objs.DnsAnswers)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open dns ring buffer: %w", err), t.reader.Close(), t.loader.close(), t.closeMaps())
	}
	go t.readLoop()

	for _, h := range t.hooks {
		log.Info("ebpfnet hook attached", zap.String("data", h.Data), zap.String("mode", h.Mode), zap.String("hook", h.Hook), zap.String("gives", h.Gives))
	}
	log.Info("ebpfnet tracer started", zap.Uint32("max_connections", size), zap.Stringer("udp_idle_timeout", idle), zap.String("cgroup2", cgroupPath), zap.Bool("socket_cookies", cookies), zap.String("hooks_option", cfg.Hooks), zap.Bool("protocol_classification", cfg.ClassifyProtocols), zap.Bool("dns_capture", cfg.CaptureDNS && cfg.ClassifyProtocols), zap.Bool("dns_netns_from_socket", skbRead), zap.Bool("tcp_health_at_poll", !cfg.CloseOnlyTCPHealth))
	return t, nil
}

// Hooks returns the hook chosen for each piece of data on this kernel.
func (t *Tracer) Hooks() []Hook { return append([]Hook(nil), t.hooks...) }

// Close detaches every program and frees every map: nothing of the tracer
// stays in the kernel. It is idempotent.
func (t *Tracer) Close() error {
	t.closeOnce.Do(func() {
		errs := []error{t.loader.close()}
		if t.reader != nil {
			errs = append(errs, t.reader.Close())
			<-t.done
		}
		if t.dnsReader != nil {
			errs = append(errs, t.dnsReader.Close())
		}
		errs = append(errs, t.closeMaps())
		t.closeErr = errors.Join(errs...)
	})
	return t.closeErr
}
