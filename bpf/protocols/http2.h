/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* HTTP/2 in clear text (h2c with prior knowledge): the client connection preface, then frames.
 * After the preface (STACK_H2_WAIT) the frames of the following packets are walked for the first
 * HEADERS frame; its HPACK block says whether the content type is application/grpc (api gRPC).
 * Requests and responses both carry content-type, so either end decides from either direction. */
#ifndef EBPFNET_PROTOCOLS_HTTP2_H
#define EBPFNET_PROTOCOLS_HTTP2_H

#include "head.h"

#define H2_PREFACE_LEN 24
#define H2_FRAME_HEADER 9
#define H2_MAX_FRAMES 8 /* frames walked per packet */
/* header fields walked per HEADERS frame: grpc-go sends content-type fifth in a request (after
 * :method, :scheme, :path, :authority), second in a response */
#define H2_MAX_FIELDS 16
#define H2_FRAME_TYPE_MAX 9 /* CONTINUATION; larger types are extensions we do not expect first */
#define H2_HEADERS 1
#define H2_FLAG_PADDED 0x8
#define H2_FLAG_PRIORITY 0x20
#define HPACK_CONTENT_TYPE 31 /* static table index of content-type (RFC 7541 Appendix A) */

/* "application/grpc": 16 bytes as a literal, 11 whole bytes (88 bits, RFC 7541 Appendix B codes of
 * its characters) Huffman-coded, as grpc-go sends it. */
#define GRPC_CT_LEN 16
#define GRPC_CT_HUFF_LEN 11

/* Matches the 24-byte client connection preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n". */
static __always_inline int http2_preface(const struct payload *p, const struct head *h)
{
	__u8 rest[H2_PREFACE_LEN - CLASSIFY_HEAD];
	int r = head_lit(h, 0, "PRI * HTTP/2.0\r\n", CLASSIFY_HEAD);

	if (r != CL_MATCH)
		return r;
	if (!payload_read(p, CLASSIFY_HEAD, rest, sizeof(rest)))
		return CL_SHORT;
	if (load_n(rest, 8) != LIT_N("\r\nSM\r\n\r\n", 8))
		return CL_NO;
	return CL_MATCH;
}

/* An HPACK integer whose prefix (mask bits of first) did not fit: reads continuation bytes at *off
 * (two at most: values up to 2^14 + mask), advancing *off. false when unreadable or longer. */
static __always_inline bool hpack_int(const struct payload *p, __u32 *off, __u8 first, __u8 mask, __u32 *val)
{
	__u8 c;
	__u32 o = *off, v = first & mask;

	if (v < mask) {
		*val = v;
		return true;
	}
	if (!payload_read(p, o, &c, 1))
		return false;
	o += 1;
	v += c & 0x7f;
	if (c & 0x80) {
		if (!payload_read(p, o, &c, 1))
			return false;
		o += 1;
		if (c & 0x80)
			return false;
		v += (__u32)c << 7;
	}
	if (o >= CLASSIFY_MAX_BYTES)
		return false;
	*off = off_bound(o); /* the paths through here leave one verifier state (head.h) */
	*val = v;
	return true;
}

/* The value of a content-type field at off (its string length octet): 1 if it is application/grpc
 * (alone or followed by '+' or ';'), 0 if not, -1 when unreadable. */
static __always_inline int hpack_value_is_grpc(const struct payload *p, __u32 off)
{
	/* RFC 7541 Appendix B: a 00011 p 101011 p 101011 l 101000 i 00110 c 00100 a 00011 t 01001 i 00110
	 * o 00111 n 101010 / 011000 g 100110 r 101100 p 101011 c 00100 */
#define GRPC_HUFF "\x1d\x75\xd0\x62\x0d\x26\x3d\x4c\x4d\x65\x64"
	__u8 b, v[GRPC_CT_LEN + 1];
	__u32 len;

	if (!payload_read(p, off, &b, 1))
		return -1;
	off += 1;
	if (!hpack_int(p, &off, b, 0x7f, &len))
		return -1;
	if (b & 0x80) {
		if (len < GRPC_CT_HUFF_LEN)
			return 0;
		/* one more byte when the value goes on: ';' is code 0xfb (8 bits), '+' 0x7fa (11 bits) */
		if (len == GRPC_CT_HUFF_LEN) {
			if (!payload_read(p, off, v, GRPC_CT_HUFF_LEN))
				return -1;
		} else if (len == GRPC_CT_HUFF_LEN + 1) {
			if (!payload_read(p, off, v, GRPC_CT_HUFF_LEN + 1))
				return -1;
			if (v[GRPC_CT_HUFF_LEN] != 0xfb)
				return 0;
		} else {
			if (!payload_read(p, off, v, GRPC_CT_HUFF_LEN + 2))
				return -1;
			if (v[GRPC_CT_HUFF_LEN] != 0xfb &&
			    !(v[GRPC_CT_HUFF_LEN] == 0xff && (v[GRPC_CT_HUFF_LEN + 1] >> 5) == 0x2))
				return 0;
		}
		return ((load_n(v, 8) ^ LIT_N(GRPC_HUFF, 8)) | (load_n(&v[8], 3) ^ LIT_N(&GRPC_HUFF[8], 3))) == 0;
	}
	if (len < GRPC_CT_LEN)
		return 0;
	if (len == GRPC_CT_LEN) {
		if (!payload_read(p, off, v, GRPC_CT_LEN))
			return -1;
	} else {
		if (!payload_read(p, off, v, GRPC_CT_LEN + 1))
			return -1;
		if (v[GRPC_CT_LEN] != '+' && v[GRPC_CT_LEN] != ';')
			return 0;
	}
	return ((load_n(v, 8) ^ LIT_N("applicat", 8)) | (load_n(&v[8], 8) ^ LIT_N("ion/grpc", 8))) == 0;
#undef GRPC_HUFF
}

