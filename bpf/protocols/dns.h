/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* DNS on any port: over UDP a message, over TCP a message after its 2-byte length. A standard query
 * (opcode 0) with one question, Z clear; a query has no answer or authority records, a response a
 * few. The question's name must be well formed (labels of 1..63 bytes ending with the root, no
 * compression) and be followed by a known class, so random datagrams do not pass. */
#ifndef EBPFNET_PROTOCOLS_DNS_H
#define EBPFNET_PROTOCOLS_DNS_H

#include "head.h"

#define DNS_HEADER 12
#define DNS_MAX_LABELS 32 /* labels walked in the question name */
#define DNS_MAX_NAME 255
#define DNS_MAX_RR 64	   /* answer, authority and additional records of a first response */
#define DNS_MAX_QUERY_AR 2 /* additional records of a query: EDNS OPT (and a TSIG) */
#define DNS_MAX_RCODE 10
#define DNS_MAX_QTYPE 260 /* through CAA (257) and AMTRELAY (260); DLV (32769) too */

/* The message at base (0 for UDP, 2 past the TCP length). */
static __always_inline int dns_message(struct protocol_stack *st, const struct payload *p, const struct head *h,
				       __u32 base)
{
	__u8 hb[DNS_HEADER], q[4];
	__u32 flags, qd, an, ns, ar, off, qtype, qclass;

	if (h->n < base + 6) {
		/* the flags and the question count we can see */
		if (h->n >= base + 3 && (h->b[base + 2] & 0x78))
			return CL_NO; /* opcode not QUERY */
		return CL_SHORT;
	}
	if (h->b[base + 2] & 0x78 || h->b[base + 3] & 0x40 || h->b[base + 4] != 0 || h->b[base + 5] != 1)
		return CL_NO;
	if (!payload_read(p, base, hb, sizeof(hb)))
		return CL_SHORT;
	flags = be16(&hb[2]);
	qd = be16(&hb[4]);
	an = be16(&hb[6]);
	ns = be16(&hb[8]);
	ar = be16(&hb[10]);
	if (qd != 1)
		return CL_NO;
	if (flags & 0x8000) {
		if ((flags & 0xf) > DNS_MAX_RCODE || an > DNS_MAX_RR || ns > DNS_MAX_RR || ar > DNS_MAX_RR)
			return CL_NO;
	} else {
		/* a query: AA and RA and the rcode clear, no answers */
		if (flags & 0x048f || an || ns || ar > DNS_MAX_QUERY_AR)
			return CL_NO;
	}
	off = base + DNS_HEADER;
	for (__u32 i = 0; i < DNS_MAX_LABELS; i++) {
		__u8 l;

		if (!payload_read(p, off, &l, 1))
			return CL_SHORT;
		off += 1;
		if (l == 0)
			goto name_end;
		if (l > 63 || off - base - DNS_HEADER + l > DNS_MAX_NAME)
			return CL_NO;
		off += l;
		if (off >= CLASSIFY_MAX_BYTES)
			return CL_SHORT;
		off = off_bound(off); /* one verifier state per iteration (head.h) */
	}
	return CL_NO;
name_end:
	if (!payload_read(p, off, q, sizeof(q)))
		return CL_SHORT;
	qtype = be16(q);
	qclass = be16(&q[2]);
	if (qtype == 0 || (qtype > DNS_MAX_QTYPE && qtype != 32769 /* DLV */))
		return CL_NO;
	if (qclass != 1 && qclass != 3 && qclass != 4 && qclass != 254 && qclass != 255)
		return CL_NO;
	set_app(st, APP_DNS);
	return CL_MATCH;
}

/* DNS over TCP: the length must cover the header and a question. */
static __always_inline int dns_tcp(struct protocol_stack *st, const struct payload *p, const struct head *h)
{
	if (h->n < 2)
		return CL_SHORT;
	if (be16(h->b) < DNS_HEADER + 5)
		return CL_NO;
	return dns_message(st, p, h, 2);
}

#endif
