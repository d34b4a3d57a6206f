/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The protocol classifier: one function the hook (hook.h) calls per payload packet of a connection
 * that is not settled, running the per-protocol classifiers (one header each) as a small state
 * machine over enum stack_flags. */
#ifndef EBPFNET_PROTOCOLS_CLASSIFY_H
#define EBPFNET_PROTOCOLS_CLASSIFY_H

#include "payload.h"
#include "head.h"
#include "http.h"
#include "http2.h"
#include "tls.h"
#include "kafka.h"
#include "amqp.h"
#include "redis.h"
#include "postgres.h"
#include "mysql.h"
#include "mongo.h"
#include "dns.h"

enum classify_result {
	CLASSIFY_SHORT = 1 << 0, /* some classifier needed more bytes than the packet held */
};

#define STACK_WAITS (STACK_TLS_WAIT | STACK_H2_WAIT | STACK_HTTP_WAIT)
/* What the hook clears with the waits when it settles a connection at CLASSIFY_MAX_PACKETS: the
 * waits and the ClientHello's ALPN offer kept for the ServerHello. */
#define STACK_PENDING (STACK_WAITS | STACK_ALPN_H2 | STACK_ALPN_HTTP11)
#define STACK_SEEN_BOTH (STACK_SEEN_EGRESS | STACK_SEEN_INGRESS)

/* The first message of a TCP direction with nothing pending. Order: fixed magic first (TLS, the h2
 * preface, AMQP, HTTP, RESP: text or exact bytes), then the length-prefixed binary protocols, the
 * strictest first (MongoDB's opCode, MySQL's protocol 10 and version string, PostgreSQL's codes)
 * before Kafka, whose header has fewer fixed bits, and DNS over TCP last. Each rejects on its first
 * bytes, so at most one of them matches a message; the order only saves work. */
static __always_inline int classify_tcp_first(struct protocol_stack *st, const struct payload *p, const struct head *h)
{
	int r, acc = 0;

	switch (head_byte(h, 0)) {
	case TLS_RECORD_HANDSHAKE:
		return tls_hello(st, p, h);
	case 'P':
		r = http2_preface(p, h);
		if (r == CL_MATCH) {
			set_app(st, APP_HTTP2);
			st->flags |= STACK_H2_WAIT;
			return CL_MATCH | http2_frames(st, p, H2_PREFACE_LEN);
		}
		acc |= r;
		r = redis_request(st, p, h);
		if (r & CL_MATCH)
			return r;
		acc |= r;
		r = http_request(st, p, h);
		return (r & CL_MATCH) ? r : acc | r;
	case 'A':
		return amqp_header(st, h);
	case 'H':
		acc = http_response(st, h);
		if (acc & CL_MATCH)
			return acc;
		r = http_request(st, p, h);
		return (r & CL_MATCH) ? r : acc | r;
	case '*':
		return redis_request(st, p, h);
	case 'G':
	case 'D':
	case 'O':
	case 'C':
	case 'T':
		return http_request(st, p, h);
	case -1:
		return CL_SHORT;
	}
#define TRY(call)                                                                                                      \
	r = call;                                                                                                      \
	if (r & CL_MATCH)                                                                                              \
		return r;                                                                                              \
	acc |= r;
	TRY(mongo_message(st, p, h));
	TRY(mysql_greeting(st, p, h));
	TRY(postgres_startup(st, h));
	TRY(amqp_connection_start(st, h));
	TRY(kafka_request(st, p, h));
	TRY(dns_tcp(st, p, h));
#undef TRY
	return acc;
}

/* The first message of a direction while a decision started by the other direction waits. */
static __always_inline int classify_pending(struct protocol_stack *st, const struct payload *p, const struct head *h)
{
	int r;

	if (st->flags & STACK_TLS_WAIT) {
		/* the other end's first message: the ServerHello, or TLS stays without a version */
		r = tls_hello(st, p, h);
		st->flags &= ~(STACK_TLS_WAIT | STACK_ALPN_H2 | STACK_ALPN_HTTP11);
		return r;
	}
	if (st->flags & STACK_HTTP_WAIT) {
		r = http_response(st, h);
		set_app(st, APP_HTTP);
		st->flags &= ~STACK_HTTP_WAIT;
		return r;
	}
	if (st->flags & STACK_H2_WAIT)
		return http2_frames(st, p, 0);
	return CL_NO;
}

/* Classifies one payload packet of a connection into st; called for each payload packet of a
 * connection not yet STACK_SETTLED, at most CLASSIFY_MAX_PACKETS times per connection (the hook
 * counts them, and at the limit clears STACK_PENDING and sets STACK_SETTLED itself).
 *
 * egress: the local end sent it. tcp: the transport. first: it begins its direction's stream (TCP:
 * its first byte is that direction's first payload byte; UDP: every datagram).
 *
 * The first message of each direction is examined once (STACK_SEEN_EGRESS / STACK_SEEN_INGRESS). A
 * layer (api, application, encryption) is set once certain and never changed. Decisions that need
 * the other direction or later packets wait on a flag: STACK_TLS_WAIT (ClientHello seen: the
 * ServerHello gives version and ALPN), STACK_HTTP_WAIT (request line without its version: the
 * status line gives it), STACK_H2_WAIT (HTTP/2: the first HEADERS frame says gRPC or not; packets
 * with first false are walked only for this). STACK_SETTLED is set when nothing more can be learnt:
 * application known with nothing pending, TLS decided, or both directions seen with nothing pending.
 * UDP is only ever DNS.
 *
 * Work per packet is bounded by the classifiers' named loop bounds. Returns enum classify_result:
 * CLASSIFY_SHORT when a classifier could not decide because the packet held fewer bytes than it
 * needed (a version or gRPC left unknown, or a direction's first message that matched nothing). */
static __always_inline __u32 classify_packet(struct protocol_stack *st, const struct payload *p, bool egress, bool tcp,
					     bool first)
{
	__u8 seen = egress ? STACK_SEEN_EGRESS : STACK_SEEN_INGRESS;
	struct head h;
	int r = CL_NO;

	if (st->flags & STACK_SETTLED)
		return 0;
	if (!first || (st->flags & seen)) {
		/* not a direction's first message: only a HEADERS frame awaited matters */
		if (!tcp || !(st->flags & STACK_H2_WAIT))
			return 0;
		r = http2_frames(st, p, 0);
		goto settle;
	}
	st->flags |= seen;
	head_load(&h, p);
	if (!tcp) {
		if (!st->application)
			r = dns_message(st, p, &h, 0);
	} else if (st->flags & STACK_WAITS) {
		r = classify_pending(st, p, &h);
	} else if (!st->application && !st->encryption) {
		r = classify_tcp_first(st, p, &h);
	}
settle:
	if (!(st->flags & STACK_WAITS) &&
	    (st->application || st->encryption || (st->flags & STACK_SEEN_BOTH) == STACK_SEEN_BOTH))
		st->flags |= STACK_SETTLED;
	return (r & CL_SHORT) ? CLASSIFY_SHORT : 0;
}

#endif