/* Skips the HPACK string literal at *off (H bit and 7-bit-prefix length, then its bytes); false when
 * the packet ends inside its length. *off may then pass the readable bytes: the caller checks. */
static __always_inline bool hpack_skip_string(const struct payload *p, __u32 *off)
{
	__u8 b;
	__u32 slen;

	if (!payload_read(p, *off, &b, 1))
		return false;
	*off = off_bound(*off + 1);
	if (!hpack_int(p, off, b, 0x7f, &slen))
		return false;
	*off += slen;
	return true;
}

/* Walks the header block [off, end) of the payload (skb, poff, plen): 1 if its content-type is
 * application/grpc, 0 if it is something else or the block has none we can name (a dynamic-table
 * reference, a literal name), -1 when the packet ends before the block does. A global function
 * (head.h CLASSIFY_GLOBAL). */
CLASSIFY_GLOBAL int ebpfnet_hpack_grpc(struct __sk_buff *skb, __u32 poff, __u32 plen, __u32 off, __u32 end)
{
	struct payload q = {.skb = skb, .off = poff, .len = plen};
	const struct payload *p = &q;

	if (!skb || off >= CLASSIFY_MAX_BYTES)
		return -1;
	for (__u32 i = 0; i < H2_MAX_FIELDS; i++) {
		__u8 b;
		__u32 idx;

		if (off >= end)
			return 0;
		if (!payload_read(p, off, &b, 1))
			return -1;
		off = off_bound(off + 1); /* off < CLASSIFY_MAX_BYTES: payload_read checked */
		if (b & 0x80) {		  /* indexed field: name and value from a table */
			if (!hpack_int(p, &off, b, 0x7f, &idx))
				return -1;
			goto next;
		}
		if ((b & 0xe0) == 0x20) { /* dynamic table size update */
			if (!hpack_int(p, &off, b, 0x1f, &idx))
				return -1;
			goto next;
		}
		/* literal field: 6-bit name index (incremental indexing) or 4-bit (without / never indexed) */
		if (!hpack_int(p, &off, b, (b & 0x40) ? 0x3f : 0x0f, &idx))
			return -1;
		if (idx == HPACK_CONTENT_TYPE)
			return hpack_value_is_grpc(p, off);
		if (idx == 0) { /* literal name: skip it */
			if (!hpack_skip_string(p, &off))
				return -1;
			if (off >= CLASSIFY_MAX_BYTES)
				return off >= end ? 0 : -1;
			off = off_bound(off);
		}
		if (!hpack_skip_string(p, &off))
			return -1;
	next:
		/* one verifier state per iteration whatever the field was (head.h off_bound) */
		if (off >= CLASSIFY_MAX_BYTES)
			return off >= end ? 0 : -1;
		off = off_bound(off);
	}
	return 0;
}

/* Walks the frames that begin at off in this packet (off: after the preface, or 0 for a packet of
 * either direction while STACK_H2_WAIT is set; a packet is taken to start at a frame boundary, as
 * HTTP/2 implementations write whole frames). At the first HEADERS frame the wait ends: api gRPC if
 * its content-type says so. CL_MATCH when a HEADERS frame was decided, CL_SHORT when its block ran
 * past the readable bytes (the wait ends then too, api unknown). */
static __always_inline int http2_frames(struct protocol_stack *st, const struct payload *p, __u32 off)
{
	__u8 fh[H2_FRAME_HEADER];
	__u32 start = 0, end = 0;
	int g;

	/* find the HEADERS frame, then walk its block once (not inside this loop: the verifier would
	 * walk every field of every frame) */
	for (__u32 i = 0; i < H2_MAX_FRAMES; i++) {
		__u32 flen, stream;

		if (off >= p->len || off >= CLASSIFY_MAX_BYTES)
			return CL_NO;
		if (!payload_read(p, off, fh, sizeof(fh)))
			return CL_NO;
		flen = ((__u32)fh[0] << 16) | ((__u32)fh[1] << 8) | fh[2];
		stream = be32(&fh[5]);
		if (fh[3] > H2_FRAME_TYPE_MAX || (stream & 0x80000000))
			return CL_NO; /* not at a frame boundary: give up on this packet */
		start = off + H2_FRAME_HEADER;
		end = start + flen;
		if (fh[3] == H2_HEADERS && stream)
			goto headers;
		if (end >= CLASSIFY_MAX_BYTES)
			return CL_NO;
		off = off_bound(end);
	}
	return CL_NO;
headers:
	st->flags &= ~STACK_H2_WAIT;
	if (fh[4] & H2_FLAG_PADDED) {
		__u8 pad;
		if (!payload_read(p, start, &pad, 1))
			return CL_MATCH | CL_SHORT;
		start += 1;
		end = pad < end - start ? end - pad : start;
	}
	if (fh[4] & H2_FLAG_PRIORITY)
		start += 5;
	g = ebpfnet_hpack_grpc(PAYLOAD_ARGS(p), start, end);
	if (g == 1 && !st->api)
		st->api = API_GRPC;
	return g < 0 ? CL_MATCH | CL_SHORT : CL_MATCH;
}

#endif
