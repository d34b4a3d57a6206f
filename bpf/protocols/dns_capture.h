/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* DNS responses received by local sockets, for user space to learn which name each answered
 * address was asked by (peer names: server.address). The hook (hook.h) calls dns_capture for
 * every received payload packet of a socket classified DNS, while it is being classified and
 * after it settled (CLASSIFY_DELIVERED_DNS); other settled sockets never get here.
 *
 * What is captured: a packet whose message is a standard response (QR set, opcode QUERY) with at
 * least one answer record; its first DNS_CAPTURE_BYTES bytes. UDP: the datagram. TCP: each
 * received segment that starts with a length prefix and a response header; a response split
 * over segments is captured from its first segment only, and the answers past that segment's end
 * are not learnt (user space takes the answers that are whole). Segments in the middle of a
 * response that happen to look like a response header are rejected by the parser (counted).
 * Not captured: responses over DoT/DoH (encrypted), IPv6 with extension headers, IP fragments
 * after the first. */
#ifndef EBPFNET_PROTOCOLS_DNS_CAPTURE_H
#define EBPFNET_PROTOCOLS_DNS_CAPTURE_H

#include "../common/sock.h"
#include "../maps/socks.h"
#include "../maps/telemetry.h"
#include "../maps/dns_answers.h"

#define DNS_RECORD_HEAD 8 /* struct dns_record before msg */
_Static_assert((DNS_CAPTURE_BYTES & (DNS_CAPTURE_BYTES - 1)) == 0, "DNS_CAPTURE_BYTES bounds len by a mask");
#define DNS_HEADER_PEEK 8 /* id, flags, question and answer counts */

/* Set from Go before load: 1 when the receiver wants peer names (dns_names). Off, DNS sockets
 * settle like any other (CLASSIFY_DELIVERED) and nothing is captured. */
volatile const __u8 capture_dns = 0;

/* Set from Go before load: 1 when cgroup_skb programs may call bpf_probe_read_kernel (Go loads
 * enet_pr_skbread to find out; every kernel of the matrix, 5.10 to 7.3, allows it to a program
 * loaded with CAP_PERFMON, but the helper is not part of cgroup_skb's own set). */
volatile const __u8 skb_read_kernel = 0;

/* The receiving socket's network namespace, 0 when unknown. Read from the socket itself where the
 * kernel lets this program read kernel memory. Elsewhere the bpf_sock this program gets has no
 * namespace field, and the socket table's entry, which the tracer's I/O hooks fill, gives it,
 * unless the response came before the query's send returned (a local resolver on a busy CPU):
 * that is counted in TELEMETRY_DNS_NO_SOCKET. s: scratch memory. */
static __always_inline __u32 dns_netns(struct bpf_sock *sk, struct dns_scratch *s)
{
	if (skb_read_kernel) {
		/* The verifier allows no arithmetic on a socket pointer, which BPF_CORE_READ does; the
		 * pointer stored in a map value reads back as the number it is. */
		*(volatile __u64 *)&s->sock = (__u64)sk;
		return sk_netns((const struct sock *)*(volatile __u64 *)&s->sock);
	}
	__u64 id = sock_id((const struct sock *)sk);
	struct sock_info *si = bpf_map_lookup_elem(&socks, &id);
	return si ? si->tuple.netns : 0;
}

/* p: the packet's transport payload (hook.h's skb_payload). sk: the receiving full socket. */
static __always_inline void dns_capture(struct __sk_buff *skb, struct bpf_sock *sk, const struct payload *p, bool tcp)
{
	__u32 base = tcp ? 2 : 0;
	__u8 h[2 + DNS_HEADER_PEEK];
	__u32 msg_len;

	if (p->len < base + DNS_HEADER_PEEK)
		return;
	if (bpf_skb_load_bytes(skb, p->off, h, sizeof(h)))
		return;
	/* h[base + 2]: QR, opcode (4 bits), AA, TC, RD; h[base + 6..7]: ANCOUNT */
	if ((h[base + 2] & 0xf8) != 0x80 || (h[base + 6] | h[base + 7]) == 0)
		return;
	msg_len = tcp ? ((__u32)h[0] << 8 | h[1]) : p->len;
	if (msg_len < DNS_HEADER_PEEK)
		return;

	__u32 zero = 0;
	struct dns_scratch *s = bpf_map_lookup_elem(&dns_scratch, &zero);
	if (!s)
		return;
	struct dns_record *r = &s->rec;
	__u32 netns = dns_netns(sk, s); /* only DNS responses pay for it */
	if (!netns) {
		count(TELEMETRY_DNS_NO_SOCKET);
		return;
	}
	__u32 len = p->len - base;
	if (len > msg_len)
		len = msg_len; /* TCP: the next message follows in the same segment */
	if (len > DNS_CAPTURE_BYTES)
		len = DNS_CAPTURE_BYTES;
	/* len is 8..DNS_CAPTURE_BYTES here, but clang may test one copy of it and pass another to
	 * the helper, whose bounds 5.10's verifier then does not know. Arithmetic carries the
	 * bounds on the register itself: hidden from clang (barrier_var), (len - 1) & (CAP - 1) + 1
	 * is len, and the verifier sees 1..CAP. */
	barrier_var(len);
	len = ((len - 1) & (DNS_CAPTURE_BYTES - 1)) + 1;
	r->netns = netns;
	r->msg_len = msg_len;
	r->len = len;
	if (bpf_skb_load_bytes(skb, p->off + base, r->msg, len))
		return;
	if (bpf_ringbuf_output(&dns_answers, r, DNS_RECORD_HEAD + len, BPF_RB_NO_WAKEUP))
		count(TELEMETRY_DNS_RING_FULL);
}

#endif
