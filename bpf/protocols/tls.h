/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* TLS: a handshake record holding a ClientHello or a ServerHello.
 *
 * ClientHello: the encryption is pending (STACK_TLS_WAIT); when the client offered exactly one ALPN
 * protocol and it is "h2" or "http/1.1", STACK_ALPN_H2 / STACK_ALPN_HTTP11 remember it.
 * ServerHello: the version is the supported_versions extension's when there is one (TLS 1.3 is only
 * said there), else legacy_version. The application is the ServerHello's ALPN extension (TLS <= 1.2
 * sends it in clear); TLS 1.3 encrypts it, so there the application is the client's offer when that
 * offer was a single protocol (a server that accepts it can choose nothing else), and stays unknown
 * otherwise (curl offers "h2,http/1.1"). When the ServerHello's extensions run past the readable
 * bytes before supported_versions is found, the version is not reported (a 1.3 ServerHello carries
 * 0x0303 in legacy_version: it would be wrong): encryption stays ENC_NONE and the result has
 * CL_SHORT. TLS is decided at the ServerHello: nothing after it is in clear. */
#ifndef EBPFNET_PROTOCOLS_TLS_H
#define EBPFNET_PROTOCOLS_TLS_H

#include "head.h"

#define TLS_RECORD_HANDSHAKE 0x16
#define TLS_CLIENT_HELLO 1
#define TLS_SERVER_HELLO 2
#define TLS_RECORD_HEADER 5
#define TLS_HANDSHAKE_HEADER 4
#define TLS_RANDOM 32
#define TLS_MAX_RECORD (16384 + 2048)
#define TLS_MAX_EXTENSIONS 24 /* extensions walked per hello */
#define TLS_EXT_ALPN 0x0010
#define TLS_EXT_SUPPORTED_VERSIONS 0x002b
/* offset of legacy_version in the record, and of session_id's length */
#define TLS_HELLO_VERSION (TLS_RECORD_HEADER + TLS_HANDSHAKE_HEADER)
#define TLS_HELLO_SESSION (TLS_HELLO_VERSION + 2 + TLS_RANDOM)

/* The enum proto_encryption of a protocol version, 0 for any other. */
static __always_inline __u8 tls_encryption(__u32 version)
{
	switch (version) {
	case 0x0301:
		return ENC_TLS10;
	case 0x0302:
		return ENC_TLS11;
	case 0x0303:
		return ENC_TLS12;
	case 0x0304:
		return ENC_TLS13;
	}
	return 0;
}

/* A handshake record starting a hello: the handshake type (TLS_CLIENT_HELLO/TLS_SERVER_HELLO), or 0
 * (with *res CL_NO or CL_SHORT). */
static __always_inline int tls_hello_type(const struct head *h, int *res)
{
	__u32 rlen, hlen, ver;

	*res = CL_NO;
	if (head_byte(h, 0) != TLS_RECORD_HANDSHAKE) {
		if (h->n == 0)
			*res = CL_SHORT;
		return 0;
	}
	if (h->n < TLS_HELLO_VERSION + 2) {
		*res = CL_SHORT;
		/* reject early what we can */
		if (h->n >= 2 && h->b[1] != 0x03)
			*res = CL_NO;
		return 0;
	}
	ver = be16(&h->b[1]);
	rlen = be16(&h->b[3]);
	hlen = ((__u32)h->b[6] << 16) | ((__u32)h->b[7] << 8) | h->b[8];
	if (ver < 0x0301 || ver > 0x0304 || rlen < TLS_HANDSHAKE_HEADER + 2 + TLS_RANDOM + 1 || rlen > TLS_MAX_RECORD)
		return 0;
	if (hlen < 2 + TLS_RANDOM + 1 || hlen > (1 << 18))
		return 0;
	/* legacy_version of the hello: SSL 3.0 to TLS 1.2 (1.3 keeps 0x0303 there) */
	ver = be16(&h->b[TLS_HELLO_VERSION]);
	if (ver < 0x0300 || ver > 0x0303)
		return 0;
	if (h->b[5] != TLS_CLIENT_HELLO && h->b[5] != TLS_SERVER_HELLO)
		return 0;
	return h->b[5];
}

/* Offset of the extensions block's length in a hello, past session_id (and cipher suites and
 * compression methods for a ClientHello); 0 when unreadable or malformed. */
static __always_inline __u32 tls_extensions_at(const struct payload *p, int type)
{
	__u8 b[2];
	__u32 off = TLS_HELLO_SESSION, n;

	if (!payload_read(p, off, b, 1) || b[0] > 32)
		return 0;
	off += 1 + b[0];
	if (type == TLS_SERVER_HELLO)
		return off + 2 + 1; /* cipher_suite, compression_method */
	if (!payload_read(p, off, b, 2))
		return 0;
	n = be16(b);
	if (n < 2 || n & 1)
		return 0;
	off += 2 + n;
	if (!payload_read(p, off, b, 1) || b[0] < 1)
		return 0;
	off += 1 + b[0];
	return off;
}

/* The ALPN extension's data at off (len bytes) when it holds one protocol: STACK_ALPN_H2 or
 * STACK_ALPN_HTTP11 for those, 0 otherwise. */
static __always_inline __u8 tls_alpn_single(const struct payload *p, __u32 off, __u32 len)
{
	__u8 b[3], s[8];

	if (!payload_read(p, off, b, 3))
		return 0;
	if (be16(b) != len - 2 || b[2] + 1 != be16(b))
		return 0;
	if (b[2] == 2) {
		if (!payload_read(p, off + 3, s, 2))
			return 0;
		return s[0] == 'h' && s[1] == '2' ? STACK_ALPN_H2 : 0;
	}
	if (b[2] == 8) {
		if (!payload_read(p, off + 3, s, 8))
			return 0;
		return load_n(s, 8) == LIT_N("http/1.1", 8) ? STACK_ALPN_HTTP11 : 0;
	}
	return 0;
}

