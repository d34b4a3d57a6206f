/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef EBPFNET_MAPS_STACKS_H
#define EBPFNET_MAPS_STACKS_H

/* stacks: socket-local storage of a connection's protocol classification while it is decided
 * (protocols/hook.h), and the mark that makes a settled socket's packets return after one storage
 * lookup. The kernel frees it with the socket: nothing to delete.
 * value:   struct classify_state
 * creates: the cgroup_skb programs, at a socket's first packet with payload
 * Once settled, the stack is copied into the socket's sock_info, which every record is made from. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct classify_state);
} stacks SEC(".maps");

#endif
