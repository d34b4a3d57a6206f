// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"errors"

	"go.uber.org/zap"
)

// DefaultMaxConnections is the default size of the kernel connection table.
const DefaultMaxConnections = 65536

// Config sets up a Tracer.
type Config struct {
	// MaxConnections is the number of entries of the kernel connection table
	// (0: DefaultMaxConnections). A full table is counted in
	// conns.Telemetry.ConnMapFull, never silent.
	MaxConnections uint32
	// ClassifyProtocols is reserved for payload classification (the
	// protocol stack of conns.Conn), which is not implemented yet: it has no
	// effect, and the stack stays zero.
	ClassifyProtocols bool
	// Hooks forces how payload is traced, for debugging: "tracepoint",
	// "fentry" or "kprobe". Empty (or "auto") tries them in that order and
	// keeps the first that loads and attaches on the running kernel.
	Hooks string
	// Logger receives the one-time start-up report (hooks chosen per kernel).
	Logger *zap.Logger
}

// HookModes are the values Config.Hooks accepts.
var HookModes = []string{"auto", "tracepoint", "fentry", "kprobe"}

// Errors New wraps, so callers can tell what is missing with errors.Is. The
// message of the wrapping error says what to do about it.
var (
	// ErrUnsupportedOS: not Linux.
	ErrUnsupportedOS = errors.New("ebpfnet tracer: eBPF connection tracing needs Linux")
	// ErrNoBTF: the kernel exposes no BTF, so CO-RE programs cannot be relocated.
	ErrNoBTF = errors.New("kernel BTF not available")
	// ErrMissingCapability: the process lacks a capability BPF needs.
	ErrMissingCapability = errors.New("missing capability")
	// ErrHookUnavailable: a kernel hook the tracer needs does not exist or
	// cannot be attached on this kernel.
	ErrHookUnavailable = errors.New("kernel hook unavailable")
)
