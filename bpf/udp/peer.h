/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The peer of an unconnected UDP socket, from the cgroup sock_addr hooks.
 *
 * Why these hooks: sock_send_length / sock_recv_length give the socket and the byte count but
 * not the address a sendto() went to or a recvfrom() came from, and an unconnected socket has
 * no peer of its own. cgroup/sendmsg{4,6} run inside udp_sendmsg with the destination and
 * cgroup/recvmsg{4,6} inside udp_recvmsg with the source, on the calling thread, just before the
 * length tracepoint fires on the same thread. Attached to the cgroup2 root they see every
 * process. They run only for datagrams that carry an address, so connected sockets cost
 * nothing here. */
#ifndef EBPFNET_UDP_PEER_H
#define EBPFNET_UDP_PEER_H

#include "../common/sock.h"
#include "../maps/udp_pending.h"

static __always_inline void udp_peer_remember(struct bpf_sock_addr *ctx, bool v6)
{
	if (ctx->protocol != IPPROTO_UDP)
		return;
	union addr16 a;
	if (v6) {
		a.w[0] = ctx->user_ip6[0];
		a.w[1] = ctx->user_ip6[1];
		a.w[2] = ctx->user_ip6[2];
		a.w[3] = ctx->user_ip6[3];
	} else {
		addr_v4mapped(&a, ctx->user_ip4);
	}
	struct udp_peer p = {};
	p.addr_h = a.d[0];
	p.addr_l = a.d[1];
	p.port = bpf_ntohs(ctx->user_port);
	__u64 tid = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&udp_pending, &tid, &p, BPF_ANY);
}

#endif
