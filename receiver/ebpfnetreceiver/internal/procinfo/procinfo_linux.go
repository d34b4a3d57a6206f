// SPDX-License-Identifier: Apache-2.0

//go:build linux

package procinfo

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/aggregate"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/cgroups"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// cacheTTL is how long a process's attributes are kept after the last
// lookup. Lookups happen when the aggregator first sees a process, so
// entries are short-lived; the TTL only bounds the cache.
const cacheTTL = 5 * time.Minute

// Resolver reads resource attributes of a process from /proc. The pids
// come from the kernel's root pid namespace: in a container the Collector
// needs the host's /proc (hostPID, or the host /proc mounted and HOST_PROC
// pointing at it).
//
// The container comes from the cgroup id the kernel took when the owner took
// the socket, resolved on the cgroup2 hierarchy (internal/cgroups): that
// outlives the process. /proc/<pid>/cgroup is the fallback. The ids are the
// host's: in a container the Collector needs the node's cgroup2 root mounted
// (the DaemonSet mounts it at /sys/fs/cgroup) and the host cgroup namespace.
// It is not safe for concurrent use.
type Resolver struct {
	root        string
	commandLine bool              // read /proc/<pid>/cmdline only when process.command_line is on
	cgroups     *cgroups.Resolver // nil without a cgroup2 mount
	cache       map[uint32]procEntry
}

type procEntry struct {
	res       aggregate.Resource
	startTime string // field 22 of /proc/<pid>/stat: tells a reused pid apart
	used      time.Time
}

// New returns a Resolver of the processes of /proc, or of $HOST_PROC when
// set, and of the cgroups of the cgroup2 mount (none on a v1-only host).
func New(opts Options) *Resolver {
	root := os.Getenv("HOST_PROC")
	if root == "" {
		root = "/proc"
	}
	r := &Resolver{
		root:        root,
		commandLine: opts.CommandLine,
		cache:       make(map[uint32]procEntry),
	}
	if mnt, err := cgroups.MountPoint(); err == nil { // else cgroup v1 only: the kernel's ids are 0
		r.cgroups = cgroups.NewResolver(mnt, cgroups.Options{})
	}
	return r
}

// Resolve returns what is known of process pid in network namespace netns
// whose connection the kernel tagged with cgroupID (0 when unknown): the
// container comes from cgroupID when the cgroup is known, else from /proc.
func (r *Resolver) Resolve(pid, netns uint32, cgroupID uint64) aggregate.Resource {
	res := r.fromProc(pid, netns)
	if r.cgroups != nil && cgroupID != 0 {
		if id, ok := r.cgroups.Lookup(cgroupID); ok {
			res.ContainerID, res.PodUID = id.ContainerID, id.PodUID
		}
	}
	return res
}

// Stats returns the counts since New.
func (r *Resolver) Stats() Stats {
	if r.cgroups == nil {
		return Stats{}
	}
	st := r.cgroups.Stats()
	return Stats{UnknownCgroups: st.Unknown, CgroupEvictions: st.Evictions}
}

// Learn records the cgroups the kernel created since the last poll
// (conns.Snapshot.Cgroups); call it before resolving that poll's
// connections, whose cgroups may be gone already.
func (r *Resolver) Learn(created []conns.CgroupPath) {
	if r.cgroups == nil {
		return
	}
	for _, c := range created {
		r.cgroups.Created(c.ID, c.Path)
	}
}

// fromProc is what /proc says about the process, cached while it runs.
func (r *Resolver) fromProc(pid, netns uint32) aggregate.Resource {
	dir := filepath.Join(r.root, strconv.FormatUint(uint64(pid), 10))
	start := readStartTime(dir)
	if e, ok := r.cache[pid]; ok && e.startTime == start {
		e.used = time.Now()
		r.cache[pid] = e
		e.res.Netns = netns
		return e.res
	}
	id := identityFromProc(dir)
	res := aggregate.Resource{
		PID:            pid,
		Netns:          netns,
		ExecutableName: executableName(dir),
		ContainerID:    id.ContainerID,
		PodUID:         id.PodUID,
	}
	if r.commandLine {
		res.CommandLine = commandLine(dir)
	}
	if start != "" { // the process is gone when start is empty: nothing to cache
		r.cache[pid] = procEntry{res: res, startTime: start, used: time.Now()}
	}
	return res
}

// Prune forgets the processes not asked about for a while; call it once per
// poll.
func (r *Resolver) Prune(now time.Time) {
	for pid, e := range r.cache {
		if now.Sub(e.used) > cacheTTL {
			delete(r.cache, pid)
		}
	}
}

// readStartTime returns the process start time (clock ticks since boot) or
// "" when the process is gone.
func readStartTime(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return ""
	}
	// The command name (field 2) may hold spaces and parentheses: fields
	// are counted after its closing parenthesis.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ""
	}
	fields := strings.Fields(string(b[i+1:]))
	const startTimeField = 22 - 3 // fields after ")" start at field 3
	if len(fields) <= startTimeField {
		return ""
	}
	return fields[startTimeField]
}

// executableName is the base name of the executable, or the task name when
// the link is not readable (kernel threads, another user's process without
// CAP_SYS_PTRACE).
func executableName(dir string) string {
	if exe, err := os.Readlink(filepath.Join(dir, "exe")); err == nil {
		return filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
	}
	if comm, err := os.ReadFile(filepath.Join(dir, "comm")); err == nil {
		return strings.TrimSpace(string(comm))
	}
	return ""
}

func commandLine(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(bytes.ReplaceAll(bytes.TrimRight(b, "\x00"), []byte{0}, []byte{' '})))
}

// identityFromProc reads the container of a running process from
// /proc/<pid>/cgroup: the fallback where the kernel gave no cgroup id (a
// host with cgroup v1 only) or the resolver could not find it.
func identityFromProc(dir string) cgroups.Identity {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup"))
	if err != nil {
		return cgroups.Identity{}
	}
	return identityFromCgroupFile(string(b))
}

// identityFromCgroupFile reads the lines of a /proc/<pid>/cgroup file
// (hierarchy-ID:controller-list:cgroup-path): the cgroup v2 line ("0::")
// first, else the first v1 hierarchy whose path names a container or pod
// (cgroupfs drivers write the same shapes in v1).
func identityFromCgroupFile(content string) cgroups.Identity {
	var v1 cgroups.Identity
	for _, line := range strings.Split(content, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		id := cgroups.Parse(parts[2])
		if parts[0] == "0" && parts[1] == "" {
			if id != (cgroups.Identity{}) {
				return id
			}
			continue
		}
		if v1 == (cgroups.Identity{}) {
			v1 = id
		}
	}
	return v1
}
