// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package ebpfnetreceiver

import (
	"fmt"
	"runtime"
	"time"

	"go.uber.org/zap"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/aggregate"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/tracer"
)

// newTracerSource fails: eBPF connection tracing needs Linux.
func newTracerSource(*Config, *zap.Logger) (conns.Source, error) {
	return nil, fmt.Errorf("running on %s: %w", runtime.GOOS, tracer.ErrUnsupportedOS)
}

// newProcResolver returns a resolver that knows only the pid: there is no
// /proc to read here.
func newProcResolver(*Config) resourceResolver { return pidOnlyResolver{} }

type pidOnlyResolver struct{}

func (pidOnlyResolver) resolve(pid, netns uint32, _ uint64) aggregate.Resource {
	return aggregate.Resource{PID: pid, Netns: netns}
}

func (pidOnlyResolver) prune(time.Time) {}

func (pidOnlyResolver) stats() resolverStats { return resolverStats{} }

func (pidOnlyResolver) learn([]conns.CgroupPath) {}
