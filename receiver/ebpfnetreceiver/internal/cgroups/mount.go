// SPDX-License-Identifier: Apache-2.0

package cgroups

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
)

// FindMount returns the shortest cgroup2 mount point in a mounts table in
// the /proc/self/mounts format (the root of the hierarchy when it is
// mounted more than once, as bind mounts into containers do), or "".
func FindMount(r io.Reader) string {
	best := ""
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[2] == "cgroup2" {
			// Mount points escape spaces as \040.
			p := strings.ReplaceAll(fields[1], `\040`, " ")
			if best == "" || len(p) < len(best) {
				best = p
			}
		}
	}
	return best
}

// MountPoint finds where this process sees the cgroup2 hierarchy:
// /sys/fs/cgroup on unified systems, /sys/fs/cgroup/unified on hybrid ones.
func MountPoint() (string, error) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "", fmt.Errorf("cgroup2 mount: %w", err)
	}
	defer f.Close()
	if p := FindMount(f); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("cgroup2 mount: %w", ErrNoCgroup2)
}
