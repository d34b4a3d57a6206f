/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* TCP health from the kernel's own per-socket state (struct tcp_sock), read where the counts are
 * (counters.h): at each poll for open connections (iter.h) and at close (state.h).
 *
 * Why these fields: they are what `ss -ti` prints, so a user can check any number against the
 * kernel. rtt and rtt_var are RFC 6298's SRTT and RTTVAR as tcp_info reports them (ss's rtt:a/b):
 * srtt_us holds 8 x SRTT, mdev_us 4 x RTTVAR. total_retrans (ss's retrans:x/total) counts every
 * segment retransmitted, SYN or SYN-ACK retransmits of the handshake included; a connect that
 * keeps failing is not a lossy path, so those are kept apart: the count at the end of the
 * handshake (ESTABLISHED) is the handshake's, what comes after it the connection's. */
#ifndef EBPFNET_TCP_HEALTH_H
#define EBPFNET_TCP_HEALTH_H

#include "../common/sock.h"

/* Set from Go before load: 0 when no metric needs RTT or retransmits of open connections, so the
 * poll's iterator skips reading them (close records always carry them). */
volatile const __u8 sample_tcp_health = 1;

#define TCP_HANDSHAKE_STATES ((1 << TCP_SYN_SENT) | (1 << TCP_SYN_RECV))

static __always_inline __u8 sat_u8(__u32 v)
{
	return v > 255 ? 255 : v;
}

/* Still in its handshake: a connect or an accept that has not reached ESTABLISHED. */
static __always_inline bool tcp_connecting(const struct sock_info *si)
{
	return (si->transitions & TCP_HANDSHAKE_STATES) && !(si->transitions & (1 << TCP_ESTABLISHED));
}

/* Why the connection ended: the kernel sets sk_err before the step to CLOSE (reset, refused,
 * timeout, ICMP unreachable); the application's next call reads and clears it. A connect can
 * also learn its error and stay in SYN_SENT: an ICMP unreachable that comes while connect() holds
 * the socket (the answer to a SYN on a local path, the kernel's LockDroppedIcmps) is kept in
 * sk_err_soft, a non-blocking connect's owner reads it with getsockopt(SO_ERROR), which clears
 * it, and closes a socket with no error left. So while connecting, the error that read returned
 * (handle_getsockopt, kept in failure_reason), else sk_err_soft, is the reason; 0 for all three:
 * the application gave up with no error from the network. After ESTABLISHED, sk_err_soft is
 * only a past hint (cleared by the next ACK of data) and is not read. Kernel errnos are below
 * 256. */
static __always_inline __u8 tcp_error(const struct sock *sk, const struct sock_info *si)
{
	int err = BPF_CORE_READ(sk, sk_err);
	if (err == 0 && tcp_connecting(si)) {
		err = si->failure_reason;
		if (err == 0)
			err = BPF_CORE_READ(sk, sk_err_soft);
	}
	return err < 0 ? 255 : sat_u8(err);
}

/* The handshake is over: from here on a retransmit is the connection's. Called at every report of
 * the step (the state tracepoint, sock_ops), the first one counts. */
static __always_inline void tcp_handshake_done(struct sock_info *si, const struct sock *sk)
{
	if (si->transitions & (1 << TCP_ESTABLISHED))
		return;
	__u32 total = BPF_CORE_READ((const struct tcp_sock *)sk, total_retrans);
	si->retrans_base = total;
	si->syn_retrans = sat_u8(total);
	si->transitions |= 1 << TCP_ESTABLISHED;
}

/* RTT, its variation and retransmits of the socket now. A socket that is still in its handshake
 * (or ended in it: refused, timed out, canceled) has retransmitted only SYNs; a socket adopted
 * after its handshake (tcp_baseline) counts from its adoption, like its bytes. */
static __always_inline void tcp_health(struct tcp_stats *h, const struct sock *sk, const struct sock_info *si)
{
	const struct tcp_sock *tp = (const struct tcp_sock *)sk;
	__u32 total = BPF_CORE_READ(tp, total_retrans);
	h->rtt = BPF_CORE_READ(tp, srtt_us) >> 3;
	h->rtt_var = BPF_CORE_READ(tp, mdev_us) >> 2;
	if ((si->transitions & (1 << TCP_ESTABLISHED)) || !(si->transitions & TCP_HANDSHAKE_STATES)) {
		h->syn_retransmits = si->syn_retrans;
		h->retransmits = total > si->retrans_base ? total - si->retrans_base : 0;
	} else {
		h->syn_retransmits = sat_u8(total);
		h->retransmits = 0;
	}
}

#endif
