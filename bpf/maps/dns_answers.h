/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef EBPFNET_MAPS_DNS_ANSWERS_H
#define EBPFNET_MAPS_DNS_ANSWERS_H

/* dns_answers: ring buffer of struct dns_record, the DNS responses local sockets received, from
 * every CPU to user space, which parses them into its address-to-name map.
 * inserts: the cgroup_skb ingress program (protocols/dns_capture.h), without waking the reader:
 *          the poll drains the ring before it reads the connections, so a wakeup per response
 *          (11-18 us each) would buy nothing. A full ring is counted (TELEMETRY_DNS_RING_FULL).
 * deletes: the poll, by reading. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, DNS_RING_BYTES);
} dns_answers SEC(".maps");

/* BPF-only (never read by Go): a record being assembled, and an 8-byte slot the capture uses
 * to turn the socket pointer into a number (protocols/dns_capture.h: dns_netns). */
struct dns_scratch {
	__u64 sock;
	struct dns_record rec;
};

/* dns_scratch: one struct dns_scratch per CPU, where a response is assembled before it goes into
 * dns_answers with only the bytes it uses (a reservation has a size fixed at compile time, and
 * most responses are a fifth of DNS_CAPTURE_BYTES). Written and read within one run of the ingress
 * program, which the kernel runs with bottom halves off (packet receive), so no other run of it
 * on the same CPU comes between. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct dns_scratch);
} dns_scratch SEC(".maps");

#endif
