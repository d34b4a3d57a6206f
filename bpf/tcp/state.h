/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* TCP life cycle from sock:inet_sock_set_state and tcp:tcp_destroy_sock.
 *
 * Why these hooks: every TCP socket passes through inet_sock_set_state on each state change
 * (connect, accept, listen, close, reset, timeout), in the kernel's own words, with no
 * per-packet cost; it tells direction exactly (SYN_SENT: we connected; SYN_RECV: we accepted).
 * The final record of a connection established while the tracer runs is taken by sock_ops when
 * the socket enters CLOSE (sockops.h); tcp_destroy_sock takes it for the rest (sockets older than
 * the tracer, and any socket that reached CLOSE before its callbacks were asked for). Either way its
 * counts are the kernel's (counters.h), final since the socket entered CLOSE. */
#ifndef EBPFNET_TCP_STATE_H
#define EBPFNET_TCP_STATE_H

#include "../common/sock.h"
#include "../common/conn.h"
#include "../maps/listen_ports.h"
#include "io.h"
#include "health.h"

static __always_inline void listen_key(struct port_binding *k, const struct sock *sk)
{
	k->netns = sk_netns(sk);
	k->port = BPF_CORE_READ(sk, __sk_common.skc_num);
	k->_pad = 0;
}

/* A new socket of ours: counters start at zero. BPF_ANY, so a stale entry left at the same
 * address by a socket whose end was missed cannot leak into this one. */
static __always_inline struct sock_info *tcp_sock_new(const struct sock *sk, __u64 id, __u8 direction, __u32 pid_hint,
						      int newstate, const bool tracing)
{
	struct sock_info si = {};
	si.start = bpf_ktime_get_ns();
	si.cookie = sock_cookie(sk, tracing, si.start);
	si.direction = direction;
	si.pid_hint = pid_hint;
	si.transitions = 1 << newstate;
	if (bpf_map_update_elem(&socks, &id, &si, BPF_ANY)) {
		count(TELEMETRY_SOCK_MAP_FULL);
		return NULL;
	}
	return bpf_map_lookup_elem(&socks, &id);
}

/* The owner of an accepted socket until it does I/O: whoever called listen() on its port. */
static __always_inline __u32 listener_owner(const struct sock *sk)
{
	struct port_binding pb;
	listen_key(&pb, sk);
	__u32 *owner = bpf_map_lookup_elem(&listen_ports, &pb);
	return owner ? *owner : 0;
}

/* The connection is over: its final record, handed over exactly once (the socket's entry goes).
 * `cookie` is the socket's cookie as the calling program can get it, for a connection user space
 * never saw; `reason` the error it ended with. */
static __always_inline void tcp_close_record(const struct sock *sk, struct sock_info *si, __u64 id, __u64 cookie,
					     __u8 reason)
{
	__u64 now = bpf_ktime_get_ns();
	struct conn_value final = {};
	struct conn_value *v = NULL;

	if (si->tracked == SOCK_TRACKED)
		v = bpf_map_lookup_elem(&conns, &si->tuple);
	if (v) {
		final = *v;
	} else {
		/* Closed before its owner did I/O (refused, reset, accepted and closed): report it
		 * under the pid that connected or listened. A connect that never got established has
		 * lost its local port at destroy (reported as 0); everything else was taken in time. */
		if (si->tracked == SOCK_UNTRACKED)
			tcp_tuple(&si->tuple, sk, si->pid_hint);
		si->cookie = cookie;
		conn_init(&final, si, id, 0);
	}
	tcp_counts(&final.stats, sk, si);
	final.stats.protocol_stack = si->stack;
	final.stats.timestamp = now;
	final.stats.duration = now - final.stats.start;

	tcp_health(&final.tcp, sk, si);
	final.tcp.state_transitions = si->transitions | (1 << TCP_CLOSE);
	final.tcp.failure_reason = reason;

	conn_emit_closed(&si->tuple, &final, v != NULL);
	bpf_map_delete_elem(&socks, &id);
}

