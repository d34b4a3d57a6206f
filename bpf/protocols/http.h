/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* HTTP/1.x: a request line (method, space, request-target ... " HTTP/1.x\r\n") or a status line
 * ("HTTP/1.x NNN"). The version comes from the request line when its end is in the packet, else
 * from the response (STACK_HTTP_WAIT); a request whose response says nothing stays APP_HTTP. */
#ifndef EBPFNET_PROTOCOLS_HTTP_H
#define EBPFNET_PROTOCOLS_HTTP_H

#include "head.h"

/* The request line's end is searched in chunks of HTTP_SCAN_CHUNK bytes, HTTP_SCAN_CHUNKS of them:
 * the whole readable packet. */
#define HTTP_SCAN_CHUNK 16
#define HTTP_SCAN_CHUNKS (CLASSIFY_MAX_BYTES / HTTP_SCAN_CHUNK)
/* " HTTP/1.x\r": the request line's last bytes before its LF */
#define HTTP_VERSION_TAIL 10

/* Length of the method token and its space at the start of h (0: none), *res |= CL_SHORT when
 * the packet ended inside a candidate. */
static __always_inline __u32 http_method(const struct head *h, int *res)
{
	int r;
	*res = 0;
#define HTTP_TRY(lit)                                                                                                  \
	r = head_lit(h, 0, lit, sizeof(lit) - 1);                                                                      \
	if (r == CL_MATCH)                                                                                             \
		return sizeof(lit) - 1;                                                                                \
	*res |= r;
	switch (head_byte(h, 0)) {
	case 'G':
		HTTP_TRY("GET ");
		break;
	case 'P':
		HTTP_TRY("POST ");
		HTTP_TRY("PUT ");
		HTTP_TRY("PATCH ");
		break;
	case 'H':
		HTTP_TRY("HEAD ");
		break;
	case 'D':
		HTTP_TRY("DELETE ");
		break;
	case 'O':
		HTTP_TRY("OPTIONS ");
		break;
	case 'C':
		HTTP_TRY("CONNECT ");
		break;
	case 'T':
		HTTP_TRY("TRACE ");
		break;
	case -1:
		*res = CL_SHORT;
		break;
	}
#undef HTTP_TRY
	return 0;
}

/* The first request-target byte: origin-form '/', asterisk-form '*', absolute-form or authority. */
static __always_inline bool http_target_start(__u8 c)
{
	return c == '/' || c == '*' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '[';
}

/* The bytes of a chunk are tested spelt out, each test leaving at once, so the verifier follows one
 * path per chunk instead of one per combination of earlier outcomes. */
#define HTTP_CR_AT(j)                                                                                                  \
	if (src[j] == '\r')                                                                                            \
		return o + j;
#define HTTP_CR_CHUNK()                                                                                                \
	HTTP_CR_AT(0)                                                                                                  \
	HTTP_CR_AT(1)                                                                                                  \
	HTTP_CR_AT(2)                                                                                                  \
	HTTP_CR_AT(3)                                                                                                  \
	HTTP_CR_AT(4)                                                                                                  \
	HTTP_CR_AT(5)                                                                                                  \
	HTTP_CR_AT(6)                                                                                                  \
	HTTP_CR_AT(7)                                                                                                  \
	HTTP_CR_AT(8)                                                                                                  \
	HTTP_CR_AT(9)                                                                                                  \
	HTTP_CR_AT(10)                                                                                                 \
	HTTP_CR_AT(11)                                                                                                 \
	HTTP_CR_AT(12)                                                                                                 \
	HTTP_CR_AT(13)                                                                                                 \
	HTTP_CR_AT(14)                                                                                                 \
	HTTP_CR_AT(15)
_Static_assert(HTTP_SCAN_CHUNK == 16 && CLASSIFY_HEAD == 16, "HTTP_CR_CHUNK spells out 16 bytes");

/* Offset of the first CR in the readable payload (skb, poff, plen) of at least
 * HTTP_SCAN_CHUNK bytes, -1 when there is none. Chunks are read at fixed offsets, the last one
 * moved back to end at the packet's end. A global function (head.h CLASSIFY_GLOBAL). */
