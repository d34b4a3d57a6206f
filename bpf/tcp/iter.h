/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The poll's read of the connection table: a BPF iterator over conns (iter/bpf_map_elem, 5.9+)
 * that writes every entry to user space, open TCP connections with their counts read from the
 * kernel there and then (counters.h). One pass, every network namespace (the table holds them
 * all), no write to the table: a count in user space is never older than its poll.
 *
 * Why not iter/tcp or sock_diag: both see only the network namespace of whoever opens them, so
 * covering every namespace would take an open per namespace from a thread moved into it; the
 * table already names the sockets we track. Measured costs are in docs/DATAPATH-MEASUREMENTS.md. */
#ifndef EBPFNET_TCP_ITER_H
#define EBPFNET_TCP_ITER_H

#include "counters.h"
#include "health.h"

/* Fresh counts, RTT and retransmits (health.h), and the protocol stack once settled, for an open TCP entry. The socket is the one the entry names only while socks
 * holds it under the same cookie: the state handler deletes it at destroy, before the socket's
 * memory can go to another socket. An entry whose socket is gone keeps its last counts; its
 * final record is in the ring for the next poll. */
static __always_inline void tcp_refresh(struct conn_value *v)
{
	__u64 id = v->stats.sock_id;
	const struct sock_info *si = bpf_map_lookup_elem(&socks, &id);
	if (!si || si->tracked != SOCK_TRACKED || si->cookie != v->stats.cookie)
		return;
	const struct sock *sk = (const struct sock *)id;
	tcp_counts(&v->stats, sk, si);
	if (sample_tcp_health)
		tcp_health(&v->tcp, sk, si);
	v->tcp.state_transitions = si->transitions;
	v->stats.protocol_stack = si->stack;
	v->stats.timestamp = bpf_ktime_get_ns();
}

static __always_inline int conns_iter(struct bpf_iter__bpf_map_elem *ctx)
{
	const struct conn_tuple *t = ctx->key;
	const struct conn_value *v = ctx->value;
	if (!t || !v)
		return 0;
	struct conn_record rec = {.kind = RECORD_CONN_OPEN};
	rec.tuple = *t;
	rec.value = *v;
	if ((t->metadata & CONN_TCP) && !(v->stats.flags & CONN_CLOSED))
		tcp_refresh(&rec.value);
	bpf_seq_write(ctx->meta->seq, &rec, sizeof(rec));
	return 0;
}

/* The same refresh where the kernel refuses BPF iterators (some hardened kernels refuse every
 * BPF_PROG_TYPE_TRACING program but tp_btf, iterators included): a raw_tp program, never attached,
 * that the poll runs through BPF_PROG_TEST_RUN (raw_tp test runs 5.10+, bpf_for_each_map_elem
 * 5.13+). It writes fresh counts into each open TCP entry in place, then the poll reads the table
 * with batch lookups; nothing else writes a TCP entry's counts (the kernel keeps them, counters.h),
 * so the write races with nothing but a close, which replaces the entry whole. One run walks the
 * whole table: at 100k entries that is milliseconds of kernel time in one go. */
static long conns_refresh_elem(struct bpf_map *map, const struct conn_tuple *t, struct conn_value *v, void *ctx)
{
	if ((t->metadata & CONN_TCP) && !(v->stats.flags & CONN_CLOSED))
		tcp_refresh(v);
	return 0;
}

static __always_inline int conns_refresh(void)
{
	bpf_for_each_map_elem(&conns, conns_refresh_elem, NULL, 0);
	return 0;
}

#endif
