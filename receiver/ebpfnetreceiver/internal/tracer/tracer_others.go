// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package tracer

import (
	"context"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// Tracer is the kernel connection tracer; on this OS it cannot be created.
type Tracer struct{}

// New returns ErrUnsupportedOS: eBPF tracing needs Linux.
func New(Config) (*Tracer, error) { return nil, ErrUnsupportedOS }

func (*Tracer) Poll(context.Context) (conns.Snapshot, error) {
	return conns.Snapshot{}, ErrUnsupportedOS
}
func (*Tracer) Telemetry() conns.Telemetry { return conns.Telemetry{} }
func (*Tracer) Hooks() []Hook              { return nil }
func (*Tracer) Close() error               { return nil }
