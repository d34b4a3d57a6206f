/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* What vmlinux.h (dumped from an x86-64 kernel) lacks for other architectures. Only register
 * layouts the kprobe macros read; everything else is relocated by CO-RE on any architecture. */
#ifndef EBPFNET_COMMON_ARCH_H
#define EBPFNET_COMMON_ARCH_H

#if defined(__TARGET_ARCH_arm64)
/* arch/arm64/include/uapi/asm/ptrace.h, UAPI since 3.7. */
struct user_pt_regs {
	__u64 regs[31];
	__u64 sp;
	__u64 pc;
	__u64 pstate;
};
#endif

#endif
