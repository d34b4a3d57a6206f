/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef EBPFNET_CGROUP_MKDIR_H
#define EBPFNET_CGROUP_MKDIR_H

#include "../maps/cgroup_paths.h"
#include "../maps/telemetry.h"

/* cgroup:cgroup_mkdir (4.15+; the cgroup id is the kernfs node's 64-bit id from 5.5): records a new
 * cgroup2 directory's id and path. Sockets carry their owner's cgroup id (take_owner); user space
 * resolves ids by walking the hierarchy, which misses a cgroup removed before the walk: a container
 * whose process connects and exits between two polls. Directories of cgroup v1 hierarchies (hybrid
 * hosts) are skipped: the ids sockets carry are cgroup2's, whose hierarchy id is 0. */
static __always_inline void handle_cgroup_mkdir(const struct cgroup *cgrp, const char *path)
{
	if (BPF_CORE_READ(cgrp, root, hierarchy_id) != 0)
		return;
	__u64 id = BPF_CORE_READ(cgrp, kn, id);
	__u32 zero = 0;
	struct cgroup_path *p = bpf_map_lookup_elem(&cgroup_path_scratch, &zero);
	if (!p)
		return;
	long n = bpf_probe_read_kernel_str(p->path, sizeof(p->path), path);
	if (n <= 0) {
		count(TELEMETRY_CGROUP_PATH_LOST);
		return;
	}
	p->len = n;
	if (bpf_map_update_elem(&cgroup_paths, &id, p, BPF_ANY))
		count(TELEMETRY_CGROUP_PATH_LOST);
}

#endif
