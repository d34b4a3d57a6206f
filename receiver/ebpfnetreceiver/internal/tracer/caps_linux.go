// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"fmt"
	"os"
	"strings"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/caps"
)

// checkPrerequisites tells what is missing before anything is loaded, so the
// error names the cause instead of a verifier or EPERM message.
func checkPrerequisites() error {
	if _, err := os.Stat(caps.KernelBTF); err != nil {
		return fmt.Errorf("%w: %w (the kernel needs CONFIG_DEBUG_INFO_BTF=y, standard on Linux 5.10+ distribution kernels)", ErrNoBTF, err)
	}
	eff, err := caps.Effective()
	if err != nil {
		return fmt.Errorf("read capabilities: %w", err)
	}
	return missingCaps(eff)
}

// missingCaps returns an error naming each capability the effective set
// lacks, or nil.
func missingCaps(eff uint64) error {
	missing := caps.MissingForBPF(eff)
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w %s: run as root or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (setcap, or systemd AmbientCapabilities)",
		ErrMissingCapability, strings.Join(missing, ", "))
}
