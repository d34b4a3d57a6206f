/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef EBPFNET_MAPS_CLOSED_H
#define EBPFNET_MAPS_CLOSED_H

/* closed: ring buffer of struct conn_record, from every CPU to the one user-space reader.
 * Records are submitted without waking the reader; only when more than wakeup_watermark bytes
 * wait is the reader woken, so the 11-18 us cost of a wakeup is paid once per few thousand
 * records instead of once per closed connection. The poll drains whatever is left. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, CLOSED_RING_BYTES);
} closed SEC(".maps");

/* Set from Go before load: bytes waiting in the ring before the reader is woken. */
volatile const __u64 wakeup_watermark = CLOSED_RING_BYTES / 8;

static __always_inline __u64 ring_submit_flags(void)
{
	return bpf_ringbuf_query(&closed, BPF_RB_AVAIL_DATA) >= wakeup_watermark ? BPF_RB_FORCE_WAKEUP
										 : BPF_RB_NO_WAKEUP;
}

#endif
