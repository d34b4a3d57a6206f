/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Operations on the connection table shared by the TCP and UDP handlers. */
#ifndef EBPFNET_COMMON_CONN_H
#define EBPFNET_COMMON_CONN_H

#include "types.h"
#include "../maps/conns.h"
#include "../maps/socks.h"
#include "../maps/closed.h"
#include "../maps/telemetry.h"

/* A fresh table value for a socket. */
static __always_inline void conn_init(struct conn_value *v, const struct sock_info *si, __u64 id, __u64 now)
{
	__builtin_memset(v, 0, sizeof(*v));
	v->stats.cookie = si->cookie;
	v->stats.sock_id = id;
	v->stats.start = si->start;
	v->stats.timestamp = now;
	v->stats.direction = si->direction;
	v->stats.cgroup_id = si->cgroup_id;
	__builtin_memcpy(v->stats.comm, si->comm, sizeof(v->stats.comm));
}

/* Records who owns the socket, from the task running now: its name and its cgroup (v2) id. Called
 * where the owner runs in its own context (connect, the first I/O of an accepted socket, UDP I/O),
 * so the container a process ran in is known even when it has exited by the next poll. The cgroup id
 * is the inode of the task's cgroup2 directory (bpf_get_current_cgroup_id, 4.18+; 0 on a cgroup v1
 * only host), which user space resolves to a container (internal/cgroups). */
static __always_inline void take_owner(struct sock_info *si)
{
	bpf_get_current_comm(si->comm, sizeof(si->comm));
	si->cgroup_id = bpf_get_current_cgroup_id();
}

/* Returns the entry for t, inserting a fresh one for the socket when there is none. NULL means
 * the table is full (counted). Two CPUs may race to insert: the loser finds the winner's entry
 * on the second lookup. */
static __always_inline struct conn_value *conn_get_or_insert(const struct conn_tuple *t, const struct sock_info *si,
							     __u64 id, __u64 now)
{
	struct conn_value *v = bpf_map_lookup_elem(&conns, t);
	if (v)
		return v;

	struct conn_value init;
	conn_init(&init, si, id, now);
	long err = bpf_map_update_elem(&conns, t, &init, BPF_NOEXIST);
	v = bpf_map_lookup_elem(&conns, t);
	if (!v && err)
		count(TELEMETRY_CONN_MAP_FULL);
	return v;
}

/* Pushes a final record into the ring; false when the ring is full. An entry still in the
 * table is deleted before the record is submitted, so a poll that drains the ring and then
 * walks the table never sees the connection both open and closed. */
static __always_inline bool conn_push_closed(const struct conn_tuple *t, const struct conn_value *final, bool in_table)
{
	struct conn_record *rec = bpf_ringbuf_reserve(&closed, sizeof(*rec), 0);
	if (!rec)
		return false;
	rec->kind = RECORD_CONN_CLOSED;
	rec->_pad = 0;
	rec->tuple = *t;
	rec->value = *final;
	if (in_table)
		bpf_map_delete_elem(&conns, t);
	bpf_ringbuf_submit(rec, ring_submit_flags());
	return true;
}

/* Hands a final record to user space: through the ring when it has room, else by leaving the
 * entry in the table flagged CONN_CLOSED for the next poll to collect. Only when both fail is
 * the record lost, and then it is counted. */
static __always_inline void conn_emit_closed(const struct conn_tuple *t, struct conn_value *final, bool in_table)
{
	if (conn_push_closed(t, final, in_table))
		return;
	final->stats.flags |= CONN_CLOSED;
	if (bpf_map_update_elem(&conns, t, final, BPF_ANY) == 0)
		count(TELEMETRY_RING_RESERVE_FAILED);
	else
		count(TELEMETRY_CLOSED_LOST);
}

static __always_inline void stats_add(struct conn_stats *s, bool send, __u64 bytes, __u64 now)
{
	/* BPF has no byte-wide atomics. A flag lost to a racing write on another CPU is set again
	 * by the next payload in that direction; the byte counters are atomic. */
	__u8 flag = send ? CONN_L_INIT : CONN_R_INIT;
	if (send)
		__sync_fetch_and_add(&s->sent_bytes, bytes);
	else
		__sync_fetch_and_add(&s->recv_bytes, bytes);
	if (!(s->flags & flag))
		s->flags |= flag;
	s->timestamp = now;
}

#endif
