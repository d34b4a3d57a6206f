/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef EBPFNET_MAPS_CONNS_H
#define EBPFNET_MAPS_CONNS_H

/* conns: the connection table.
 * key:   struct conn_tuple (one TCP socket; one UDP socket and peer)
 * value: struct conn_value, cumulative counters
 * inserts: the send/recv handlers on a connection's first payload, the TCP state handler when a
 *          connection closes before any payload
 * deletes: the TCP state handler at close (the final value goes to the closed ring); user space
 *          for UDP entries of released sockets and for entries flagged CONN_CLOSED
 * Size: set from Go (max_tracked_connections); a failed insert counts TELEMETRY_CONN_MAP_FULL. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CONN_MAP_ENTRIES);
	__type(key, struct conn_tuple);
	__type(value, struct conn_value);
} conns SEC(".maps");

#endif
