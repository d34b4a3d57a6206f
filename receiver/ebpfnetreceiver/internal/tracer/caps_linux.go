// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Capability numbers from include/uapi/linux/capability.h.
const (
	capNetAdmin = 12
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

const btfPath = "/sys/kernel/btf/vmlinux"

// checkPrerequisites tells what is missing before anything is loaded, so the
// error names the cause instead of a verifier or EPERM message.
func checkPrerequisites() error {
	if _, err := os.Stat(btfPath); err != nil {
		return fmt.Errorf("ebpfnet tracer: %w: %s: %w (the kernel needs CONFIG_DEBUG_INFO_BTF=y, standard on Linux 5.10+ distribution kernels)", ErrNoBTF, btfPath, err)
	}
	eff, err := effectiveCaps()
	if err != nil {
		return fmt.Errorf("ebpfnet tracer: read capabilities: %w", err)
	}
	return missingCaps(eff)
}

// missingCaps returns an error naming each capability the effective set
// lacks. CAP_SYS_ADMIN stands in for all three, as the kernel allows.
func missingCaps(eff uint64) error {
	has := func(c uint) bool { return eff&(1<<c) != 0 || eff&(1<<capSysAdmin) != 0 }
	var missing []string
	for _, c := range []struct {
		n    uint
		name string
	}{{capBPF, "CAP_BPF"}, {capPerfmon, "CAP_PERFMON"}, {capNetAdmin, "CAP_NET_ADMIN"}} {
		if !has(c.n) {
			missing = append(missing, c.name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("ebpfnet tracer: %w %s: run as root or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (setcap, or systemd AmbientCapabilities)",
		ErrMissingCapability, strings.Join(missing, ", "))
}

func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no CapEff line in /proc/self/status")
}
