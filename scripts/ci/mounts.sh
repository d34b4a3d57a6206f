#!/usr/bin/env bash
# Mounts what BPF programs need, when missing (a fresh machine has neither tracefs nor bpffs).
# The tracer itself needs only cgroup2 (its cgroup hooks) and BTF; tracefs serves the tools
# (bpftool, bpftrace) and classic tracepoints, bpffs pinning.
set -euo pipefail
mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing || echo "tracefs: not mounted"
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || echo "bpffs: not mounted"
if ! awk '$3 == "cgroup2" {found = 1} END {exit !found}' /proc/self/mounts; then
	if mountpoint -q /sys/fs/cgroup; then
		mkdir -p /sys/fs/cgroup/unified
		mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
	else
		mount -t cgroup2 cgroup2 /sys/fs/cgroup
	fi
fi
echo "cgroup2: $(awk '$3 == "cgroup2" {print $2; exit}' /proc/self/mounts); BTF: $(ls /sys/kernel/btf/vmlinux)"
