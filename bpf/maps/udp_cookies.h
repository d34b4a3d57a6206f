/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef EBPFNET_MAPS_UDP_COOKIES_H
#define EBPFNET_MAPS_UDP_COOKIES_H

/* udp_cookies: socket cookie -> sock_id of UDP sockets that carried traffic.
 * cgroup/sock_release knows a socket only by its cookie; the socket table is keyed by address.
 * inserts: udp_sock_register, when the I/O hook could ask the kernel for the cookie
 * deletes: cgroup/sock_release
 * Only used when UDP sockets end through cgroup/sock_release (tp_btf and fentry I/O on 5.12+). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SOCK_MAP_ENTRIES);
	__type(key, __u64);
	__type(value, __u64);
} udp_cookies SEC(".maps");

#endif
