/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef EBPFNET_MAPS_SOCKS_H
#define EBPFNET_MAPS_SOCKS_H

/* socks: what is known of a socket before and while it has a connection entry.
 * key:   the socket's address (sock_id(), u64): every program type can get it; the entry goes
 *        at the socket's destruction, before the address can be reused
 * value: struct sock_info
 * inserts: the TCP state handler (SYN_SENT, SYN_RECV), the send/recv handlers for sockets
 *          created before the tracer started and for UDP sockets
 * updates: the classification hook (protocols/hook.h) writes the settled stack
 * deletes: the TCP state handler at close, the sock_release hook for UDP
 * Size: set from Go, like conns; a failed insert counts TELEMETRY_SOCK_MAP_FULL. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SOCK_MAP_ENTRIES);
	__type(key, __u64);
	__type(value, struct sock_info);
} socks SEC(".maps");

#endif
