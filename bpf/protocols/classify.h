/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* PLACEHOLDER until the classifiers land: the interface the hook (hook.h) calls. */
#ifndef EBPFNET_PROTOCOLS_CLASSIFY_H
#define EBPFNET_PROTOCOLS_CLASSIFY_H

#include "payload.h"

enum classify_result {
	CLASSIFY_SHORT = 1 << 0, /* some classifier needed more bytes than the packet held */
};

/* Classifies one packet's payload of a connection into st (see enum stack_flags). egress: the
 * local end sent it; tcp: the transport; first: it begins its direction's stream (TCP: its first
 * byte is the first payload byte of that direction; UDP: every datagram). Sets STACK_SETTLED when
 * nothing more is to be learnt. Returns enum classify_result bits. */
static __always_inline __u32 classify_packet(struct protocol_stack *st, const struct payload *p, bool egress, bool tcp,
					     bool first)
{
	char b[4];
	if (!first)
		return 0;
	st->flags |= egress ? STACK_SEEN_EGRESS : STACK_SEEN_INGRESS;
	if (!payload_read(p, 0, b, sizeof(b)))
		return CLASSIFY_SHORT;
	if (b[0] == 'G' && b[1] == 'E' && b[2] == 'T' && b[3] == ' ')
		st->application = APP_HTTP;
	if (st->application ||
	    (st->flags & (STACK_SEEN_EGRESS | STACK_SEEN_INGRESS)) == (STACK_SEEN_EGRESS | STACK_SEEN_INGRESS))
		st->flags |= STACK_SETTLED;
	return 0;
}

#endif
