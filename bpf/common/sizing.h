/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Map sizes in one place. Go overrides the connection and socket tables from the
 * receiver's max_tracked_connections before loading (a test pins Go's default to
 * CONN_MAP_ENTRIES) and takes every other size from the object as it is. */
#ifndef EBPFNET_COMMON_SIZING_H
#define EBPFNET_COMMON_SIZING_H

#define CONN_MAP_ENTRIES 65536	  /* conns: one per TCP socket, one per UDP socket and peer */
#define SOCK_MAP_ENTRIES 65536	  /* socks: one per traced TCP or UDP socket */
#define LISTEN_MAP_ENTRIES 8192	  /* listen_ports: TCP listeners, all namespaces */
#define UDP_PENDING_ENTRIES 16384 /* udp_pending: threads between a UDP syscall's address hook and its return */
/* closed: about 27,000 records, 1.4 s of closes at 20,000 connections per second, so a reader
 * delayed by a busy CPU or a GC pause rarely falls back to the table (delayed, not lost). */
#define CLOSED_RING_BYTES (4 << 20)
/* cgroup_paths: cgroups created between two polls (a burst of container starts), each with a path of
 * up to CGROUP_PATH_BYTES - 1 characters: kubelet's deepest systemd paths are under 200. */
#define CGROUP_PATHS_ENTRIES 4096
#define CGROUP_PATH_BYTES 512
/* Protocol classification: payload packets of one connection examined before giving up, and
 * bytes of one packet a classifier may read (protocols/). */
#define CLASSIFY_MAX_PACKETS 8
#define CLASSIFY_MAX_BYTES 512
/* DNS responses received (protocols/dns_capture.h): bytes of each message kept, the classic UDP
 * limit, which holds the question and a dozen address answers; and the ring user space drains
 * at each poll: 4 MiB holds about 40,000 typical responses (a name, a CNAME or two, a few
 * addresses: ~100 bytes) between two polls. */
#define DNS_CAPTURE_BYTES 512
#define DNS_RING_BYTES (4 << 20)

#endif
