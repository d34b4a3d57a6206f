// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* BPF_PROG_TEST_RUN harness of the protocol classifiers (protocols/), loaded by Go tests only
 * (receiver/ebpfnetreceiver/internal/tracer/classifytest), never by the tracer. The test input is a
 * 14-byte dummy Ethernet header and the payload; the state goes in and out through the one entry
 * of the io map. ct_classify runs classify_packet; each ct_<protocol> runs one classifier alone on
 * a fresh stack, so a classifier is tested without the dispatcher in front of it. */
#include "common/vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "common/sizing.h"
#include "common/types.h"
#include "protocols/classify.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define CT_ETH_HLEN 14

/* The input and output of one run. */
struct classify_io {
	struct protocol_stack stack; /* in: the state before the packet; out: after */
	__u32 result;		     /* out: ct_classify: enum classify_result; ct_<protocol>: enum cl_result */
	__u8 egress;		     /* in: bool */
	__u8 tcp;		     /* in: bool */
	__u8 first;		     /* in: bool */
	__u8 _pad;
};

/* io: key 0, the one classify_io. Written by the Go test before a run, read after it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct classify_io);
} io SEC(".maps");

const enum cl_result *unused_cl_result __attribute__((unused));
const enum classify_result *unused_classify_result __attribute__((unused));
const enum stack_flags *unused_stack_flags __attribute__((unused));
const enum proto_api *unused_proto_api __attribute__((unused));
const enum proto_application *unused_proto_application __attribute__((unused));
const enum proto_encryption *unused_proto_encryption __attribute__((unused));

static __always_inline struct classify_io *ct_begin(struct __sk_buff *skb, struct payload *p)
{
	__u32 key = 0;
	__u32 len = skb->len > CT_ETH_HLEN ? skb->len - CT_ETH_HLEN : 0;

	p->skb = skb;
	p->off = CT_ETH_HLEN;
	p->len = len < CLASSIFY_MAX_BYTES ? len : CLASSIFY_MAX_BYTES;
	return bpf_map_lookup_elem(&io, &key);
}

SEC("tc")
int ct_classify(struct __sk_buff *skb)
{
	struct payload p;
	struct classify_io *c = ct_begin(skb, &p);

	if (!c)
		return 0;
	c->result = classify_packet(&c->stack, &p, c->egress, c->tcp, c->first);
	return 0;
}

/* One classifier on the payload: its enum cl_result, the stack it set. */
#define CT_ONE(name, call)                                                                                             \
	SEC("tc")                                                                                                      \
	int ct_##name(struct __sk_buff *skb)                                                                           \
	{                                                                                                              \
		struct payload p;                                                                                      \
		struct head h;                                                                                         \
		struct classify_io *c = ct_begin(skb, &p);                                                             \
		struct protocol_stack *st;                                                                             \
		if (!c)                                                                                                \
			return 0;                                                                                      \
		st = &c->stack;                                                                                        \
		(void)st;                                                                                              \
		head_load(&h, &p);                                                                                     \
		c->result = call;                                                                                      \
		return 0;                                                                                              \
	}

CT_ONE(http_req, http_request(st, &p, &h))
CT_ONE(http_resp, http_response(st, &h))
CT_ONE(h2_preface, http2_preface(&p, &h))
CT_ONE(h2_frames, http2_frames(st, &p, 0))
CT_ONE(tls, tls_hello(st, &p, &h))
CT_ONE(kafka, kafka_request(st, &p, &h))
CT_ONE(amqp_hdr, amqp_header(st, &h))
CT_ONE(amqp_start, amqp_connection_start(st, &h))
CT_ONE(redis, redis_request(st, &p, &h))
CT_ONE(postgres, postgres_startup(st, &h))
CT_ONE(mysql, mysql_greeting(st, &p, &h))
CT_ONE(mongo, mongo_message(st, &p, &h))
CT_ONE(dns_udp, dns_message(st, &p, &h, 0))
CT_ONE(dns_tcp, dns_tcp(st, &p, &h))
