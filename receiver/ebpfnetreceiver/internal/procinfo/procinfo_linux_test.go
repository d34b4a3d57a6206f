// SPDX-License-Identifier: Apache-2.0

//go:build linux

package procinfo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/cgroups"
)

// TestIdentityFromCgroupFile: the /proc/<pid>/cgroup fallback takes the
// cgroup v2 line, else the first v1 hierarchy naming a container.
func TestIdentityFromCgroupFile(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const pod = "6a1e2f4b-3c5d-4e7f-8a9b-0c1d2e3f4a5b"
	tests := map[string]cgroups.Identity{
		"0::/system.slice/docker-" + id + ".scope\n": {ContainerID: id, Runtime: cgroups.RuntimeDocker},
		"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(pod, "-", "_") + ".slice/cri-containerd-" + id + ".scope\n": {
			ContainerID: id, PodUID: pod, Runtime: cgroups.RuntimeContainerd},
		"12:memory:/docker/" + id + "\n11:pids:/docker/" + id + "\n0::/\n": {ContainerID: id, Runtime: cgroups.RuntimeDocker},
		"0::/machine.slice/libpod-" + id + ".scope/container\n":            {ContainerID: id, Runtime: cgroups.RuntimePodman},
		"0::/user.slice/user-1000.slice/session-2.scope\n":                 {},
		"garbage\n": {},
	}
	for cgroup, want := range tests {
		if got := identityFromCgroupFile(cgroup); got != want {
			t.Errorf("%q: got %+v, want %+v", cgroup, got, want)
		}
	}
}

func TestResolverSelf(t *testing.T) {
	r := New(Options{CommandLine: true})
	pid := uint32(os.Getpid())
	res := r.Resolve(pid, 1, 0)
	exe, _ := os.Executable()
	if res.ExecutableName != filepath.Base(exe) || res.PID != pid || res.Netns != 1 || res.CommandLine == "" {
		t.Fatalf("%+v", res)
	}
	if len(r.cache) != 1 {
		t.Fatalf("not cached")
	}
	r.Prune(time.Now().Add(2 * cacheTTL))
	if len(r.cache) != 0 {
		t.Fatalf("not pruned")
	}
}
