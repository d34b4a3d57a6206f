// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Entry points of the otelcol-ebpfnet connection tracer: one line each into a handler of its
 * concern (tcp/, udp/, protocols/). Several programs may give the same data through different kernel hooks;
 * Go tries them on the running kernel, best first, and attaches one set (see hooks_linux.go).
 * Program names are short (the kernel keeps 15 characters) and share the enet_ prefix so
 * `bpftool prog list` shows ours at a glance:
 *   enet_tp_*  tp_btf (BTF-typed tracepoints)   enet_tb_*  their backups (maps/guard.h)
 *   enet_rt_*  raw tracepoints
 *   enet_fx_*  fexit                            enet_kp_* / enet_kr_*  kprobe / kretprobe
 *   enet_cg_*  cgroup hooks                     enet_it_*  BPF iterators, read at each poll
 *   enet_rn_*  run by the poll (BPF_PROG_TEST_RUN), never attached
 *   enet_pr_*  load-time probes, never attached */
#include "common/vmlinux.h"
#include "common/arch.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>

#include "common/sizing.h"
#include "common/types.h"
#include "tcp/state.h"
#include "tcp/io.h"
#include "tcp/iter.h"
#include "tcp/sockops.h"
#include "udp/peer.h"
#include "udp/io.h"
#include "protocols/hook.h"
#include "cgroup/mkdir.h"
#include "maps/io_args.h"
#include "maps/guard.h"
#include "maps/tcp_known.h"

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
const enum proto_api *unused_proto_api __attribute__((unused));
const enum proto_application *unused_proto_application __attribute__((unused));
const enum proto_encryption *unused_proto_encryption __attribute__((unused));
const enum stack_flags *unused_stack_flags __attribute__((unused));
const struct classify_state *unused_classify_state __attribute__((unused));
const struct cgroup_path *unused_cgroup_path __attribute__((unused));
const enum classify_delivery *unused_classify_delivery __attribute__((unused));

/* One send or receive call, from whichever hook saw it return. A TCP socket whose owner is known
 * returns after one lookup, of its socket storage or of the socket table: the kernel counts its
 * bytes (tcp/counters.h). `tracing` is a compile-time constant: true for tp_btf and fexit
 * programs; `storage` true for programs that may use socket storage, which then mark the socket
 * known (maps/tcp_known.h). */
