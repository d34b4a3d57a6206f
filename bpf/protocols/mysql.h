/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* MySQL and MariaDB: the server's greeting (Initial Handshake, protocol 10), the first bytes of the
 * connection, seen as ingress by the client: 3-byte length, sequence 0, protocol 10, the server
 * version as a NUL-terminated string starting with a digit ("8.0.36", "5.5.5-10.11.6-MariaDB"),
 * thread id, 8 bytes of auth data, a NUL filler, capability flags with CLIENT_PROTOCOL_41. */
#ifndef EBPFNET_PROTOCOLS_MYSQL_H
#define EBPFNET_PROTOCOLS_MYSQL_H

#include "head.h"

#define MYSQL_VERSION_AT 5
#define MYSQL_VERSION_MAX 48 /* bytes of the version string searched for its NUL */
#define MYSQL_MIN_GREETING 44
#define MYSQL_CLIENT_PROTOCOL_41 0x0200

static __always_inline int mysql_greeting(struct protocol_stack *st, const struct payload *p, const struct head *h)
{
	__u8 v[MYSQL_VERSION_MAX], t[15];
	__u32 len, nul = 0;
	int c;

	if (h->n >= 3 && h->b[2] != 0)
		return CL_NO;
	if (h->n >= 4 && h->b[3] != 0)
		return CL_NO;
	if (h->n >= 5 && h->b[4] != 10)
		return CL_NO;
	c = head_byte(h, MYSQL_VERSION_AT);
	if (c < 0)
		return CL_SHORT;
	if (!is_digit(c))
		return CL_NO;
	len = h->b[0] | ((__u32)h->b[1] << 8);
	if (len < MYSQL_MIN_GREETING)
		return CL_NO;
	/* the version string within the first MYSQL_VERSION_MAX bytes, printable up to its NUL */
	if (!payload_read(p, MYSQL_VERSION_AT, v, sizeof(v)))
		return CL_SHORT;
	int bad = 0;
#pragma unroll
	for (__u32 i = 1; i < MYSQL_VERSION_MAX; i++) {
		if (!nul && v[i] == 0)
			nul = i;
		else if (!nul && !is_print(v[i]))
			bad = 1;
	}
	if (bad)
		return CL_NO;
	if (!nul)
		return CL_NO;
	/* thread id (4), auth data (8), filler 0, capability flags (lower 2, little endian) */
	if (!payload_read(p, MYSQL_VERSION_AT + nul + 1, t, sizeof(t)))
		return CL_SHORT;
	if (t[12] != 0 || !((t[13] | ((__u32)t[14] << 8)) & MYSQL_CLIENT_PROTOCOL_41))
		return CL_NO;
	set_app(st, APP_MYSQL);
	return CL_MATCH;
}

#endif
