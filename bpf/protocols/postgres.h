/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* PostgreSQL: the client's first message (the server sees it as ingress): SSLRequest,
 * GSSENCRequest or CancelRequest (int32 length, int32 code), or StartupMessage (int32 length, int32
 * protocol 3.x, then "name\0value\0" pairs). Whichever comes first decides: psql's SSLRequest or
 * GSSENCRequest, answered by one byte, is followed by the StartupMessage (or TLS, whose ClientHello
 * is then not at the start of a stream and so not examined: encryption stays unknown). */
#ifndef EBPFNET_PROTOCOLS_POSTGRES_H
#define EBPFNET_PROTOCOLS_POSTGRES_H

#include "head.h"

#define PG_SSL_REQUEST 80877103
#define PG_GSSENC_REQUEST 80877104
#define PG_CANCEL_REQUEST 80877102
#define PG_PROTOCOL_3 0x00030000 /* 3.0; 3.2 (PostgreSQL 18) is 0x00030002 */
#define PG_PROTOCOL_MINOR_MAX 2
#define PG_MAX_STARTUP 10000	       /* the server refuses larger startup packets */
#define PG_STARTUP_MIN (8 + 5 + 2 + 1) /* header, "user\0", a value and NUL, the final NUL */

static __always_inline int postgres_startup(struct protocol_stack *st, const struct head *h)
{
	__u32 len, code;
	int c;

	if (h->n >= 1 && h->b[0] != 0)
		return CL_NO;
	if (h->n < 8)
		return CL_SHORT;
	len = be32(h->b);
	code = be32(&h->b[4]);
	if ((len == 8 && (code == PG_SSL_REQUEST || code == PG_GSSENC_REQUEST)) ||
	    (len == 16 && code == PG_CANCEL_REQUEST)) {
		set_app(st, APP_POSTGRES);
		return CL_MATCH;
	}
	if ((code & 0xffff0000) != PG_PROTOCOL_3 || (code & 0xffff) > PG_PROTOCOL_MINOR_MAX || len < PG_STARTUP_MIN ||
	    len > PG_MAX_STARTUP)
		return CL_NO;
	/* the first parameter name: lower-case letters ("user", "database", "_pq_." options) */
	c = head_byte(h, 8);
	if (c < 0)
		return CL_SHORT;
	if (!((c >= 'a' && c <= 'z') || c == '_'))
		return CL_NO;
	set_app(st, APP_POSTGRES);
	return CL_MATCH;
}

#endif
