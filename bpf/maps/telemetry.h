/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef EBPFNET_MAPS_TELEMETRY_H
#define EBPFNET_MAPS_TELEMETRY_H

/* telemetry: drop and fallback counters, enum telemetry_counter indexes, per CPU so that
 * counting needs no atomics. Only the BPF programs write; user space sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TELEMETRY_COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} telemetry SEC(".maps");

static __always_inline void count(enum telemetry_counter c)
{
	__u32 key = c;
	__u64 *v = bpf_map_lookup_elem(&telemetry, &key);
	if (v)
		*v += 1;
}

#endif