CLASSIFY_GLOBAL int ebpfnet_http_cr(struct __sk_buff *skb, __u32 poff, __u32 plen)
{
	struct payload q = {.skb = skb, .off = poff, .len = plen};
	__u32 len = plen < CLASSIFY_MAX_BYTES ? plen : CLASSIFY_MAX_BYTES;
	__u8 buf[HTTP_SCAN_CHUNK];
	const __u8 *src = buf;

	if (!skb || len < HTTP_SCAN_CHUNK)
		return -1;
	for (__u32 k = 0; k < HTTP_SCAN_CHUNKS; k++) {
		__u32 o = k * HTTP_SCAN_CHUNK;
		if (o >= len)
			break;
		if (o + HTTP_SCAN_CHUNK > len)
			o = len - HTTP_SCAN_CHUNK;
		if (!payload_read(&q, o, buf, HTTP_SCAN_CHUNK))
			return -1;
		HTTP_CR_CHUNK()
	}
	return -1;
}

/* The same in a packet shorter than HTTP_SCAN_CHUNK: the head holds it all, zero past its end. */
static __always_inline int http_cr_head(const struct head *h)
{
	const __u8 *src = h->b;
	__u32 o = 0;

	HTTP_CR_CHUNK()
	return -1;
}

/* The first CR of the packet: 1 and *at set, 0 when the packet has none. */
static __always_inline int http_find_cr(const struct payload *p, const struct head *h, __u32 *at)
{
	int cr = p->len < HTTP_SCAN_CHUNK ? http_cr_head(h) : ebpfnet_http_cr(PAYLOAD_ARGS(p));

	if (cr < 0)
		return 0;
	*at = cr;
	return 1;
}

/* APP_HTTP10 / APP_HTTP11 from the digit after "HTTP/1.", 0 for another. */
static __always_inline __u8 http_version_app(__u8 minor)
{
	if (minor == '0')
		return APP_HTTP10;
	if (minor == '1')
		return APP_HTTP11;
	return 0;
}

/* A request line at the start of the payload. With its version: application set. Without (the line
 * goes on past the packet): STACK_HTTP_WAIT, and CL_SHORT with the match. */
static __always_inline int http_request(struct protocol_stack *st, const struct payload *p, const struct head *h)
{
	int res;
	__u32 m = http_method(h, &res);
	__u32 cr = 0;
	__u8 tail[HTTP_VERSION_TAIL];
	__u8 app;

	if (!m)
		return res;
	if (m >= h->n)
		return CL_SHORT;
	if (!http_target_start(h->b[m]))
		return CL_NO;
	/* the method and the target's first byte hold no CR: the packet's first is the line's end */
	if (!http_find_cr(p, h, &cr)) {
		st->flags |= STACK_HTTP_WAIT;
		return CL_MATCH | CL_SHORT;
	}
	cr = off_bound(cr); /* one verifier state for every place the CR was found (head.h) */
	/* target (1 byte at least) then " HTTP/1.x" before the CR */
	if (cr < m + 1 + HTTP_VERSION_TAIL - 1)
		return CL_NO;
	if (!payload_read(p, cr - (HTTP_VERSION_TAIL - 1), tail, HTTP_VERSION_TAIL))
		return CL_SHORT;
	if (load_n(tail, 8) != LIT_N(" HTTP/1.", 8))
		return CL_NO;
	app = http_version_app(tail[8]);
	if (!app)
		return CL_NO;
	set_app(st, app);
	return CL_MATCH;
}

/* A status line "HTTP/1.x NNN" (then a space, or the CR of an empty reason) at the start of the
 * payload. Sets the application from its version. */
static __always_inline int http_response(struct protocol_stack *st, const struct head *h)
{
	int r = head_lit(h, 0, "HTTP/1.", 7);
	int c;
	__u8 app;

	if (r != CL_MATCH)
		return r;
	if (h->n < 13)
		return CL_SHORT;
	app = http_version_app(h->b[7]);
	if (!app || h->b[8] != ' ' || h->b[9] < '1' || h->b[9] > '5' || !is_digit(h->b[10]) || !is_digit(h->b[11]))
		return CL_NO;
	c = h->b[12];
	if (c != ' ' && c != '\r')
		return CL_NO;
	set_app(st, app);
	return CL_MATCH;
}

#endif
