/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* MongoDB wire protocol: a MsgHeader (little endian int32 messageLength, requestID, responseTo,
 * opCode). A request (responseTo 0) is OP_MSG (2013) with only defined flagBits and a section of
 * kind 0 or 1, or OP_QUERY (2004, what drivers send first to servers of before 3.6: isMaster on
 * "admin.$cmd"). A reply (responseTo set, from the server) is OP_MSG or OP_REPLY (1). */
#ifndef EBPFNET_PROTOCOLS_MONGO_H
#define EBPFNET_PROTOCOLS_MONGO_H

#include "head.h"

#define MONGO_OP_REPLY 1
#define MONGO_OP_QUERY 2004
#define MONGO_OP_MSG 2013
#define MONGO_HEADER 16
#define MONGO_MAX_MESSAGE (48 << 20) /* maxMessageSizeBytes */
#define MONGO_MSG_FLAGS 0x00010003   /* checksumPresent, moreToCome, exhaustAllowed */
#define MONGO_QUERY_FLAGS 0xfe	     /* bits 1-7 */
#define MONGO_REPLY_FLAGS 0x0f

static __always_inline int mongo_message(struct protocol_stack *st, const struct payload *p, const struct head *h)
{
	__u8 b[8];
	__u32 len, resp, op, flags, doc;

	if (h->n < MONGO_HEADER) {
		/* reject on the opCode bytes there are */
		if (h->n >= 14 && h->b[13] != 0x07 && !(h->b[12] == MONGO_OP_REPLY && h->b[13] == 0))
			return CL_NO;
		if (h->n >= 15 && h->b[14] != 0)
			return CL_NO;
		if (h->n >= 4 && h->b[3] >= (MONGO_MAX_MESSAGE >> 24))
			return CL_NO;
		return CL_SHORT;
	}
	len = le32(h->b);
	resp = le32(&h->b[8]);
	op = le32(&h->b[12]);
	if (len < MONGO_HEADER + 5 || len > MONGO_MAX_MESSAGE)
		return CL_NO;
	if (op != MONGO_OP_MSG && op != MONGO_OP_QUERY && op != MONGO_OP_REPLY)
		return CL_NO;
	if ((op == MONGO_OP_QUERY && resp != 0) || (op == MONGO_OP_REPLY && resp == 0))
		return CL_NO;
	if (!payload_read(p, MONGO_HEADER, b, sizeof(b)))
		return CL_SHORT;
	flags = le32(b);
	if (op == MONGO_OP_MSG) {
		/* flagBits, then a section: kind 0 (a BSON document) or 1 (size, identifier, documents) */
		if (flags & ~MONGO_MSG_FLAGS || b[4] > 1 || len < MONGO_HEADER + 4 + 1 + 5)
			return CL_NO;
		if (!payload_read(p, MONGO_HEADER + 5, b, 4))
			return CL_SHORT;
		doc = le32(b);
		if (doc < 5 || doc > len - MONGO_HEADER - 5)
			return CL_NO;
	} else if (op == MONGO_OP_QUERY) {
		/* flags, then fullCollectionName: a printable C string such as "admin.$cmd" */
		if (flags & ~MONGO_QUERY_FLAGS || !is_print(b[4]) || !is_print(b[5]))
			return CL_NO;
	} else {
		/* responseFlags, then an int64 cursorID */
		if (flags & ~MONGO_REPLY_FLAGS || len < MONGO_HEADER + 20 + 5)
			return CL_NO;
	}
	set_app(st, APP_MONGO);
	return CL_MATCH;
}

#endif
