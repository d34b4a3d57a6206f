// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"fmt"
	"os"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/cgroups"
)

// cgroup2Root finds where the cgroup2 hierarchy is mounted: /sys/fs/cgroup on
// unified systems, /sys/fs/cgroup/unified on hybrid ones, elsewhere in
// containers. Programs attached there see every socket of every process.
func cgroup2Root() (string, error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "", err
	}
	defer f.Close()
	if p := cgroups.FindMount(f); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("%w: no cgroup2 file system is mounted (needed for the UDP peer and socket release hooks); mount one, e.g. `mount -t cgroup2 none /sys/fs/cgroup/unified`", ErrHookUnavailable)
}
