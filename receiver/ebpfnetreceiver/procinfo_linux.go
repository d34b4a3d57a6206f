// SPDX-License-Identifier: Apache-2.0

//go:build linux

package ebpfnetreceiver

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/aggregate"
)

// procCacheTTL is how long a process's attributes are kept after the last
// lookup. Lookups happen when the aggregator first sees a process, so
// entries are short-lived; the TTL only bounds the cache.
const procCacheTTL = 5 * time.Minute

// procResolver reads resource attributes of a process from /proc. The pids
// come from the kernel's root pid namespace: in a container the Collector
// needs the host's /proc (hostPID, or the host /proc mounted and HOST_PROC
// pointing at it).
type procResolver struct {
	root        string
	commandLine bool // read /proc/<pid>/cmdline only when process.command_line is on
	cache       map[uint32]procEntry
}

type procEntry struct {
	res       aggregate.Resource
	startTime string // field 22 of /proc/<pid>/stat: tells a reused pid apart
	used      time.Time
}

func newProcResolver(cfg *Config) resourceResolver {
	root := os.Getenv("HOST_PROC")
	if root == "" {
		root = "/proc"
	}
	return &procResolver{
		root:        root,
		commandLine: cfg.ResourceAttributes.ProcessCommandLine.Enabled,
		cache:       make(map[uint32]procEntry),
	}
}

func (r *procResolver) resolve(pid, netns uint32) aggregate.Resource {
	dir := filepath.Join(r.root, strconv.FormatUint(uint64(pid), 10))
	start := readStartTime(dir)
	if e, ok := r.cache[pid]; ok && e.startTime == start {
		e.used = time.Now()
		r.cache[pid] = e
		e.res.Netns = netns
		return e.res
	}
	res := aggregate.Resource{
		PID:            pid,
		Netns:          netns,
		ExecutableName: executableName(dir),
		ContainerID:    containerID(dir),
	}
	if r.commandLine {
		res.CommandLine = commandLine(dir)
	}
	if start != "" { // the process is gone when start is empty: nothing to cache
		r.cache[pid] = procEntry{res: res, startTime: start, used: time.Now()}
	}
	return res
}

func (r *procResolver) prune(now time.Time) {
	for pid, e := range r.cache {
		if now.Sub(e.used) > procCacheTTL {
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

// containerIDPattern matches the 64-hex-digit ids container runtimes put in
// cgroup paths: /docker/<id>, docker-<id>.scope, cri-containerd-<id>.scope,
// crio-<id>.scope, libpod-<id>.scope, /kubepods/.../<id>.
var containerIDPattern = regexp.MustCompile(`[0-9a-f]{64}`)

// containerID returns the container id in the process's cgroup path, or ""
// when it does not run in a container.
func containerID(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup"))
	if err != nil {
		return ""
	}
	return containerIDFromCgroup(string(b))
}

func containerIDFromCgroup(cgroup string) string {
	for _, line := range strings.Split(cgroup, "\n") {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if ids := containerIDPattern.FindAllString(parts[2], -1); len(ids) > 0 {
			return ids[len(ids)-1]
		}
	}
	return ""
}
