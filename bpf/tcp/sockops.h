/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* TCP life cycle from cgroup sock_ops callbacks, beside the tracepoints of state.h.
 *
 * Why: the kernel runs cgroup programs without the per-program recursion guard of tracing
 * programs, so no callback is ever skipped, where a tracepoint program can be (an interrupt on
 * top of it, or on kernels that let tracepoint programs be preempted, another task). A socket
 * gets state callbacks only once a program asked for them, which this one does when it connects
 * or is established; so sockets older than the tracer, and accepted sockets closed during the
 * handshake, still end through tcp_destroy_sock. The tracepoints stay for what callbacks cannot
 * give: the owner (sock_ops runs in whatever task the packet came in; the helper that names it
 * is 6.12+ only), listeners, and the step a socket took before it got callbacks.
 *
 * With callbacks on, the final record is taken when the socket enters CLOSE, before the kernel
 * releases its local port: the kernel's counts are final then (counters.h), though the application
 * may still read what is queued. */
#ifndef EBPFNET_TCP_SOCKOPS_H
#define EBPFNET_TCP_SOCKOPS_H

#include "state.h"

/* Established (or connecting): ask for state callbacks, and list the socket if the state
 * tracepoint that lists it was skipped. A connecting socket's owner then comes with its first
 * I/O; an accepted one's is the listener's owner, as in state.h. */
static __always_inline void sockops_open(struct bpf_sock_ops *ops, const struct sock *sk, bool outgoing)
{
	bpf_sock_ops_cb_flags_set(ops, ops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
	__u64 id = sock_id(sk);
	if (ops->op == BPF_SOCK_OPS_TCP_CONNECT_CB)
		return; /* connecting: listed at SYN_SENT */
	struct sock_info *listed = bpf_map_lookup_elem(&socks, &id);
	if (listed) {
		/* The usual case. The state tracepoint may have been skipped for this step: whether
		 * the handshake ended decides what a failure and a retransmit are (health.h). */
		tcp_handshake_done(listed, sk);
		return;
	}
	struct sock_info si = {};
	si.start = bpf_ktime_get_ns();
	si.cookie = bpf_get_socket_cookie(ops);
	tcp_handshake_done(&si, sk);
	if (outgoing) {
		si.direction = CONN_DIRECTION_OUTGOING;
		si.transitions |= 1 << TCP_SYN_SENT;
	} else {
		si.direction = CONN_DIRECTION_INCOMING;
		si.pid_hint = listener_owner(sk);
		si.transitions |= 1 << TCP_SYN_RECV;
		tcp_tuple(&si.tuple, sk, si.pid_hint);
		si.tracked = SOCK_TUPLE_KNOWN;
	}
	long err = bpf_map_update_elem(&socks, &id, &si, BPF_NOEXIST);
	if (err == 0)
		count(TELEMETRY_RESCUED);
	else if (!bpf_map_lookup_elem(&socks, &id))
		count(TELEMETRY_SOCK_MAP_FULL);
}

static __always_inline void sockops_close(struct bpf_sock_ops *ops, const struct sock *sk)
{
	__u64 id = sock_id(sk);
	struct sock_info *si = bpf_map_lookup_elem(&socks, &id);
	if (!si)
		return;
	si->transitions |= 1 << TCP_CLOSE;
	tcp_close_record(sk, si, id, bpf_get_socket_cookie(ops), tcp_error(sk, si));
}

/* A getsockopt call, after the kernel answered it: for SO_ERROR on a TCP socket that is still
 * connecting, the error the call returned, which the kernel has cleared (tcp_error). The
 * context's socket is the kernel's struct sock, the socket table's key. */
static __always_inline void handle_getsockopt(struct bpf_sockopt *ctx)
{
	if (ctx->level != SOL_SOCKET || ctx->optname != SO_ERROR || ctx->retval != 0)
		return;
	struct bpf_sock *bsk = ctx->sk;
	if (!bsk || bsk->protocol != IPPROTO_TCP)
		return;
	int *val = ctx->optval;
	if ((void *)(val + 1) > ctx->optval_end || *val <= 0)
		return;
	__u64 id = (__u64)bsk;
	struct sock_info *si = bpf_map_lookup_elem(&socks, &id);
	if (si && tcp_connecting(si))
		si->failure_reason = sat_u8(*val);
}

static __always_inline void handle_sockops(struct bpf_sock_ops *ops)
{
	if (ops->family != AF_INET && ops->family != AF_INET6)
		return;
	struct bpf_sock *bsk = ops->sk;
	if (!bsk)
		return;
	const struct sock *sk = (const struct sock *)bpf_skc_to_tcp_sock(bsk);
	if (!sk)
		return;
	switch (ops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		sockops_open(ops, sk, true);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		sockops_open(ops, sk, false);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		if (ops->args[1] == TCP_CLOSE)
			sockops_close(ops, sk);
		break;
	}
}

#endif
