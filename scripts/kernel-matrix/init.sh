#!/bin/sh
# shellcheck shell=sh
# /init of the kernel-matrix initramfs (busybox sh, PID 1). Built into the image by km.sh.
#
# Devices the host turns into files (x86-64: serial ports; arm64: the serial port and two virtio
# consoles, named by /km/devices):
#   ttyS0 / ttyAMA0   kernel console (boot messages, oopses, KM-NOTE lines)
#   KM_OUT            the test's stdout+stderr, byte-exact (raw tty: no \r): ttyS1 / hvc0
#   KM_STATUS         status lines for the host: KM-BOOTED, KM-NOTE, KM-RC, KM-DONE: ttyS2 / hvc1
# It always powers the guest off at the end, whatever the test did; if init itself dies
# the kernel panics, panic=-1 reboots and qemu's -no-reboot turns that into an exit.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TMPDIR=/tmp LANG=C
/bin/busybox --install -s

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
. /km/devices # KM_OUT=... KM_STATUS=..., written by km.sh
# The drivers of those devices when they are modules (arm64 6.1: virtio_pci, virtio_console).
while read -r m; do
	[ -n "$m" ] || continue
	insmod "/lib/modules/$(uname -r)/$m" || echo "KM: insmod $m failed" >/dev/console
done </km/modules.early
i=0
while ! [ -c "$KM_STATUS" ] && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done
[ -c "$KM_STATUS" ] || echo "KM: no $KM_STATUS" >/dev/console
stty -F "$KM_OUT" raw -echo 2>/dev/null
stty -F "$KM_STATUS" raw -echo 2>/dev/null

status() { echo "$*" >"$KM_STATUS"; }
note() { status "KM-NOTE $*"; echo "KM-NOTE $*" >/dev/console; }
halt_now() {
	sync
	poweroff -f
	reboot -f # -no-reboot on the host side: qemu exits
	while :; do sleep 1; done
}

mkdir -p /dev/pts /dev/shm /tmp /run /root
mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -p /run/netns
# What BPF code and its tests expect to find. cgroup2 goes to /sys/fs/cgroup (pure unified layout,
# unlike the host's hybrid /sys/fs/cgroup/unified): code must find it from /proc/self/mounts.
mount -t tracefs tracefs /sys/kernel/tracing || note "tracefs mount failed"
mount -t debugfs debugfs /sys/kernel/debug || note "debugfs mount failed"
mount -t bpf -o mode=0700 bpf /sys/fs/bpf || note "bpffs mount failed"
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup 2>/dev/null ||
	mount -t cgroup2 cgroup2 /sys/fs/cgroup || note "cgroup2 mount failed"
hostname kmvm

# Modules, each after its dependencies (list made on the host with modprobe --show-depends).
# /sbin/modprobe (busybox) and modules.dep are there too, so the kernel can autoload the rest.
while read -r m; do
	[ -n "$m" ] || continue
	insmod "/lib/modules/$(uname -r)/$m" || note "insmod $m failed"
done </km/modules.load

ip link set lo up || note "lo up failed"
[ -e /sys/kernel/btf/vmlinux ] || note "no /sys/kernel/btf/vmlinux"

status "KM-BOOTED kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"

mkdir -p /tmp/work
# /km/run.sh (written by the host) sets the environment and execs /km/test with its arguments.
(cd /tmp/work && exec /bin/sh /km/run.sh) >"$KM_OUT" 2>&1 </dev/null
rc=$?
# Leftover processes of the test may still hold KM_OUT: end them so their output drains too.
kill -KILL -1 2>/dev/null
sleep 0.2
# The last close of KM_OUT above waited for the device to drain, so the output is complete.
status "KM-RC $rc"
status "KM-DONE uptime=$(cut -d' ' -f1 /proc/uptime)"
halt_now
