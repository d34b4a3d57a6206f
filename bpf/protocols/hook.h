/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Protocol classification from the first payload bytes of each connection, each way: the hook that
 * feeds the classifiers (classify.h) and hands their verdict to the connection.
 *
 * Why cgroup_skb (ingress and egress on the cgroup2 root): it runs on every kernel we support
 * (4.10+, socket storage 5.2+) and on hosts without kprobes or fentry, it sees every network
 * namespace (it follows processes, not interfaces, where tc would need a program per interface
 * per namespace), it sees the bytes themselves (the payload tracepoints see only counts, and the
 * buffers of sendmsg/recvmsg are user memory behind iterators whose layout changes across
 * kernels), and each packet comes with its socket, so no tuple has to be parsed into a key. It
 * costs every packet of every socket a storage lookup (skb->sk's), which is all a settled
 * connection pays: its classification never runs again.
 *
 * Which bytes: TCP payload is classified from the first byte of each direction's stream, known from
 * tcp_sock: when sending, seq == snd_una and no data segment sent before this packet's; when
 * receiving, seq == rcv_nxt and nothing received yet (the hook runs before the kernel processes
 * the packet). A socket whose
 * stream had already started when the tracer did is left unknown in that direction rather than
 * guessed from the middle of a stream. UDP: every datagram is a message. At most
 * CLASSIFY_MAX_PACKETS payload packets of a connection are looked at; then it settles.
 *
 * DNS sockets are the one exception to "settled costs one lookup": the responses they receive
 * are captured for peer names (dns_capture.h), so their settled state is CLASSIFY_DELIVERED_DNS,
 * which does not return early. Every other settled socket returns on the same single compare. */
#ifndef EBPFNET_PROTOCOLS_HOOK_H
#define EBPFNET_PROTOCOLS_HOOK_H

#include "../common/sock.h"
#include "../common/conn.h"
#include "../maps/stacks.h"
#include "classify.h"
#include "dns_capture.h"

#define IP_OFFSET_MASK 0x1fff /* iphdr.frag_off: fragment offset, in 8-byte units */

/* Where the transport payload of a cgroup_skb packet starts (its network header is at offset 0),
 * and for TCP the sequence number of its first byte. False when it has none we can read: no
 * payload, a fragment after the first, IPv6 extension headers. */
static __always_inline bool skb_payload(struct __sk_buff *skb, __u8 proto, struct payload *p, __u32 *seq)
{
	__u8 vihl;
	__u32 l4;
	if (bpf_skb_load_bytes(skb, 0, &vihl, sizeof(vihl)))
		return false;
	if ((vihl >> 4) == 4) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)))
			return false;
		if (ip.protocol != proto || (bpf_ntohs(ip.frag_off) & IP_OFFSET_MASK))
			return false;
		l4 = (vihl & 0xf) * 4;
	} else if ((vihl >> 4) == 6) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)))
			return false;
		if (ip6.nexthdr != proto)
			return false;
		l4 = sizeof(ip6);
	} else {
		return false;
	}
	if (proto == IPPROTO_TCP) {
		struct tcphdr th;
		if (bpf_skb_load_bytes(skb, l4, &th, sizeof(th)))
			return false;
		*seq = bpf_ntohl(th.seq);
		l4 += th.doff * 4;
	} else {
		l4 += sizeof(struct udphdr);
	}
	if (skb->len <= l4)
		return false;
	p->skb = skb;
	p->off = l4;
	p->len = skb->len - l4;
	return true;
}

/* Hands a settled stack to the socket's sock_info, which the connection's records are made from
 * (the conns iterator, the close record, each UDP datagram). A socket without one is not a
 * connection of ours yet (a UDP socket before its first send or receive returned): try again at
 * its next packets, a few times. */
static __always_inline void classify_deliver(struct classify_state *cs, struct bpf_sock *sk)
{
	if (!(cs->stack.api | cs->stack.application | cs->stack.encryption)) {
		cs->delivered = CLASSIFY_DELIVERED; /* nothing to give */
		return;
	}
	__u64 id = sock_id((const struct sock *)sk);
	struct sock_info *si = bpf_map_lookup_elem(&socks, &id);
	__u8 done = capture_dns && cs->stack.application == APP_DNS ? CLASSIFY_DELIVERED_DNS : CLASSIFY_DELIVERED;
	if (si) {
		si->stack = cs->stack;
		cs->delivered = done;
	} else if (++cs->tries >= CLASSIFY_MAX_PACKETS) {
		cs->delivered = done; /* the tracer does not track this socket */
	}
}

/* enet_classify: classify_packet (classify.h) as a BPF function of its own, a global function
 * (5.6+) that the verifier checks once, apart from the hook around it; inlined, the hook's paths
 * multiply the classifiers' states past the verifier's instruction limit. Before 5.12 a global
 * function takes only the context and scalars, so the stack goes in as a u32 and comes out in the
 * low 32 bits of the return value, enum classify_result in the high ones. `how` holds the
 * CLASSIFY_HOW_* bits. */
