/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef EBPFNET_MAPS_CGROUP_PATHS_H
#define EBPFNET_MAPS_CGROUP_PATHS_H

/* cgroup_paths: cgroup2 directories created since the last poll.
 * key:   the cgroup id (kernfs node id: the directory's inode, what bpf_get_current_cgroup_id returns)
 * value: struct cgroup_path
 * inserts: the cgroup_mkdir tracepoint (cgroup/mkdir.h)
 * deletes: the poll, which hands them to the receiver's cgroup resolver (internal/cgroups). A container
 * created and removed between two polls is then still named; a walk of the hierarchy would not see it.
 * Not preallocated: it is empty but for container starts. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CGROUP_PATHS_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct cgroup_path);
} cgroup_paths SEC(".maps");

/* cgroup_path_scratch: where a path is read before it is inserted (too big for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cgroup_path);
} cgroup_path_scratch SEC(".maps");

#endif
