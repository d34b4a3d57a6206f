// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"errors"
	"time"

	"go.uber.org/zap"
)

// This file builds on every OS: the receiver's configuration uses its
// defaults and names, and its errors, wherever it compiles.

// DefaultMaxConnections is the default size of the kernel connection table.
// It is CONN_MAP_ENTRIES of bpf/common/sizing.h, which a test pins: the
// receiver's configuration needs the value on every OS, the BPF object only
// loads on Linux.
const DefaultMaxConnections = 65536

// DefaultUDPIdleTimeout is how long a UDP flow may go without a datagram
// before it is reported closed: UDP has no close of its own but the socket's,
// and a server that talks to many peers would otherwise keep one entry per
// peer until it exits.
const DefaultUDPIdleTimeout = time.Minute

// Config sets up a Tracer.
type Config struct {
	// MaxConnections is the number of entries of the kernel connection table
	// (0: DefaultMaxConnections). A full table is counted in
	// conns.Telemetry.ConnMapFull, never silent.
	MaxConnections uint32
	// UDPIdleTimeout ends a UDP flow (a socket and one peer) after this long
	// without a datagram (0: DefaultUDPIdleTimeout): the poll reports it
	// closed, as of its last datagram, and frees its entry; a later datagram
	// starts a new flow.
	UDPIdleTimeout time.Duration
	// ClassifyProtocols loads the protocol classifiers (cgroup_skb programs,
	// bpf/protocols/), which read the first payload bytes of each connection
	// and fill conns.Conn.Stack. Off, they are not loaded at all and the
	// stack stays zero.
	ClassifyProtocols bool
	// CaptureDNS hands the DNS responses local sockets receive to
	// conns.Snapshot.DNS, for peer names (bpf/protocols/dns_capture.h). It
	// needs ClassifyProtocols, whose programs capture them; off, DNS sockets
	// cost what any other classified socket costs.
	CaptureDNS bool
	// CloseOnlyTCPHealth reads RTT and retransmits (conns.TCPStats) only when a
	// connection closes: the poll's walk of open connections then skips them,
	// and costs less, but open connections report them as zero. For when no
	// metric needs them.
	CloseOnlyTCPHealth bool
	// Hooks forces how payload is traced, for debugging: ModeTracepoint,
	// ModeFentry or ModeKprobe. Empty (or HooksAuto) tries them in that order
	// and keeps the first that loads and attaches on the running kernel.
	Hooks string
	// Logger receives the one-time start-up report (hooks chosen per kernel).
	Logger *zap.Logger
}

// Hook modes, from the most to the least preferred. A mode is chosen per data
// point by trying it on the running kernel: feature probes mislead (on some
// kernels kprobes "are available" but cannot attach, tracing programs "are
// not supported" although tp_btf works).
const (
	ModeTracepoint = "tracepoint" // tp_btf, else raw_tp: stable, no trampoline, no kprobe
	ModeFentry     = "fentry"     // fexit/fentry trampolines on kernel functions (5.5+)
	ModeKprobe     = "kprobe"     // kprobe/kretprobe (CONFIG_KPROBES)
	ModeCgroup     = "cgroup"     // cgroup hooks on the cgroup2 root; chosen, never forced
	ModeIterator   = "iterator"   // a BPF iterator (5.9+) that the poll reads; chosen, never forced
	ModeRun        = "run"        // a program the poll runs (BPF_PROG_TEST_RUN); chosen, never forced
)

// HooksAuto lets the tracer pick the best hook per data point (Config.Hooks).
const HooksAuto = "auto"

// HookModes are the values Config.Hooks accepts.
var HookModes = []string{HooksAuto, ModeTracepoint, ModeFentry, ModeKprobe}

// Hook is the kernel hook the tracer chose for one piece of data.
type Hook struct {
	Data  string // tcp_state, tcp_destroy, tcp_close, tcp_counts, payload, udp_peers, udp_end, protocol
	Mode  string // ModeTracepoint, ModeFentry, ModeKprobe, ModeCgroup, ModeIterator
	Hook  string // tp_btf, raw_tp, fexit, fentry, kprobe, cgroup, iter
	Gives string // what the data is, for people
}

// Errors New wraps, so callers can tell what is missing with errors.Is. The
// message of the wrapping error says what to do about it.
var (
	// ErrUnsupportedOS: not Linux.
	ErrUnsupportedOS = errors.New("eBPF connection tracing needs Linux")
	// ErrNoBTF: the kernel exposes no BTF, so CO-RE programs cannot be relocated.
	ErrNoBTF = errors.New("kernel BTF not available")
	// ErrMissingCapability: the process lacks a capability BPF needs.
	ErrMissingCapability = errors.New("missing capability")
	// ErrHookUnavailable: a kernel hook the tracer needs does not exist or
	// cannot be attached on this kernel.
	ErrHookUnavailable = errors.New("kernel hook unavailable")
)
