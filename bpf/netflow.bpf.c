// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Entry points of the otelcol-ebpfnet connection tracer: one line each into a handler of its
 * concern (tcp/, udp/). Program names are short (the kernel keeps 15 characters) and share the
 * enet_ prefix so `bpftool prog list` shows ours at a glance. */
#include "common/vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>

#include "common/sizing.h"
#include "common/types.h"
#include "tcp/state.h"
#include "tcp/io.h"
#include "udp/peer.h"
#include "udp/io.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Anchors so bpf2go -type finds the ABI types that no map or program mentions by value. */
const struct conn_record *unused_conn_record __attribute__((unused));
const struct sock_info *unused_sock_info __attribute__((unused));
const enum telemetry_counter *unused_telemetry_counter __attribute__((unused));
const enum conn_metadata *unused_conn_metadata __attribute__((unused));
const enum conn_flags *unused_conn_flags __attribute__((unused));
const enum conn_direction *unused_conn_direction __attribute__((unused));
const enum record_kind *unused_record_kind __attribute__((unused));
const enum sock_track_state *unused_sock_track_state __attribute__((unused));

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(enet_tcp_state, const struct sock *sk, const int oldstate, const int newstate)
{
	return handle_tcp_state(sk, oldstate, newstate);
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(enet_tcp_destroy, struct sock *sk)
{
	return handle_tcp_destroy(sk);
}

/* sock:sock_send_length / sock_recv_length (6.3+) fire in sock_sendmsg / sock_recvmsg with the
 * byte count the syscall returned: every path into a socket (send*, write*, sendfile and splice
 * since 6.5, io_uring), once per call, in the caller's context, so the PID is exact. They see
 * payload as the application does, which is what "bytes sent" means to a user. */
static __always_inline void handle_io(struct sock *sk, int ret, int flags, bool send)
{
	if (!send && (flags & MSG_PEEK))
		return; /* peeked bytes are read again later */
	__u16 family = sk_family(sk);
	if (family != AF_INET && family != AF_INET6)
		return;
	__u16 proto = sk_protocol(sk);
	if (proto == IPPROTO_TCP)
		tcp_io(sk, ret, send);
	else if (proto == IPPROTO_UDP)
		udp_io(sk, ret, send);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(enet_send, struct sock *sk, int ret, int flags)
{
	handle_io(sk, ret, flags, true);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(enet_recv, struct sock *sk, int ret, int flags)
{
	handle_io(sk, ret, flags, false);
	return 0;
}

SEC("cgroup/sendmsg4")
int enet_sendmsg4(struct bpf_sock_addr *ctx)
{
	udp_peer_remember(ctx, false);
	return 1;
}

SEC("cgroup/sendmsg6")
int enet_sendmsg6(struct bpf_sock_addr *ctx)
{
	udp_peer_remember(ctx, true);
	return 1;
}

SEC("cgroup/recvmsg4")
int enet_recvmsg4(struct bpf_sock_addr *ctx)
{
	udp_peer_remember(ctx, false);
	return 1;
}

SEC("cgroup/recvmsg6")
int enet_recvmsg6(struct bpf_sock_addr *ctx)
{
	udp_peer_remember(ctx, true);
	return 1;
}

/* No tracepoint marks the end of a UDP socket; cgroup/sock_release (5.9+) does, for every
 * socket created under the cgroup2 root. */
SEC("cgroup/sock_release")
int enet_sock_rel(struct bpf_sock *ctx)
{
	if (ctx->protocol == IPPROTO_UDP && (ctx->family == AF_INET || ctx->family == AF_INET6))
		udp_release(bpf_get_socket_cookie(ctx));
	return 1;
}
