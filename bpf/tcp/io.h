/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* TCP payload accounting, called from the send/recv hooks of every mode. */
#ifndef EBPFNET_TCP_IO_H
#define EBPFNET_TCP_IO_H

#include "../common/sock.h"
#include "../common/conn.h"
#include "../maps/listen_ports.h"

static __always_inline void tcp_tuple(struct conn_tuple *t, const struct sock *sk, __u32 pid)
{
	tuple_from_sock(t, sk, sk_family(sk));
	t->metadata |= CONN_TCP;
	t->pid = pid;
}

/* Lists the socket in the connection table under the given owner. A tuple taken earlier is
 * kept: once the socket is in CLOSE the kernel has released its local port (inet_num = 0). The
 * cookie is taken again now, the last moment before user space sees it: an accepted socket's
 * cookie changes during the handshake (see TCP_SYN_RECV in state.h), and one that does I/O
 * before ESTABLISHED (TCP Fast Open) was not asked for again there. */
static __always_inline void tcp_track(struct sock_info *si, const struct sock *sk, __u64 id, __u32 pid,
				      const bool tracing)
{
	si->cookie = sock_cookie(sk, tracing, si->start);
	if (si->tracked == SOCK_TUPLE_KNOWN)
		si->tuple.pid = pid;
	else
		tcp_tuple(&si->tuple, sk, pid);
	struct conn_value *v = conn_get_or_insert(&si->tuple, si, id, bpf_ktime_get_ns());
	si->tracked = v ? SOCK_TRACKED : SOCK_TRACK_FAILED;
}

/* A socket first seen at I/O was opened before the tracer started. Its direction comes from
 * the port bindings: a local port in LISTEN, or one chosen by bind(), serves the connection. */
static __always_inline struct sock_info *tcp_adopt(const struct sock *sk, __u64 id, const bool tracing)
{
	struct sock_info si = {};
	struct port_binding pb = {.netns = sk_netns(sk), .port = BPF_CORE_READ(sk, __sk_common.skc_num)};

	si.start = bpf_ktime_get_ns();
	si.cookie = sock_cookie(sk, tracing, si.start);
	si.direction = (bpf_map_lookup_elem(&listen_ports, &pb) || sk_port_bound(sk)) ? CONN_DIRECTION_INCOMING
										      : CONN_DIRECTION_OUTGOING;
	/* Counters start now for bytes, so packets start now too. */
	si.segs_out_base = tcp_data_segs_out(sk);
	si.segs_in_base = tcp_data_segs_in(sk);
	si.transitions = 1 << sk_state(sk);
	if (bpf_map_update_elem(&socks, &id, &si, BPF_NOEXIST) && bpf_map_lookup_elem(&socks, &id) == NULL) {
		count(TELEMETRY_SOCK_MAP_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&socks, &id);
}

static __always_inline void tcp_io(const struct sock *sk, int ret, bool send, const bool tracing)
{
	if (ret <= 0)
		return;
	/* Reads in CLOSE are counted: data queued before a FIN or reset is still the
	 * connection's. The final record is taken when the socket is destroyed. */
	__u64 id = sock_id(sk);
	struct sock_info *si = bpf_map_lookup_elem(&socks, &id);
	if (!si) {
		if (sk_state(sk) == TCP_CLOSE)
			return; /* older than the tracer and already over: nothing to adopt */
		si = tcp_adopt(sk, id, tracing);
		if (!si)
			return;
	}
	if (si->tracked == SOCK_UNTRACKED || si->tracked == SOCK_TUPLE_KNOWN) {
		bpf_get_current_comm(si->comm, sizeof(si->comm));
		tcp_track(si, sk, id, current_tgid(), tracing); /* I/O runs in the owner's context */
	}
	if (si->tracked != SOCK_TRACKED)
		return;

	struct conn_value *v = bpf_map_lookup_elem(&conns, &si->tuple);
	if (!v)
		return;
	__u64 now = bpf_ktime_get_ns();
	stats_add(&v->stats, send, ret, now);
	/* The kernel's own absolute counters: a concurrent update can only lag, never count twice.
	 * Segments leave after sendmsg returns (cwnd, Nagle), so these lag until the next I/O or
	 * the close, where they are exact. */
	v->stats.sent_packets = tcp_data_segs_out(sk) - si->segs_out_base;
	v->stats.recv_packets = tcp_data_segs_in(sk) - si->segs_in_base;
}

#endif
