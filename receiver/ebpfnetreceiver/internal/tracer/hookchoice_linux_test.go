// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/privtest"
)

// kernelHooks is the hook each kernel of the matrix gives each piece of data,
// as the README's "Supported kernels" table says: tcp_state, tcp_destroy,
// tcp_close, tcp_counts, payload, udp_peers, udp_end, protocol. Keyed by architecture, kernel version
// (major.minor of uname -r) and the forced payload mode ("" for auto).
var kernelHooks = map[string][8]string{
	"amd64 5.10":        {"tp_btf", "tp_btf", "cgroup", "iter", "fexit", "cgroup", "fentry", "cgroup"},
	"amd64 5.10 kprobe": {"tp_btf", "tp_btf", "cgroup", "iter", "kprobe", "cgroup", "kprobe", "cgroup"},
	"amd64 6.1":         {"tp_btf", "tp_btf", "cgroup", "iter", "fexit", "cgroup", "cgroup", "cgroup"},
	"amd64 6.1 kprobe":  {"tp_btf", "tp_btf", "cgroup", "iter", "kprobe", "cgroup", "kprobe", "cgroup"},
	"amd64 6.12":        {"tp_btf", "tp_btf", "cgroup", "iter", "tp_btf", "cgroup", "cgroup", "cgroup"},
	// This machine kind and CI: its 6.18.44 refuses BPF iterators (EPERM, 2026-12-02), so the
	// poll runs the refresh program (raw_tp) instead.
	"amd64 6.18": {"tp_btf", "tp_btf", "cgroup", "raw_tp", "tp_btf", "cgroup", "cgroup", "cgroup"},
	"amd64 7.3":  {"tp_btf", "tp_btf", "cgroup", "iter", "tp_btf", "cgroup", "cgroup", "cgroup"},
	// arm64 6.1 has no fexit ("create raw tracepoint: not supported"), so its
	// payload falls back to kprobes on its own, and the UDP end with it.
	"arm64 6.1":  {"tp_btf", "tp_btf", "cgroup", "iter", "kprobe", "cgroup", "kprobe", "cgroup"},
	"arm64 6.12": {"tp_btf", "tp_btf", "cgroup", "iter", "tp_btf", "cgroup", "cgroup", "cgroup"},
	"arm64 7.3":  {"tp_btf", "tp_btf", "cgroup", "iter", "tp_btf", "cgroup", "cgroup", "cgroup"},
}

// TestHookChoiceMatchesTable: on every kernel of the matrix the tracer picks
// exactly the hooks the README's table gives it, so a verifier or kernel
// regression that makes it fall back to a weaker hook fails instead of
// passing quietly. A kernel the table does not know fails under CI (add its
// row) and is skipped elsewhere (a developer's own kernel).
func TestHookChoiceMatchesTable(t *testing.T) {
	privtest.Require(t)
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	version := strings.Join(strings.SplitN(release, ".", 3)[:2], ".")
	key := runtime.GOARCH + " " + version
	if forced := os.Getenv(hooksEnv); forced != "" && forced != HooksAuto {
		key += " " + forced
	}
	want, ok := kernelHooks[key]
	if !ok {
		privtest.SkipOrFail(t, fmt.Errorf("kernel %s (%s) has no row in kernelHooks: add what the matrix shows", release, key))
	}
	tr := startTracer(t, Config{ClassifyProtocols: true})
	got := map[string]string{}
	for _, h := range tr.Hooks() {
		got[h.Data] = h.Hook
	}
	for i, data := range []string{"tcp_state", "tcp_destroy", "tcp_close", "tcp_counts", "payload", "udp_peers", "udp_end", "protocol"} {
		if got[data] != want[i] {
			t.Errorf("%s on %s: hook %q, the table says %q", data, key, got[data], want[i])
		}
	}
}
