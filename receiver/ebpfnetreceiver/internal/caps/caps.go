// SPDX-License-Identifier: Apache-2.0

// Package caps tells which Linux capabilities this process has, and which of
// those BPF needs it lacks, and where the kernel BTF the tracer also needs is.
// Stdlib only: the tracer and the privileged-test gate both use it.
package caps

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
)

// KernelBTF is where the kernel exposes its own BTF; CO-RE programs need it
// (CONFIG_DEBUG_INFO_BTF=y).
const KernelBTF = "/sys/kernel/btf/vmlinux"

// Capability numbers from include/uapi/linux/capability.h.
const (
	NetAdmin = 12
	SysAdmin = 21
	Perfmon  = 38
	BPF      = 39
)

// Effective reads this process's effective capability set from /proc.
func Effective() (uint64, error) {
	v, err := statusField("CapEff")
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(v, 16, 64)
}

// SeccompFiltered reports whether a seccomp filter constrains this process's
// system calls (Seccomp: 2 in /proc/self/status), as a container runtime's
// default profile does: it may refuse bpf(2) whatever the capabilities.
func SeccompFiltered() bool {
	v, err := statusField("Seccomp")
	return err == nil && v == "2"
}

// statusField returns the value of one field of /proc/self/status.
func statusField(name string) (string, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no " + name + " line in /proc/self/status")
}

// MissingForBPF names the capabilities eff lacks to load tracing programs
// (CAP_BPF, CAP_PERFMON) and attach cgroup programs (CAP_NET_ADMIN).
// CAP_SYS_ADMIN stands in for each, as the kernel allows.
func MissingForBPF(eff uint64) []string {
	has := func(c uint) bool { return eff&(1<<c) != 0 || eff&(1<<SysAdmin) != 0 }
	var missing []string
	for _, c := range []struct {
		n    uint
		name string
	}{{BPF, "CAP_BPF"}, {Perfmon, "CAP_PERFMON"}, {NetAdmin, "CAP_NET_ADMIN"}} {
		if !has(c.n) {
			missing = append(missing, c.name)
		}
	}
	return missing
}
