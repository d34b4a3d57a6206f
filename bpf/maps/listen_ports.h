/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef EBPFNET_MAPS_LISTEN_PORTS_H
#define EBPFNET_MAPS_LISTEN_PORTS_H

/* listen_ports: TCP ports in LISTEN per network namespace.
 * key:   struct port_binding
 * value: tgid that called listen(): the owner of accepted connections until one of them does I/O
 * inserts: the TCP state handler on CLOSE -> LISTEN
 * deletes: the TCP state handler on LISTEN -> CLOSE */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LISTEN_MAP_ENTRIES);
	__type(key, struct port_binding);
	__type(value, __u32);
} listen_ports SEC(".maps");

#endif
