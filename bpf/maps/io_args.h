/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef EBPFNET_MAPS_IO_ARGS_H
#define EBPFNET_MAPS_IO_ARGS_H

/* The arguments a kretprobe needs from its kprobe: the socket and the recv flags.
 * key:   pid_tgid of the thread in tcp/udp sendmsg/recvmsg
 * value: struct io_args
 * inserts: the kprobes on entry; deletes: the kretprobes on return (kprobe mode only). */
struct io_args {
	__u64 sk;
	__u32 flags;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, UDP_PENDING_ENTRIES);
	__type(key, __u64);
	__type(value, struct io_args);
} io_args SEC(".maps");

#endif
