/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* TCP at I/O, called from the send/recv hooks of every mode: who owns the connection. */
#ifndef EBPFNET_TCP_IO_H
#define EBPFNET_TCP_IO_H

#include "../common/sock.h"
#include "../common/conn.h"
#include "../maps/listen_ports.h"
#include "counters.h"

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

/* A socket first seen at I/O was opened before the tracer started (or its connect was skipped by
 * the kernel). Its direction comes from the port bindings: a local port in LISTEN, or one chosen
 * by bind(), serves the connection. Its counts begin with this call (tcp_baseline). */
static __always_inline struct sock_info *tcp_adopt(const struct sock *sk, __u64 id, int ret, bool send,
						   const bool tracing)
{
	struct sock_info si = {};
	struct port_binding pb = {.netns = sk_netns(sk), .port = BPF_CORE_READ(sk, __sk_common.skc_num)};

	si.start = bpf_ktime_get_ns();
	si.cookie = sock_cookie(sk, tracing, si.start);
	si.direction = (bpf_map_lookup_elem(&listen_ports, &pb) || sk_port_bound(sk)) ? CONN_DIRECTION_INCOMING
										      : CONN_DIRECTION_OUTGOING;
	tcp_baseline(&si, sk, ret, send);
	si.transitions = 1 << sk_state(sk);
	if (bpf_map_update_elem(&socks, &id, &si, BPF_NOEXIST) && bpf_map_lookup_elem(&socks, &id) == NULL) {
		count(TELEMETRY_SOCK_MAP_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&socks, &id);
}

/* A send or receive call on a TCP socket the tracer does not know the owner of yet (si, NULL
 * when it has no entry). The kernel counts the bytes (counters.h); this names the owner: the
 * first call on a socket runs in the context of the process that owns it. */
static __always_inline void tcp_io(const struct sock *sk, struct sock_info *si, __u64 id, int ret, bool send,
				   const bool tracing)
{
	if (ret <= 0)
		return;
	if (!si) {
		if (sk_state(sk) == TCP_CLOSE)
			return; /* older than the tracer and already over: nothing to adopt */
		si = tcp_adopt(sk, id, ret, send, tracing);
		if (!si)
			return;
	}
	take_owner(si);
	tcp_track(si, sk, id, current_tgid(), tracing);
}

#endif
