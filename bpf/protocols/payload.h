/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* The bytes a classifier may look at: one packet's payload, read through bpf_skb_load_bytes so
 * the same code runs on the cgroup_skb hook (hook.h) and under BPF_PROG_TEST_RUN (bpf/tests/). */
#ifndef EBPFNET_PROTOCOLS_PAYLOAD_H
#define EBPFNET_PROTOCOLS_PAYLOAD_H

struct payload {
	struct __sk_buff *skb;
	__u32 off; /* offset of the first payload byte in skb */
	__u32 len; /* payload bytes in this packet, at most CLASSIFY_MAX_BYTES of them readable */
};

/* Copies n bytes at offset at of the payload into dst; false when the packet has fewer. n must be
 * a constant (or a register the verifier can bound). */
static __always_inline bool payload_read(const struct payload *p, __u32 at, void *dst, __u32 n)
{
	if (at > CLASSIFY_MAX_BYTES || n > CLASSIFY_MAX_BYTES || at + n > p->len)
		return false;
	return bpf_skb_load_bytes(p->skb, p->off + at, dst, n) == 0;
}

#endif
