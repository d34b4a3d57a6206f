/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef EBPFNET_MAPS_UDP_PENDING_H
#define EBPFNET_MAPS_UDP_PENDING_H

/* udp_pending: the peer of the UDP sendmsg/recvmsg a thread is in the middle of.
 * key:   pid_tgid of the thread (the syscall runs on it from the address hook to its return)
 * value: struct udp_peer
 * inserts: the cgroup sendmsg4/6 hooks (destination) and recvmsg4/6 hooks (source)
 * deletes: the sock_send_length / sock_recv_length handlers when that syscall returns
 * Keyed by thread, not socket, so concurrent sends on one socket from two threads stay apart. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, UDP_PENDING_ENTRIES);
	__type(key, __u64);
	__type(value, struct udp_peer);
} udp_pending SEC(".maps");

#endif
