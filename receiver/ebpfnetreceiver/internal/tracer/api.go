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
	// ClassifyProtocols turns on protocol classification of payload.
	ClassifyProtocols bool
	// Logger receives the one-time start-up report (hooks chosen per kernel).
	Logger *zap.Logger
}

// ErrUnsupportedOS is returned by New on systems other than Linux.
var ErrUnsupportedOS = errors.New("ebpfnet tracer: eBPF connection tracing needs Linux")
