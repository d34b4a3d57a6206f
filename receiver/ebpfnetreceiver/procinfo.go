// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"time"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/aggregate"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/procinfo"
)

// procResolver is the resolver of /proc and the cgroup2 hierarchy
// (internal/procinfo, which nettop shares) behind the receiver's interface.
type procResolver struct{ r *procinfo.Resolver }

func newProcResolver(cfg *Config) resourceResolver {
	return procResolver{procinfo.New(procinfo.Options{CommandLine: cfg.ResourceAttributes.ProcessCommandLine.Enabled})}
}

func (p procResolver) resolve(pid, netns uint32, cgroupID uint64) aggregate.Resource {
	return p.r.Resolve(pid, netns, cgroupID)
}
func (p procResolver) prune(now time.Time)              { p.r.Prune(now) }
func (p procResolver) stats() resolverStats             { return p.r.Stats() }
func (p procResolver) learn(created []conns.CgroupPath) { p.r.Learn(created) }
