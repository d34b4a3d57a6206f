/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef EBPFNET_MAPS_GUARD_H
#define EBPFNET_MAPS_GUARD_H

#include "telemetry.h"

/* guard_depth: how many runs of a primary program are in progress on this CPU.
 *
 * The kernel runs a tracing program at most once per CPU at a time: an invocation that comes
 * while the same program is already running on that CPU (a softirq on top of it, or, on
 * kernels that let tracepoint programs be preempted, another task) is skipped and only
 * counted in the program's recursion_misses. For a connection tracer that is a lost close or
 * lost bytes. So each tracepoint gets a second, backup program attached after the primary.
 * The primary counts itself in and out here; the backup acts only when the count is not
 * zero, which is when the kernel skips the primary, and otherwise returns at once. Not quite
 * exact where tasks can be preempted inside tracepoint programs (7.x): a task preempted in the
 * kernel's wrapper just before or after the primary's body holds the primary at count zero (the
 * event is lost, and counted), and one preempted between its primary and its backup while
 * another task holds the primary is handled twice. README: "Known limitation, 7.3".
 * key: enum guard_slot; value: depth. Written by the primaries, read by the backups. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, GUARD_MAX);
	__type(key, __u32);
	__type(value, __u32);
} guard_depth SEC(".maps");

static __always_inline __u32 *guard_enter(enum guard_slot slot)
{
	__u32 key = slot;
	__u32 *d = bpf_map_lookup_elem(&guard_depth, &key);
	if (d)
		*d += 1;
	return d;
}

static __always_inline void guard_exit(__u32 *d)
{
	if (d)
		*d -= 1;
}

/* True when a primary of this slot is in progress on this CPU, so the kernel skipped it for
 * the event at hand and the backup must handle it. */
static __always_inline bool guard_primary_busy(enum guard_slot slot)
{
	__u32 key = slot;
	__u32 *d = bpf_map_lookup_elem(&guard_depth, &key);
	if (d && *d > 0) {
		count(TELEMETRY_RESCUED);
		return true;
	}
	return false;
}

#endif