#define CLASSIFY_HOW_EGRESS 1
#define CLASSIFY_HOW_TCP 2
#define CLASSIFY_HOW_FIRST 4

union stack_word {
	struct protocol_stack st;
	__u32 w;
};

__noinline __u64 enet_classify(struct __sk_buff *skb, __u32 off, __u32 len, __u32 stack, __u32 how)
{
	struct payload p = {.skb = skb, .off = off, .len = len};
	union stack_word s = {.w = stack};
	__u32 r =
	    classify_packet(&s.st, &p, how & CLASSIFY_HOW_EGRESS, how & CLASSIFY_HOW_TCP, how & CLASSIFY_HOW_FIRST);
	return s.w | ((__u64)r << 32);
}

static __always_inline void classify_settle(struct protocol_stack *st)
{
	st->flags = (st->flags & ~STACK_PENDING) | STACK_SETTLED;
	count((st->api | st->application | st->encryption) ? TELEMETRY_CLASSIFIED : TELEMETRY_UNCLASSIFIED);
}

static __always_inline void handle_skb(struct __sk_buff *skb, bool egress)
{
	struct bpf_sock *sk = skb->sk;
	if (!sk)
		return;
	/* The usual case first, one helper call: a settled socket (the helper itself returns
	 * nothing for a socket that is not a full one, and only TCP and UDP sockets of ours get
	 * storage). */
	struct classify_state *cs = bpf_sk_storage_get(&stacks, sk, 0, 0);
	if (cs && cs->delivered == CLASSIFY_DELIVERED)
		return;
	sk = bpf_sk_fullsock(sk);
	if (!sk || (sk->family != AF_INET && sk->family != AF_INET6))
		return;
	__u8 proto = sk->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return;

	struct payload p = {};
	__u32 seq = 0;
	if (!skb_payload(skb, proto, &p, &seq))
		return;
	if (cs && cs->delivered == CLASSIFY_DELIVERED_DNS)
		goto capture;
	if (!cs) {
		/* Payload through a listener completed a handshake: it belongs to the child socket the
		 * kernel is about to create, which then has missed its first bytes. */
		if (sk->state == TCP_LISTEN)
			return;
		cs = bpf_sk_storage_get(&stacks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!cs)
			return; /* no memory for it: left unknown, and the next packet tries again */
	}
	struct protocol_stack *st = &cs->stack;
	if (st->flags & STACK_SETTLED) {
		classify_deliver(cs, sk);
		goto capture;
	}

	bool first = true;
	if (proto == IPPROTO_TCP) {
		struct bpf_tcp_sock *tp = bpf_tcp_sock(sk);
		if (!tp)
			return;
		__u8 seen = egress ? STACK_SEEN_EGRESS : STACK_SEEN_INGRESS;
		if (egress) {
			/* bytes_acked would do but counts the SYN on some kernels; the kernel counted
			 * this packet's segments already, and no data segment left before them. */
			__u32 segs = skb->gso_segs ? skb->gso_segs : 1;
			first = seq == tp->snd_una && tp->data_segs_out <= segs;
		} else
			first = seq == tp->rcv_nxt && tp->bytes_received == 0;
		/* Sent data leaves in order, so a later byte first means the start was missed; received
		 * data may come out of order, and only data already received says so. */
		if (!first && !(st->flags & seen) && (egress || tp->bytes_received))
			st->flags |= seen;
	}
	if (first || (st->flags & STACK_WAITS)) {
		union stack_word s = {.st = *st};
		__u32 how = (egress ? CLASSIFY_HOW_EGRESS : 0) | (proto == IPPROTO_TCP ? CLASSIFY_HOW_TCP : 0) |
			    (first ? CLASSIFY_HOW_FIRST : 0);
		__u64 r = enet_classify(skb, p.off, p.len, s.w, how);
		s.w = (__u32)r;
		*st = s.st;
		if ((r >> 32) & CLASSIFY_SHORT)
			count(TELEMETRY_CLASSIFY_SHORT);
	}
	if (!(st->flags & STACK_SETTLED) &&
	    (++cs->packets >= CLASSIFY_MAX_PACKETS ||
	     ((st->flags & STACK_SEEN_BOTH) == STACK_SEEN_BOTH && !(st->flags & STACK_WAITS))))
		st->flags |= STACK_SETTLED;
	if (st->flags & STACK_SETTLED) {
		classify_settle(st);
		classify_deliver(cs, sk);
	}
capture:
	/* A response that settled the socket as DNS is captured too: a socket's first response
	 * may be its only one. */
	if (capture_dns && !egress && cs->stack.application == APP_DNS)
		dns_capture(skb, sk, &p, proto == IPPROTO_TCP);
}

#endif
