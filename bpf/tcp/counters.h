/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* TCP bytes and segments from the kernel's own per-socket counters (struct tcp_sock).
 *
 * Why: the kernel keeps them for every socket whatever our programs saw, so a send or receive
 * event that the kernel skipped (recursion guard) or that a hook missed can delay an owner, never
 * change a count. They are read where a connection ends (tcp_destroy_sock) and, for open ones,
 * at each poll by the conns iterator (iter.h). What they mean, measured on 5.10-7.3 alike
 * (docs/DATAPATH-MEASUREMENTS.md):
 *   bytes_sent      payload transmitted, retransmissions counted again (bytes_retrans), no SYN/FIN
 *   bytes_received  payload received in order, plus one for the peer's FIN
 *   data_segs_*     segments that carried payload
 * So a connection reports payload carried once each way: sent = bytes_sent - bytes_retrans,
 * received = bytes_received - (1 if the peer's FIN arrived). */
#ifndef EBPFNET_TCP_COUNTERS_H
#define EBPFNET_TCP_COUNTERS_H

#include "../common/sock.h"

/* The peer's FIN was processed: tcp_fin sets SOCK_DONE, a reset (tcp_done) does not. */
static __always_inline __u32 tcp_fin_received(const struct sock *sk)
{
	unsigned long flags = BPF_CORE_READ(sk, __sk_common.skc_flags);
	return (flags >> bpf_core_enum_value(enum sock_flags, SOCK_DONE)) & 1;
}

/* Payload bytes the connection carried each way so far, from its first byte. */
static __always_inline void tcp_payload(const struct sock *sk, __u64 *sent, __u64 *recv)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	*sent = BPF_CORE_READ(tp, bytes_sent) - BPF_CORE_READ(tp, bytes_retrans);
	*recv = BPF_CORE_READ(tp, bytes_received) - tcp_fin_received(sk);
}

/* Baselines for a socket first seen at an I/O call (opened before the tracer started): its counts
 * begin where the application's view of the stream stood before that call. What the application
 * wrote before it and the kernel has not sent yet is excluded, and what arrived before it and the
 * application has not read yet is included: those bytes cross the application boundary later,
 * each once. `ret` is the call's byte count, `send` its direction. */
static __always_inline void tcp_baseline(struct sock_info *si, const struct sock *sk, __u64 ret, bool send)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u64 sent, recv;
	tcp_payload(sk, &sent, &recv);
	/* Sequence space between the application and the wire, less a FIN that occupies it. */
	__u32 unsent = BPF_CORE_READ(tp, write_seq) - BPF_CORE_READ(tp, snd_nxt);
	if (unsent && (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_shutdown) & SEND_SHUTDOWN))
		unsent--;
	__u32 unread = BPF_CORE_READ(tp, rcv_nxt) - BPF_CORE_READ(tp, copied_seq);
	if (unread && tcp_fin_received(sk))
		unread--; /* the FIN is past copied_seq until the application reads the end */
	si->sent_base = sent + unsent - (send ? ret : 0);
	si->recv_base = recv - unread - (send ? 0 : ret);
	si->segs_out_base = tcp_data_segs_out(sk);
	si->segs_in_base = tcp_data_segs_in(sk);
	si->retrans_base = BPF_CORE_READ(tp, total_retrans); /* its retransmits count from here too */
}

/* Writes the socket's counts since its baselines into s. A baseline can stand ahead of the sent
 * counter while bytes written before it are still queued: the count is 0 until they leave. */
static __always_inline void tcp_counts(struct conn_stats *s, const struct sock *sk, const struct sock_info *si)
{
	__u64 sent, recv;
	tcp_payload(sk, &sent, &recv);
	s->sent_bytes = sent > si->sent_base ? sent - si->sent_base : 0;
	s->recv_bytes = recv > si->recv_base ? recv - si->recv_base : 0;
	s->sent_packets = (__u32)(tcp_data_segs_out(sk) - si->segs_out_base);
	s->recv_packets = (__u32)(tcp_data_segs_in(sk) - si->segs_in_base);
	s->flags &= ~CONN_ASSURED;
	if (s->sent_bytes)
		s->flags |= CONN_L_INIT;
	if (s->recv_bytes)
		s->flags |= CONN_R_INIT;
}

#endif
