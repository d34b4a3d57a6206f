// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package procinfo

import (
	"time"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/aggregate"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// Resolver knows only the pid here: there is no /proc to read.
type Resolver struct{}

// New returns a Resolver that knows the pid only.
func New(Options) *Resolver { return &Resolver{} }

// Resolve returns the pid and netns.
func (*Resolver) Resolve(pid, netns uint32, _ uint64) aggregate.Resource {
	return aggregate.Resource{PID: pid, Netns: netns}
}

// Prune does nothing: nothing is cached.
func (*Resolver) Prune(time.Time) {}

// Stats returns zero counts.
func (*Resolver) Stats() Stats { return Stats{} }

// Learn does nothing: there are no cgroups to learn.
func (*Resolver) Learn([]conns.CgroupPath) {}
