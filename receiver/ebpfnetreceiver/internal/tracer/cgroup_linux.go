// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
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
	if p := findCgroup2(f); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("%w: no cgroup2 file system is mounted (needed for the UDP peer and socket release hooks); mount one, e.g. `mount -t cgroup2 none /sys/fs/cgroup/unified`", ErrHookUnavailable)
}

// findCgroup2 returns the shortest cgroup2 mount point in a mounts table (the
// root of the hierarchy when it is mounted more than once), or "".
func findCgroup2(r io.Reader) string {
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
