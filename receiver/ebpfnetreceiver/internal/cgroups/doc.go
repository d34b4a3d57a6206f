// SPDX-License-Identifier: Apache-2.0

// Package cgroups resolves the cgroup a socket's owner ran in to the
// container (container.id) and Kubernetes pod (k8s.pod.uid) it belongs to.
//
// Why from the cgroup id: reading /proc/<pid>/cgroup at poll time loses
// the container of every process that exited before the poll (short-lived
// clients, jobs, crash loops). The kernel's cgroup id, taken when the
// socket gets its owner, outlives the process; this package turns it into
// a path and the path into an Identity, and keeps removed cgroups for a
// grace period so a container that is already gone still resolves.
//
// Two parts:
//
//   - Parse (pure, every OS) reads a cgroup v2 path. It knows the layouts of
//     kubelet (systemd and cgroupfs drivers, every QoS class, static pods),
//     containerd, CRI-O (and its conmon), Docker (systemd, cgroupfs,
//     rootless, docker-in-docker) and Podman (rootful, rootless, split
//     cgroups, conmon, cgroupfs); the doc comment of Parse lists each shape
//     and its source. Anything else is the zero Identity.
//   - Resolver (Linux) maps a cgroup id, the inode number of the cgroup2
//     directory (kernfs uses one 64-bit id for both, and that is what
//     bpf_get_current_cgroup_id returns), to an Identity. It walks the
//     cgroup2 mount lazily, on a lookup miss, at most once per
//     Options.MinRewalk; the walk records every directory (host cgroups
//     too, so their sockets are hits, not rewalks). Entries are bounded by
//     Options.MaxEntries with LRU eviction (directories only walked, never
//     looked up, are evicted first); a directory a walk no longer sees is
//     kept for Options.Grace from that walk. Stats counts hits, misses,
//     walks, rate-limited misses, evictions and expiries.
//
// The cgroup ids come from the kernel's root cgroup namespace, so the
// Resolver must walk the host's hierarchy: the Collector needs the host
// cgroup namespace (or the host's /sys/fs/cgroup mounted and its path
// given to NewResolver). In a private cgroup namespace MountPoint finds the
// namespace's root only, and ids of other containers miss.
//
// Where the ids come from and go: the tracer's take_owner (bpf/common/conn.h)
// records bpf_get_current_cgroup_id() (4.18+, cgroup v2; 0 on a v1-only
// host) when a socket gets its owner, carried to conns.Conn.CgroupID; the
// receiver (and nettop) resolve it here, through internal/procinfo, for
// container.id and k8s.pod.uid, with /proc/<pid>/cgroup and Parse as the
// fallback when the id is 0 or unknown; the receiver exports Stats' Unknown
// and Evictions as its telemetry.
//
// The package is stdlib only and unit tested without a kernel: the
// Resolver takes its root as a parameter and is tested on a directory tree
// in a temporary directory.
package cgroups
