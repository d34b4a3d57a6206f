/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What every classifier shares: its verdict, and the first bytes of the packet read once (classify.h
 * loads them) so most classifiers reject a packet without a helper call. */
#ifndef EBPFNET_PROTOCOLS_HEAD_H
#define EBPFNET_PROTOCOLS_HEAD_H

#include "payload.h"

/* Bits a classifier returns. CL_SHORT: it needed bytes the packet does not hold, so it could not
 * decide (with CL_MATCH: it matched but could not learn everything, e.g. a version). */
enum cl_result {
	CL_NO = 0,
	CL_MATCH = 1 << 0,
	CL_SHORT = 1 << 1,
};

#define CLASSIFY_HEAD 16 /* bytes of struct head (head_load spells out the reads of a shorter packet) */

struct head {
	__u8 b[CLASSIFY_HEAD]; /* the first n bytes of the payload, the rest zero */
	__u32 n;
};

/* Reads the first bytes of p into h: all CLASSIFY_HEAD in one call, or byte by byte from a short
 * packet (constant offsets: kernels before 5.12 refuse a helper writing at a variable stack offset). */
static __always_inline void head_load(struct head *h, const struct payload *p)
{
	__builtin_memset(h, 0, sizeof(*h));
	if (payload_read(p, 0, h->b, CLASSIFY_HEAD)) {
		h->n = CLASSIFY_HEAD;
		return;
	}
	/* spelt out: clang does not unroll a loop that leaves early */
#define HEAD_BYTE(i)                                                                                                   \
	if (!payload_read(p, i, &h->b[i], 1))                                                                          \
		return;                                                                                                \
	h->n = i + 1;
	HEAD_BYTE(0)
	HEAD_BYTE(1)
	HEAD_BYTE(2)
	HEAD_BYTE(3)
	HEAD_BYTE(4)
	HEAD_BYTE(5)
	HEAD_BYTE(6)
	HEAD_BYTE(7)
	HEAD_BYTE(8)
	HEAD_BYTE(9)
	HEAD_BYTE(10)
	HEAD_BYTE(11)
	HEAD_BYTE(12)
	HEAD_BYTE(13)
	HEAD_BYTE(14)
#undef HEAD_BYTE
}

/* Compares the literal lit (len bytes, constant) with the head at off: CL_MATCH, CL_NO at the first
 * byte that differs, CL_SHORT when the packet ends first. */
static __always_inline int head_lit(const struct head *h, __u32 off, const char *lit, __u32 len)
{
#pragma unroll
	for (__u32 i = 0; i < len; i++) {
		if (off + i >= h->n)
			return CL_SHORT;
		if (h->b[off + i] != (__u8)lit[i])
			return CL_NO;
	}
	return CL_MATCH;
}

/* Byte i of the head (i constant), or -1 when the packet is shorter. */
static __always_inline int head_byte(const struct head *h, __u32 i)
{
	return i < h->n ? h->b[i] : -1;
}

static __always_inline __u32 be16(const __u8 *b)
{
	return ((__u32)b[0] << 8) | b[1];
}

static __always_inline __u32 be32(const __u8 *b)
{
	return ((__u32)b[0] << 24) | ((__u32)b[1] << 16) | ((__u32)b[2] << 8) | b[3];
}

static __always_inline __u32 le32(const __u8 *b)
{
	return ((__u32)b[3] << 24) | ((__u32)b[2] << 16) | ((__u32)b[1] << 8) | b[0];
}

/* The first n bytes (n <= 8, constant) at b, or of a string literal, as one number in memory order:
 * comparing these branch-free keeps the verifier on one path (a byte loop compiles to a flag per
 * byte, and the verifier then follows every combination of them). */
static __always_inline __u64 load_n(const void *b, __u32 n)
{
	__u64 v = 0;
	__builtin_memcpy(&v, b, n);
	return v;
}
#define LIT_N(s, n) load_n(s, n)

static __always_inline bool is_digit(__u8 c)
{
	return c >= '0' && c <= '9';
}

static __always_inline bool is_print(__u8 c)
{
	return c >= 0x20 && c < 0x7f;
}

_Static_assert((CLASSIFY_MAX_BYTES & (CLASSIFY_MAX_BYTES - 1)) == 0, "off_bound masks with CLASSIFY_MAX_BYTES - 1");

/* An offset below CLASSIFY_MAX_BYTES (callers check), made opaque to the compiler and masked, so
 * the verifier sees the same range [0, CLASSIFY_MAX_BYTES) whichever path led to it: the states of a
 * walk's iterations then compare equal and are pruned instead of multiplying per path. */
static __always_inline __u32 off_bound(__u32 off)
{
	asm volatile("" : "+r"(off));
	return off & (CLASSIFY_MAX_BYTES - 1);
}

/* The heavy walks (HPACK fields, TLS extensions, the request line) are global functions: the
 * verifier checks a global function once, on its own, with unknown arguments (kernel 5.6+), instead
 * of once per path of every caller, which keeps classify_packet within the verifier's limits. A
 * global function takes only the context and scalars, so the payload is passed as its fields. */
#define CLASSIFY_GLOBAL __attribute__((noinline))
#define PAYLOAD_ARGS(p) (p)->skb, (p)->off, (p)->len

/* A layer is set once: the first value given sticks (callers check before deciding anything else). */
static __always_inline void set_app(struct protocol_stack *st, __u8 app)
{
	if (!st->application)
		st->application = app;
}

#endif