/* The socket is destroyed: for a connection the sock_ops close (sockops.h) did not report, the
 * final record now. */
static __always_inline int handle_tcp_destroy(const struct sock *sk, const bool tracing)
{
	__u64 id = sock_id(sk);
	struct sock_info *si = bpf_map_lookup_elem(&socks, &id);
	if (!si)
		return 0; /* reported at CLOSE, never connected, a listener, or idle since before the tracer started */
	tcp_close_record(sk, si, id, sock_cookie(sk, tracing, si->start), si->failure_reason);
	return 0;
}

static __always_inline int handle_tcp_state(const struct sock *sk, int oldstate, int newstate, const bool tracing)
{
	if (sk_protocol(sk) != IPPROTO_TCP)
		return 0;
	__u16 family = sk_family(sk);
	if (family != AF_INET && family != AF_INET6)
		return 0;

	struct port_binding pb;
	if (newstate == TCP_LISTEN) {
		__u32 tgid = current_tgid(); /* listen() runs in the owner's context */
		listen_key(&pb, sk);
		if (bpf_map_update_elem(&listen_ports, &pb, &tgid, BPF_ANY))
			count(TELEMETRY_LISTEN_MAP_FULL);
		return 0;
	}
	if (oldstate == TCP_LISTEN && newstate == TCP_CLOSE) {
		listen_key(&pb, sk);
		bpf_map_delete_elem(&listen_ports, &pb);
		return 0;
	}

	__u64 id = sock_id(sk);
	if (newstate == TCP_SYN_SENT) {
		/* connect() runs in the caller's context: its tgid owns the connection. The local
		 * port is not chosen yet (inet_hash_connect comes after), so the tuple waits. */
		struct sock_info *si = tcp_sock_new(sk, id, CONN_DIRECTION_OUTGOING, current_tgid(), newstate, tracing);
		if (si)
			take_owner(si);
		return 0;
	}
	if (newstate == TCP_SYN_RECV) {
		/* A child socket of a listener, created in softirq: the current task means nothing.
		 * The listener's owner is the best guess until the accepting process does I/O.
		 * The step is reported while the child is cloned from the listener, and on 6.1
		 * (measured) the clone then copies the request socket's cookie (none) over the one
		 * asked for here: the cookie is taken again at ESTABLISHED. Kernels that do not
		 * report this step start at ESTABLISHED. */
		tcp_sock_new(sk, id, CONN_DIRECTION_INCOMING, listener_owner(sk), newstate, tracing);
		return 0;
	}

	struct sock_info *si = bpf_map_lookup_elem(&socks, &id);
	if (!si && newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_RECV)
		si = tcp_sock_new(sk, id, CONN_DIRECTION_INCOMING, listener_owner(sk), TCP_SYN_RECV, tracing);
	if (!si)
		return 0; /* opened before the tracer started and idle since: adopted at its first I/O */
	if (newstate == TCP_ESTABLISHED)
		tcp_handshake_done(si, sk);
	si->transitions |= 1 << newstate;
	if (newstate == TCP_CLOSE) {
		si->failure_reason = tcp_error(sk, si);
	} else if (newstate == TCP_ESTABLISHED && si->tracked == SOCK_UNTRACKED) {
		if (si->direction == CONN_DIRECTION_OUTGOING) {
			/* The connecting process is known: list the connection now, before any payload. */
			tcp_track(si, sk, id, si->pid_hint, tracing);
		} else {
			/* Accepted: the owner is known at its first I/O; keep the tuple for a close
			 * that comes first. The handshake is over, so the cookie is final: ask for it
			 * now, in a tracing program, so that payload hooks that can only read it
			 * (kprobes) find it set. */
			si->cookie = sock_cookie(sk, tracing, si->start);
			tcp_tuple(&si->tuple, sk, si->pid_hint);
			si->tracked = SOCK_TUPLE_KNOWN;
		}
	}
	return 0;
}

#endif
