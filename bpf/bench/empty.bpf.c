// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The benchmark floor: one program per hook the tracer attaches on the host kernel, each doing
 * nothing. What they cost is the price of the hook itself (trampoline, cgroup array walk), which
 * no tracer on these hooks can avoid; bench/ compares the tracer against it. Names start with
 * floor_ so they are told apart from the tracer's enet_ programs in `bpftool prog list`.
 * Tracing programs return 0 (ignored by the kernel); cgroup sock_addr, sock_release and skb programs
 * must return 1, or the kernel refuses the syscall (skb: drops the packet). */
#include "common/vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tp_btf/sock_send_length")
int floor_tp_send(void *ctx)
{
	return 0;
}

SEC("tp_btf/sock_recv_length")
int floor_tp_recv(void *ctx)
{
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int floor_tp_state(void *ctx)
{
	return 0;
}

SEC("tp_btf/tcp_destroy_sock")
int floor_tp_destroy(void *ctx)
{
	return 0;
}

SEC("cgroup/sendmsg4")
int floor_cg_send4(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("cgroup/sendmsg6")
int floor_cg_send6(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("cgroup/recvmsg4")
int floor_cg_recv4(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("cgroup/recvmsg6")
int floor_cg_recv6(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("cgroup/sock_release")
int floor_cg_release(struct bpf_sock *ctx)
{
	return 1;
}

/* The protocol classifiers' hooks (bpf/protocols/hook.h), on every packet each way. */
SEC("cgroup_skb/egress")
int floor_cg_skbout(struct __sk_buff *skb)
{
	return 1;
}

SEC("cgroup_skb/ingress")
int floor_cg_skbin(struct __sk_buff *skb)
{
	return 1;
}
