/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Redis (RESP): a request array "*<n>\r\n$<len>\r\n<COMMAND>\r\n" whose first element is a command
 * from a short list, or the inline "PING\r\n" (redis-benchmark's PING_INLINE). Replies are not
 * matched: "+OK\r\n" or ":1\r\n" say too little. */
#ifndef EBPFNET_PROTOCOLS_REDIS_H
#define EBPFNET_PROTOCOLS_REDIS_H

#include "head.h"

#define REDIS_MAX_DIGITS 3 /* array elements up to 999 in a first request */
#define REDIS_CMD_MAX 9	   /* command name bytes we compare */

/* Upper-cases an ASCII letter, other bytes unchanged. */
static __always_inline __u8 redis_upper(__u8 c)
{
	return c >= 'a' && c <= 'z' ? c - 32 : c;
}

/* A known command name of n bytes at the start of c (already upper-cased). */
static __always_inline bool redis_known(const __u8 *c, __u32 n)
{
#define R_IS(lit) (n == sizeof(lit) - 1 && __builtin_memcmp(c, lit, sizeof(lit) - 1) == 0)
	return R_IS("GET") || R_IS("SET") || R_IS("DEL") || R_IS("PING") || R_IS("AUTH") || R_IS("INFO") ||
	       R_IS("MGET") || R_IS("MSET") || R_IS("INCR") || R_IS("HSET") || R_IS("HGET") || R_IS("SCAN") ||
	       R_IS("KEYS") || R_IS("EVAL") || R_IS("LPUSH") || R_IS("RPUSH") || R_IS("HELLO") || R_IS("MULTI") ||
	       R_IS("SELECT") || R_IS("CLIENT") || R_IS("CONFIG") || R_IS("EXISTS") || R_IS("EXPIRE") ||
	       R_IS("LRANGE") || R_IS("COMMAND") || R_IS("PUBLISH") || R_IS("FLUSHALL") || R_IS("SUBSCRIBE");
#undef R_IS
}

/* "*<d digits>\r\n$<1 digit>\r\n<command>\r\n" with d constant, so every head index is: the
 * verifier of kernels before 5.12 refuses variable offsets into the stack. */
static __always_inline int redis_array(struct protocol_stack *st, const struct payload *p, const struct head *h,
				       const __u32 d)
{
	__u8 cmd[REDIS_CMD_MAX + 2];
	int c, r;
	__u32 len, off = d + 7;

#pragma unroll
	for (__u32 i = 1; i <= d; i++) {
		c = head_byte(h, i);
		if (c < 0)
			return CL_SHORT;
		if (!is_digit(c) || (i == 1 && c == '0'))
			return CL_NO;
	}
	r = head_lit(h, d + 1, "\r\n$", 3);
	if (r != CL_MATCH)
		return r;
	c = head_byte(h, d + 4);
	if (c < 0)
		return CL_SHORT;
	if (c < '3' || c > '9')
		return CL_NO;
	len = c - '0';
	r = head_lit(h, d + 5, "\r\n", 2);
	if (r != CL_MATCH)
		return r;
	/* the command and its CRLF, read as one fixed size per length (constant offsets into cmd) */
	__builtin_memset(cmd, 0, sizeof(cmd));
	switch (len) {
#define R_READ(k)                                                                                                      \
	case k:                                                                                                        \
		if (!payload_read(p, off, cmd, k + 2))                                                                 \
			return CL_SHORT;                                                                               \
		if (cmd[k] != '\r' || cmd[k + 1] != '\n')                                                              \
			return CL_NO;                                                                                  \
		break;
		R_READ(3)
		R_READ(4)
		R_READ(5)
		R_READ(6)
		R_READ(7)
		R_READ(8)
		R_READ(9)
#undef R_READ
	}
#pragma unroll
	for (__u32 i = 0; i < REDIS_CMD_MAX; i++)
		cmd[i] = redis_upper(cmd[i]);
	if (!redis_known(cmd, len))
		return CL_NO;
	set_app(st, APP_REDIS);
	return CL_MATCH;
}

static __always_inline int redis_request(struct protocol_stack *st, const struct payload *p, const struct head *h)
{
	int r = head_lit(h, 0, "PING\r\n", 6);

	if (r == CL_MATCH) {
		set_app(st, APP_REDIS);
		return CL_MATCH;
	}
	if (head_byte(h, 0) != '*')
		return r;
	/* the array's element count has 1 to REDIS_MAX_DIGITS digits: its CR says how many */
	if (head_byte(h, 2) == '\r')
		return redis_array(st, p, h, 1);
	if (head_byte(h, 3) == '\r')
		return redis_array(st, p, h, 2);
	if (head_byte(h, 4) == '\r')
		return redis_array(st, p, h, 3);
	return h->n < 5 ? CL_SHORT : CL_NO;
}

#endif
