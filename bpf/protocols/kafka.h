/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Kafka: a request header (v1/v2: int32 size, int16 api_key, int16 api_version, int32
 * correlation_id, int16 client_id length, client_id), in either direction: a client sends it, a
 * server receives it. A response (size, correlation_id) says too little to be told from other
 * length-prefixed protocols, so it is never matched alone. */
#ifndef EBPFNET_PROTOCOLS_KAFKA_H
#define EBPFNET_PROTOCOLS_KAFKA_H

#include "head.h"

#define KAFKA_HEADER 14		 /* size .. client_id length */
#define KAFKA_MAX_SIZE (1 << 18) /* a first request is small; also keeps DNS over TCP out */
#define KAFKA_MAX_API_KEY 92
#define KAFKA_MAX_API_VERSION 20
#define KAFKA_MAX_CORRELATION (1 << 24) /* a connection's first requests number from 0 */
#define KAFKA_MAX_CLIENT_ID 255
#define KAFKA_CLIENT_ID_CHECK 16 /* client_id bytes checked to be printable */

/* Highest api_version a request of api_key may plausibly carry (Kafka 4.x maxima plus headroom);
 * 0 for keys without requests from clients we know. ApiVersions (18) is what clients send first. */
static __always_inline __u32 kafka_max_version(__u32 key)
{
	switch (key) {
	case 0: /* Produce */
	case 1: /* Fetch */
		return KAFKA_MAX_API_VERSION;
	case 18: /* ApiVersions */
		return 6;
	case 17: /* SaslHandshake */
		return 3;
	case 36: /* SaslAuthenticate */
		return 4;
	}
	return key <= KAFKA_MAX_API_KEY ? 15 : 0;
}

static __always_inline int kafka_request(struct protocol_stack *st, const struct payload *p, const struct head *h)
{
	__u32 size, key, ver, corr, cid;
	__u8 c;

	/* reject on the bytes there are before asking for more */
	if (h->n >= 1 && h->b[0] != 0)
		return CL_NO;
	if (h->n >= 2 && h->b[1] >= (KAFKA_MAX_SIZE >> 16))
		return CL_NO;
	if (h->n >= 5 && h->b[4] != 0)
		return CL_NO;
	if (h->n >= 7 && h->b[6] != 0)
		return CL_NO;
	if (h->n >= 9 && h->b[8] != 0)
		return CL_NO;
	if (h->n < KAFKA_HEADER)
		return CL_SHORT;
	size = be32(h->b);
	key = be16(&h->b[4]);
	ver = be16(&h->b[6]);
	corr = be32(&h->b[8]);
	cid = be16(&h->b[12]);
	if (size < KAFKA_HEADER - 4 || size >= KAFKA_MAX_SIZE || corr >= KAFKA_MAX_CORRELATION)
		return CL_NO;
	if (key > KAFKA_MAX_API_KEY || ver > kafka_max_version(key))
		return CL_NO;
	if (cid != 0xffff) {
		if (cid > KAFKA_MAX_CLIENT_ID || size < KAFKA_HEADER - 4 + cid)
			return CL_NO;
		for (__u32 i = 0; i < KAFKA_CLIENT_ID_CHECK; i++) {
			if (i >= cid)
				break;
			if (!payload_read(p, KAFKA_HEADER + i, &c, 1))
				return CL_SHORT;
			if (!is_print(c))
				return CL_NO;
		}
	}
	set_app(st, APP_KAFKA);
	return CL_MATCH;
}

#endif
