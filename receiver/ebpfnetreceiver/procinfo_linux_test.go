// SPDX-License-Identifier: Apache-2.0

//go:build linux

package ebpfnetreceiver

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestContainerIDFromCgroup(t *testing.T) {
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := map[string]string{
		"0::/system.slice/docker-" + id + ".scope\n":                                    id,
		"0::/kubepods.slice/kubepods-burstable.slice/cri-containerd-" + id + ".scope\n": id,
		"12:memory:/docker/" + id + "\n":                                                id,
		"0::/machine.slice/libpod-" + id + ".scope/container\n":                         id,
		"0::/user.slice/user-1000.slice/session-2.scope\n":                              "",
	}
	for cgroup, want := range tests {
		if got := containerIDFromCgroup(cgroup); got != want {
			t.Errorf("%q: got %q, want %q", cgroup, got, want)
		}
	}
}

func TestProcResolverSelf(t *testing.T) {
	cfg := createDefaultConfig()
	cfg.ResourceAttributes.ProcessCommandLine.Enabled = true
	r := newProcResolver(cfg).(*procResolver)
	pid := uint32(os.Getpid())
	res := r.resolve(pid, 1)
	exe, _ := os.Executable()
	if res.ExecutableName != filepath.Base(exe) || res.PID != pid || res.Netns != 1 || res.CommandLine == "" {
		t.Fatalf("%+v", res)
	}
	if len(r.cache) != 1 {
		t.Fatalf("not cached")
	}
	r.prune(time.Now().Add(2 * procCacheTTL))
	if len(r.cache) != 0 {
		t.Fatalf("not pruned")
	}
}