/* What the walk of a hello's extensions found, packed in a scalar (the return of a global
 * function): the supported_versions of a ServerHello (0 if absent), the STACK_ALPN_* of a
 * single-protocol ALPN extension, whether there was an ALPN extension, and whether every extension
 * was walked. */
#define TLS_X_VERSION(x) ((x) & 0xffff)
#define TLS_X_ALPN(x) (((x) >> 16) & 0xff) /* with TLS_X_ALPN_SEEN >> 16 */
#define TLS_X_COMPLETE (1u << 24)
#define TLS_X_ALPN_SEEN (1u << 25) /* an ALPN extension was read, one protocol or several */

/* Walks the extensions whose block length is at off, within the hello that ends at hend, of the
 * payload (skb, poff, plen); server: a ServerHello. A global function (head.h CLASSIFY_GLOBAL). */
CLASSIFY_GLOBAL __u32 ebpfnet_tls_walk(struct __sk_buff *skb, __u32 poff, __u32 plen, __u32 off, __u32 hend_server)
{
	struct payload q = {.skb = skb, .off = poff, .len = plen};
	const struct payload *p = &q;
	__u32 hend = hend_server & 0x7fffffff, version = 0, alpn = 0, end;
	bool server = hend_server >> 31;
	__u8 b[4];

	if (!skb)
		return 0;
	if (off == hend)
		return TLS_X_COMPLETE; /* no extensions (TLS <= 1.2 allows it) */
	if (off + 2 > hend || !payload_read(p, off, b, 2))
		return 0;
	end = off + 2 + be16(b);
	if (end > hend)
		return 0;
	off += 2;
	for (__u32 i = 0; i < TLS_MAX_EXTENSIONS; i++) {
		__u32 et, el;

		if (off >= end)
			return version | (alpn << 16) | (off == end ? TLS_X_COMPLETE : 0);
		if (!payload_read(p, off, b, 4))
			break;
		et = be16(b);
		el = be16(&b[2]);
		if (et == TLS_EXT_SUPPORTED_VERSIONS && server && el == 2) {
			if (!payload_read(p, off + 4, b, 2))
				break;
			version = be16(b);
		}
		if (et == TLS_EXT_ALPN) {
			if (off + 4 + el > p->len)
				break; /* not all of it in the packet */
			alpn = tls_alpn_single(p, off + 4, el) | (TLS_X_ALPN_SEEN >> 16);
		}
		off += 4 + el;
		if (off >= CLASSIFY_MAX_BYTES)
			break;
		off = off_bound(off); /* one verifier state per iteration (head.h) */
	}
	return version | (alpn << 16);
}

/* A ClientHello or ServerHello at the start of the payload. */
static __always_inline int tls_hello(struct protocol_stack *st, const struct payload *p, const struct head *h)
{
	__u32 off, hend, x, version;
	__u8 alpn;
	__u8 enc;
	int res;
	int type = tls_hello_type(h, &res);

	if (!type)
		return res;
	off = tls_extensions_at(p, type);
	if (!off) {
		/* the hello was recognised; its body is short or malformed */
		if (type == TLS_CLIENT_HELLO)
			st->flags |= STACK_TLS_WAIT;
		else
			st->flags &= ~(STACK_TLS_WAIT | STACK_ALPN_H2 | STACK_ALPN_HTTP11);
		return CL_MATCH | CL_SHORT;
	}
	hend = TLS_HELLO_VERSION + (((__u32)h->b[6] << 16) | ((__u32)h->b[7] << 8) | h->b[8]);
	x = ebpfnet_tls_walk(PAYLOAD_ARGS(p), off, hend | (type == TLS_SERVER_HELLO ? 1u << 31 : 0));
	version = TLS_X_VERSION(x);
	alpn = TLS_X_ALPN(x) & (STACK_ALPN_H2 | STACK_ALPN_HTTP11);
	/* short: the walk ended at the readable bytes before what it looks for (a ClientHello's ALPN; a
	 * ServerHello's supported_versions, whose absence only the whole walk shows) */
	res = CL_MATCH;
	if (type == TLS_CLIENT_HELLO ? !(x & (TLS_X_COMPLETE | TLS_X_ALPN_SEEN)) : !version && !(x & TLS_X_COMPLETE))
		res |= CL_SHORT;
	if (type == TLS_CLIENT_HELLO) {
		st->flags |= STACK_TLS_WAIT | alpn;
		return res;
	}
	enc = version ? tls_encryption(version) : 0;
	if (!version && (x & TLS_X_COMPLETE))
		enc = tls_encryption(be16(&h->b[TLS_HELLO_VERSION]));
	if (!st->encryption)
		st->encryption = enc;
	if (enc == ENC_TLS13) {
		if (st->flags & STACK_ALPN_H2)
			set_app(st, APP_HTTP2);
		else if (st->flags & STACK_ALPN_HTTP11)
			set_app(st, APP_HTTP11);
	} else if (enc) {
		if (alpn == STACK_ALPN_H2)
			set_app(st, APP_HTTP2);
		else if (alpn == STACK_ALPN_HTTP11)
			set_app(st, APP_HTTP11);
	}
	st->flags &= ~(STACK_TLS_WAIT | STACK_ALPN_H2 | STACK_ALPN_HTTP11);
	return res;
}

#endif
