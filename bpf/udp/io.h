/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* UDP accounting: one connection per socket and peer, one packet per datagram. */
#ifndef EBPFNET_UDP_IO_H
#define EBPFNET_UDP_IO_H

#include "../common/sock.h"
#include "../common/conn.h"
#include "../maps/udp_pending.h"
#include "../maps/udp_cookies.h"

/* The socket's entry (si, looked up by the caller), registered on its first datagram so that its
 * end is reported (see udp_release). NULL when the socket table is full (counted). */
static __always_inline struct sock_info *udp_sock_get(struct sock_info *si, const struct sock *sk, __u64 id, __u64 now,
						      const bool tracing)
{
	if (si)
		return si;
	struct sock_info init = {};
	init.start = now;
	init.cookie = sock_cookie(sk, tracing, now);
	init.tracked = SOCK_TRACKED;
	/* UDP keeps its tuples per peer in conns; the namespace is the socket's, and the DNS
	 * capture (protocols/dns_capture.h), which cannot read struct sock, takes it from here. */
	init.tuple.netns = sk_netns(sk);
	take_owner(&init); /* UDP I/O runs in the owner's context */
	long err = bpf_map_update_elem(&socks, &id, &init, BPF_NOEXIST);
	si = bpf_map_lookup_elem(&socks, &id);
	if (!si) {
		if (err)
			count(TELEMETRY_SOCK_MAP_FULL);
		return NULL;
	}
	if (tracing && cookie_helper && bpf_map_update_elem(&udp_cookies, &init.cookie, &id, BPF_ANY))
		count(TELEMETRY_COOKIE_MAP_FULL); /* its end comes by idle timeout instead */
	return si;
}

static __always_inline void udp_io(const struct sock *sk, struct sock_info *si, __u64 id, int ret, bool send,
				   const bool tracing)
{
	/* The address hook's peer belongs to this syscall only: take it even if the call failed. */
	__u64 tid = bpf_get_current_pid_tgid();
	struct udp_peer peer = {};
	struct udp_peer *pending = bpf_map_lookup_elem(&udp_pending, &tid);
	bool have_peer = pending != NULL;
	if (pending) {
		peer = *pending;
		bpf_map_delete_elem(&udp_pending, &tid);
	}
	if (ret < 0)
		return; /* failed; ret == 0 is a zero-length datagram, still a datagram */

	struct conn_tuple t = {};
	tuple_from_sock(&t, sk, sk_family(sk));
	t.metadata |= CONN_UDP;
	t.pid = tid >> 32;
	if (have_peer) {
		t.daddr_h = peer.addr_h;
		t.daddr_l = peer.addr_l;
		t.dport = peer.port;
	} else if (sk_state(sk) != TCP_ESTABLISHED) {
		/* Unconnected and no address seen (recv() without a buffer for it). */
		count(TELEMETRY_MISSED_PEER);
	}

	__u64 now = bpf_ktime_get_ns();
	si = udp_sock_get(si, sk, id, now, tracing);
	if (!si)
		return;
	/* UDP has no handshake: the side that spoke first opened the flow, as conntrack sees it.
	 * (A bound port would misjudge servers bound to port 0 and servers that query others.) */
	__u8 direction = send ? CONN_DIRECTION_OUTGOING : CONN_DIRECTION_INCOMING;

	struct conn_value *v = bpf_map_lookup_elem(&conns, &t);
	if (v && (v->stats.sock_id != id || v->stats.cookie != si->cookie)) {
		/* Same tuple, new socket: the old one was released and user space has not collected
		 * its entry yet. Report the old entry now and give its place to the new socket. The
		 * table cannot keep both, so with the ring full the old record is lost, and counted. */
		struct conn_value old = *v;
		old.stats.duration = old.stats.timestamp - old.stats.start;
		count(TELEMETRY_TUPLE_REUSED);
		if (!conn_push_closed(&t, &old, true)) {
			count(TELEMETRY_CLOSED_LOST);
			bpf_map_delete_elem(&conns, &t);
		}
		v = NULL;
	}
	if (!v) {
		struct sock_info flow = *si; /* direction and start are the flow's, not the socket's */
		flow.start = now;
		flow.direction = direction;
		v = conn_get_or_insert(&t, &flow, id, now);
		if (!v)
			return;
	}
	stats_add(&v->stats, send, ret, now);
	v->stats.protocol_stack = si->stack; /* the socket's, once settled (protocols/hook.h) */
	if (send)
		__sync_fetch_and_add(&v->stats.sent_packets, 1);
	else
		__sync_fetch_and_add(&v->stats.recv_packets, 1);
}

/* A UDP socket ended: tell user space which one, so it moves every entry of that socket (one
 * per peer) to the closed list. Sockets that never carried traffic are skipped. */
static __always_inline void udp_release(__u64 id)
{
	struct sock_info *si = bpf_map_lookup_elem(&socks, &id);
	if (!si)
		return;
	struct conn_record *rec = bpf_ringbuf_reserve(&closed, sizeof(*rec), 0);
	if (!rec) {
		/* Keep the socket listed as released; user space looks for these when it sees this
		 * counter move. */
		si->tracked = SOCK_RELEASED;
		count(TELEMETRY_RING_RESERVE_FAILED);
		return;
	}
	__builtin_memset(rec, 0, sizeof(*rec));
	rec->kind = RECORD_SOCK_RELEASED;
	rec->value.stats.sock_id = id;
	rec->value.stats.cookie = si->cookie;
	bpf_ringbuf_submit(rec, ring_submit_flags());
	bpf_map_delete_elem(&socks, &id);
}

/* cgroup/sock_release knows only the cookie. */
static __always_inline void udp_release_cookie(__u64 cookie)
{
	__u64 *id = bpf_map_lookup_elem(&udp_cookies, &cookie);
	if (!id)
		return;
	__u64 sid = *id;
	bpf_map_delete_elem(&udp_cookies, &cookie);
	udp_release(sid);
}

#endif
