/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef EBPFNET_MAPS_TCP_KNOWN_H
#define EBPFNET_MAPS_TCP_KNOWN_H

/* tcp_known: socket-local storage marking a TCP socket whose owner the tracer knows, so that its
 * send and receive calls return after one storage lookup on the socket itself instead of a hash
 * lookup. The kernel frees it with the socket: nothing to delete, nothing to fill.
 * value: 1 once known
 * writes: the tp_btf payload programs (6.3+; tracing programs may use socket storage from 6.1,
 *         kprobes never), at the first call that finds the socket known. Other modes keep the
 *         hash lookup of socks. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u8);
} tcp_known SEC(".maps");

#endif
