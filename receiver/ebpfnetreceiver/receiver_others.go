// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package ebpfnetreceiver

import (
	"fmt"
	"runtime"

	"go.uber.org/zap"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/tracer"
)

// newTracerSource fails: eBPF connection tracing needs Linux.
func newTracerSource(*Config, *zap.Logger) (conns.Source, error) {
	return nil, fmt.Errorf("running on %s: %w", runtime.GOOS, tracer.ErrUnsupportedOS)
}
