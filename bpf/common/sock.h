/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* CO-RE readers for struct sock. Every read goes through BPF_CORE_READ (bpf_probe_read_kernel),
 * which works from tp_btf, fentry and kprobe programs alike, so the handlers can move to other
 * hooks on other kernels unchanged. */
#ifndef EBPFNET_COMMON_SOCK_H
#define EBPFNET_COMMON_SOCK_H

#include "types.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define MSG_PEEK 0x2
#define SOL_SOCKET 1 /* getsockopt level and option (include/uapi/asm-generic/socket.h, x86 and arm64) */
#define SO_ERROR 4
#define SEND_SHUTDOWN 2	     /* sk_shutdown: no more sending (include/net/sock.h) */
#define SOCK_BINDPORT_LOCK 8 /* sk_userlocks: bind() chose the port (include/net/sock.h) */

union addr16 {
	__u8 b[16];
	__u32 w[4];
	__u64 d[2];
};

static __always_inline __u16 sk_family(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_family);
}

/* sk_protocol is a bitfield before 5.6 and a u16 after: the probed bitfield read handles both. */
static __always_inline __u16 sk_protocol(const struct sock *sk)
{
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol);
}

static __always_inline __u8 sk_state(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_state);
}

/* The port was chosen by bind() rather than by the kernel: the socket serves that port. A TCP
 * socket accepted from a listener inherits the listener's locks. Bitfield before 5.15. */
static __always_inline bool sk_port_bound(const struct sock *sk)
{
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_userlocks) & SOCK_BINDPORT_LOCK;
}

static __always_inline __u32 sk_netns(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

/* IPv4 addresses are stored v4-mapped, ::ffff:a.b.c.d, like an IPv6 socket sees them. */
static __always_inline void addr_v4mapped(union addr16 *a, __u32 be_addr)
{
	a->w[0] = 0;
	a->w[1] = 0;
	a->w[2] = bpf_htonl(0x0000ffff);
	a->w[3] = be_addr;
}

/* Fills every field of t from the socket but pid and the transport bit of metadata. */
static __always_inline void tuple_from_sock(struct conn_tuple *t, const struct sock *sk, __u16 family)
{
	union addr16 s, d;

	if (family == AF_INET) {
		addr_v4mapped(&s, BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr));
		addr_v4mapped(&d, BPF_CORE_READ(sk, __sk_common.skc_daddr));
		t->metadata = CONN_V4;
	} else {
		BPF_CORE_READ_INTO(&s.b, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&d.b, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
		t->metadata = CONN_V6;
	}
	t->saddr_h = s.d[0];
	t->saddr_l = s.d[1];
	t->daddr_h = d.d[0];
	t->daddr_l = d.d[1];
	t->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	t->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	t->netns = sk_netns(sk);
}

/* Data segments so far; exact counts of payload-carrying segments, as `ss -tin` shows them. */
static __always_inline __u32 tcp_data_segs_out(const struct sock *sk)
{
	return BPF_CORE_READ((const struct tcp_sock *)sk, data_segs_out);
}

static __always_inline __u32 tcp_data_segs_in(const struct sock *sk)
{
	return BPF_CORE_READ((const struct tcp_sock *)sk, data_segs_in);
}

/* Set from Go before load: 1 when tracing programs (tp_btf, fentry/fexit) may call
 * bpf_get_socket_cookie on a struct sock (5.12+); Go finds out by loading a probe program. */
volatile const __u8 cookie_helper = 0;

/* The socket table is keyed by the socket's address: every program type can get it (a cookie
 * cannot be obtained from kprobes, nor from tracing programs before 5.12). It is valid from the
 * socket's creation to its destruction, where the entry is deleted. */
static __always_inline __u64 sock_id(const struct sock *sk)
{
	return (__u64)sk;
}

/* The socket cookie, as `ss -e` shows it (sk:). Tracing programs ask the kernel, which assigns
 * one if the socket has none yet; raw_tp and kprobe programs may only read it, and a socket no
 * one has asked about has none: then a synthetic id, the first-seen time with the top bit set,
 * which is unique per socket all the same. `tracing` is a compile-time constant of the caller. */
static __always_inline __u64 sock_cookie(const struct sock *sk, const bool tracing, __u64 start)
{
	__u64 c;
	if (tracing && cookie_helper)
		c = bpf_get_socket_cookie((void *)sk);
	else
		c = BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
	return c ? c : (start | (1ULL << 63));
}

static __always_inline __u32 current_tgid(void)
{
	return bpf_get_current_pid_tgid() >> 32;
}

#endif