static __always_inline void handle_io(struct sock *sk, int ret, int flags, bool send, const bool tracing,
				      const bool storage)
{
	if (storage) {
		__u8 *known = bpf_sk_storage_get(&tcp_known, sk, 0, 0);
		if (known && *known)
			return;
	}
	/* The tracepoints see every family; a Unix socket's call must cost no table lookup. */
	__u16 family = sk_family(sk);
	if (family != AF_INET && family != AF_INET6)
		return;
	__u64 id = sock_id(sk);
	struct sock_info *si = bpf_map_lookup_elem(&socks, &id);
	if (si && (si->tuple.metadata & CONN_TCP) && si->tracked != SOCK_TUPLE_KNOWN) {
		if (storage) {
			__u8 *known = bpf_sk_storage_get(&tcp_known, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
			if (known)
				*known = 1;
		}
		return;
	}
	__u16 proto = sk_protocol(sk);
	if (proto == IPPROTO_TCP)
		tcp_io(sk, si, id, ret, send, tracing);
	else if (proto == IPPROTO_UDP && !(!send && (flags & MSG_PEEK))) /* peeked bytes are read again later */
		udp_io(sk, si, id, ret, send, tracing);
}

/* ---- TCP life cycle: sock:inet_sock_set_state and tcp:tcp_destroy_sock (5.10+) ----
 * Each tp_btf program has a backup (enet_tb_*) on the same tracepoint, attached after it, that
 * handles the events the kernel's recursion guard skipped the primary for (maps/guard.h). */

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(enet_tp_state, const struct sock *sk, const int oldstate, const int newstate)
{
	__u32 *g = guard_enter(GUARD_STATE);
	handle_tcp_state(sk, oldstate, newstate, true);
	guard_exit(g);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(enet_tb_state, const struct sock *sk, const int oldstate, const int newstate)
{
	if (guard_primary_busy(GUARD_STATE))
		handle_tcp_state(sk, oldstate, newstate, true);
	return 0;
}

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(enet_rt_state, const struct sock *sk, const int oldstate, const int newstate)
{
	return handle_tcp_state(sk, oldstate, newstate, false);
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(enet_tp_destroy, struct sock *sk)
{
	__u32 *g = guard_enter(GUARD_DESTROY);
	handle_tcp_destroy(sk, true);
	guard_exit(g);
	return 0;
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(enet_tb_destroy, struct sock *sk)
{
	if (guard_primary_busy(GUARD_DESTROY))
		handle_tcp_destroy(sk, true);
	return 0;
}

SEC("raw_tp/tcp_destroy_sock")
int BPF_PROG(enet_rt_destroy, struct sock *sk)
{
	return handle_tcp_destroy(sk, false);
}

/* ---- New cgroups, so that a container shorter than a poll is still named (cgroup/mkdir.h) ---- */

SEC("tp_btf/cgroup_mkdir")
int BPF_PROG(enet_tp_cgmkdir, struct cgroup *cgrp, const char *path)
{
	handle_cgroup_mkdir(cgrp, path);
	return 0;
}

SEC("raw_tp/cgroup_mkdir")
int BPF_PROG(enet_rt_cgmkdir, struct cgroup *cgrp, const char *path)
{
	handle_cgroup_mkdir(cgrp, path);
	return 0;
}

/* ---- TCP life cycle without a recursion guard: cgroup sock_ops (tcp/sockops.h) ---- */

SEC("sockops")
int enet_cg_sockops(struct bpf_sock_ops *ops)
{
	handle_sockops(ops);
	return 1;
}

/* The error a connect ended with, as its owner reads it (getsockopt SO_ERROR; see
 * tcp/health.h): the kernel clears it on that read. Never changes what the caller gets. */
SEC("cgroup/getsockopt")
int enet_cg_sockerr(struct bpf_sockopt *ctx)
{
	handle_getsockopt(ctx);
	return 1;
}

/* ---- Payload, mode "tracepoint": sock:sock_send_length / sock_recv_length (6.3+) ----
 * They fire in sock_sendmsg / sock_recvmsg with the byte count the call returned: every path
 * into a socket (send*, write*, sendfile and splice since 6.5, io_uring), once per call, in the
 * caller's context, so the PID is exact. Payload as the application sees it. */

SEC("tp_btf/sock_send_length")
int BPF_PROG(enet_tp_send, struct sock *sk, int ret, int flags)
{
	__u32 *g = guard_enter(GUARD_SEND);
	handle_io(sk, ret, flags, true, true, true);
	guard_exit(g);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(enet_tb_send, struct sock *sk, int ret, int flags)
{
	if (guard_primary_busy(GUARD_SEND))
		handle_io(sk, ret, flags, true, true, true);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(enet_tp_recv, struct sock *sk, int ret, int flags)
{
	__u32 *g = guard_enter(GUARD_RECV);
	handle_io(sk, ret, flags, false, true, true);
	guard_exit(g);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(enet_tb_recv, struct sock *sk, int ret, int flags)
{
	if (guard_primary_busy(GUARD_RECV))
		handle_io(sk, ret, flags, false, true, true);
	return 0;
}

/* ---- Payload, mode "fentry": fexit on the protocol functions (kernels before 6.3) ----
 * tcp_sendmsg / tcp_recvmsg serve TCP over IPv4 and IPv6; UDP has a function per family.
 * recvmsg lost its `nonblock` argument in 5.19: Go reads the prototype from the kernel's BTF and
 * loads the variant with the matching argument count (…5 or …6). tcp_sendpage carries
 * sendfile() before 6.5, where it was removed. */

SEC("fexit/tcp_sendmsg")
int BPF_PROG(enet_fx_tsend, struct sock *sk, void *msg, size_t size, int ret)
{
	handle_io(sk, ret, 0, true, true, false);
	return 0;
}

SEC("fexit/tcp_sendpage")
int BPF_PROG(enet_fx_tpage, struct sock *sk, void *page, int offset, size_t size, int flags, int ret)
{
	handle_io(sk, ret, 0, true, true, false);
	return 0;
}

SEC("fexit/udp_sendmsg")
int BPF_PROG(enet_fx_usend, struct sock *sk, void *msg, size_t len, int ret)
{
	handle_io(sk, ret, 0, true, true, false);
	return 0;
}

SEC("fexit/udpv6_sendmsg")
int BPF_PROG(enet_fx_u6send, struct sock *sk, void *msg, size_t len, int ret)
{
	handle_io(sk, ret, 0, true, true, false);
	return 0;
}

#define FEXIT_RECV(name, fn)                                                                                           \
	SEC("fexit/" #fn)                                                                                              \
	int BPF_PROG(name##5, struct sock *sk, void *msg, size_t len, int flags, int *addr_len, int ret)               \
	{                                                                                                              \
		handle_io(sk, ret, flags, false, true, false);                                                         \
		return 0;                                                                                              \
	}                                                                                                              \
	SEC("fexit/" #fn)                                                                                              \
	int BPF_PROG(name##6, struct sock *sk, void *msg, size_t len, int nonblock, int flags, int *addr_len, int ret) \
	{                                                                                                              \
		handle_io(sk, ret, flags, false, true, false);                                                         \
		return 0;                                                                                              \
	}

FEXIT_RECV(enet_fx_trecv, tcp_recvmsg)
FEXIT_RECV(enet_fx_urecv, udp_recvmsg)
FEXIT_RECV(enet_fx_u6recv, udpv6_recvmsg)

/* ---- Payload, mode "kprobe": the same functions through kprobe + kretprobe ----
 * The kprobe keeps the socket and flags per thread; the kretprobe reads the return value. */

static __always_inline void io_enter(struct sock *sk, int flags)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct io_args a = {.sk = (__u64)sk, .flags = flags};
	bpf_map_update_elem(&io_args, &tid, &a, BPF_ANY);
}

static __always_inline void io_exit(int ret, bool send)
{
	__u64 tid = bpf_get_current_pid_tgid();
	struct io_args *a = bpf_map_lookup_elem(&io_args, &tid);
	if (!a)
		return;
	struct io_args args = *a;
	bpf_map_delete_elem(&io_args, &tid);
	handle_io((struct sock *)args.sk, ret, args.flags, send, false, false);
}

#define KPROBE_SEND(name, fn)                                                                                          \
	SEC("kprobe/" #fn)                                                                                             \
	int BPF_KPROBE(enet_kp_##name, struct sock *sk)                                                                \
	{                                                                                                              \
		io_enter(sk, 0);                                                                                       \
		return 0;                                                                                              \
	}                                                                                                              \
	SEC("kretprobe/" #fn)                                                                                          \
	int BPF_KRETPROBE(enet_kr_##name, int ret)                                                                     \
	{                                                                                                              \
		io_exit(ret, true);                                                                                    \
		return 0;                                                                                              \
	}

#define KPROBE_RECV(name, fn)                                                                                          \
	SEC("kprobe/" #fn)                                                                                             \
	int BPF_KPROBE(enet_kp_##name##5, struct sock *sk, void *msg, size_t len, int flags)                           \
	{                                                                                                              \
		io_enter(sk, flags);                                                                                   \
		return 0;                                                                                              \
	}                                                                                                              \
	SEC("kprobe/" #fn)                                                                                             \
	int BPF_KPROBE(enet_kp_##name##6, struct sock *sk, void *msg, size_t len, int nonblock, int flags)             \
	{                                                                                                              \
		io_enter(sk, flags);                                                                                   \
		return 0;                                                                                              \
	}                                                                                                              \
	SEC("kretprobe/" #fn)                                                                                          \
	int BPF_KRETPROBE(enet_kr_##name, int ret)                                                                     \
	{                                                                                                              \
		io_exit(ret, false);                                                                                   \
		return 0;                                                                                              \
	}

KPROBE_SEND(tsend, tcp_sendmsg)
KPROBE_SEND(tpage, tcp_sendpage)
KPROBE_SEND(usend, udp_sendmsg)
KPROBE_SEND(u6send, udpv6_sendmsg)
KPROBE_RECV(trecv, tcp_recvmsg)
KPROBE_RECV(urecv, udp_recvmsg)
KPROBE_RECV(u6recv, udpv6_recvmsg)

/* ---- UDP peers of unconnected sockets: cgroup sock_addr hooks (see udp/peer.h) ---- */

SEC("cgroup/sendmsg4")
int enet_cg_send4(struct bpf_sock_addr *ctx)
{
	udp_peer_remember(ctx, false);
	return 1;
}

SEC("cgroup/sendmsg6")
int enet_cg_send6(struct bpf_sock_addr *ctx)
{
	udp_peer_remember(ctx, true);
	return 1;
}

SEC("cgroup/recvmsg4")
int enet_cg_recv4(struct bpf_sock_addr *ctx)
{
	udp_peer_remember(ctx, false);
	return 1;
}

SEC("cgroup/recvmsg6")
int enet_cg_recv6(struct bpf_sock_addr *ctx)
{
	udp_peer_remember(ctx, true);
	return 1;
}

/* ---- End of UDP sockets ----
 * No tracepoint marks it. cgroup/sock_release (5.9+) sees every socket created under the cgroup2
 * root but knows it only by cookie, so it serves when the I/O hooks could record cookies
 * (tp_btf, or fentry on 5.12+). Otherwise the protocol's destroy function, by fentry or kprobe. */

SEC("cgroup/sock_release")
int enet_cg_release(struct bpf_sock *ctx)
{
	if (ctx->protocol == IPPROTO_UDP && (ctx->family == AF_INET || ctx->family == AF_INET6))
		udp_release_cookie(bpf_get_socket_cookie(ctx));
	return 1;
}

SEC("fentry/udp_destroy_sock")
int BPF_PROG(enet_fe_udpfree, struct sock *sk)
{
	udp_release(sock_id(sk));
	return 0;
}

SEC("fentry/udpv6_destroy_sock")
int BPF_PROG(enet_fe_udp6free, struct sock *sk)
{
	udp_release(sock_id(sk));
	return 0;
}

SEC("kprobe/udp_destroy_sock")
int BPF_KPROBE(enet_kp_udpfree, struct sock *sk)
{
	udp_release(sock_id(sk));
	return 0;
}

SEC("kprobe/udpv6_destroy_sock")
int BPF_KPROBE(enet_kp_udp6free, struct sock *sk)
{
	udp_release(sock_id(sk));
	return 0;
}

/* ---- Protocol classification: cgroup_skb on the cgroup2 root (protocols/hook.h) ----
 * Loaded only with protocol_classification on. They never drop: 1 lets every packet through. */

SEC("cgroup_skb/egress")
int enet_cg_skbout(struct __sk_buff *skb)
{
	handle_skb(skb, true);
	return 1;
}

SEC("cgroup_skb/ingress")
int enet_cg_skbin(struct __sk_buff *skb)
{
	handle_skb(skb, false);
	return 1;
}

/* ---- The poll's read of the connection table (tcp/iter.h) ---- */

SEC("iter/bpf_map_elem")
int enet_it_conns(struct bpf_iter__bpf_map_elem *ctx)
{
	return conns_iter(ctx);
}

/* Its fallback where iterators are refused: run once per poll before the table is read. */
SEC("raw_tp")
int enet_rn_refresh(void *ctx)
{
	return conns_refresh();
}

/* ---- Load-time probe: may cgroup_skb programs read kernel memory (protocols/dns_capture.h)? ---- */

SEC("cgroup_skb/ingress")
int enet_pr_skbread(struct __sk_buff *skb)
{
	__u64 v = 0;
	bpf_probe_read_kernel(&v, sizeof(v), &v);
	return 1;
}

/* ---- Load-time probe: may tracing programs ask for socket cookies (5.12+)? ---- */

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(enet_pr_cookie, const struct sock *sk, const int oldstate, const int newstate)
{
	return bpf_get_socket_cookie((void *)sk) == 0;
}
