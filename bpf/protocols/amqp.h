/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* AMQP 0-9-1: the client's protocol header "AMQP\0\0\x09\x01" (seen as ingress by the server), or
 * the server's first frame, a Connection.Start method on channel 0. */
#ifndef EBPFNET_PROTOCOLS_AMQP_H
#define EBPFNET_PROTOCOLS_AMQP_H

#include "head.h"

#define AMQP_FRAME_METHOD 1
#define AMQP_FRAME_HEADER 7	 /* type, channel, size */
#define AMQP_MAX_START (1 << 17) /* Connection.Start: its server-properties table is small */

static __always_inline int amqp_header(struct protocol_stack *st, const struct head *h)
{
	int r = head_lit(h, 0, "AMQP\0\0\x09\x01", 8);

	if (r == CL_MATCH)
		set_app(st, APP_AMQP);
	return r;
}

/* type 1, channel 0, size, class 10 (connection), method 10 (start), version 0-9. */
static __always_inline int amqp_connection_start(struct protocol_stack *st, const struct head *h)
{
	int r = head_lit(h, 0, "\x01\0\0", 3);
	__u32 size;

	if (r != CL_MATCH)
		return r;
	r = head_lit(h, AMQP_FRAME_HEADER, "\0\x0a\0\x0a\0\x09", 6);
	if (r != CL_MATCH)
		return r;
	size = be32(&h->b[3]);
	if (size < 4 + 2 + 4 || size >= AMQP_MAX_START)
		return CL_NO;
	set_app(st, APP_AMQP);
	return CL_MATCH;
}

#endif
