// SPDX-License-Identifier: Apache-2.0

// Package privtest is the one gate every privileged test goes through: tests
// that need to load BPF programs call Require first, and SkipOrFail on any
// error that means "this machine cannot run BPF" (no BTF, missing capability,
// hook unavailable).
//
// Off CI such a test skips and says what is missing, so `go test ./...` works
// for anyone. When the CI environment variable is set (GitHub Actions and
// most CI systems set CI=true), the same condition fails the test: CI is
// where the privileged tests must actually run, and a silent skip there would
// hide a broken runner.
//
// The package depends on the stdlib (and the stdlib-only caps) alone, so any
// test package can import it.
package privtest

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/caps"
)

// BTFPath is where the kernel exposes its own BTF; CO-RE programs need it.
const BTFPath = caps.KernelBTF

// InCI reports whether the tests run under CI, where privileged tests must
// not be skipped.
func InCI() bool { return os.Getenv("CI") != "" }

// Require skips (off CI) or fails (under CI) t unless this process can load
// and attach BPF programs: Linux, kernel BTF at BTFPath, and either root or the
// capabilities CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN. On an OS other than
// Linux it always skips, even under CI: there is nothing to run there.
func Require(t testing.TB) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("privileged eBPF test: needs Linux, running on %s", runtime.GOOS)
	}
	var missing []string
	if _, err := os.Stat(BTFPath); err != nil {
		missing = append(missing, fmt.Sprintf("kernel BTF (%v)", err))
	}
	if caps := missingCaps(); len(caps) > 0 {
		missing = append(missing, "capabilities "+strings.Join(caps, ", ")+" (run as root)")
	}
	if len(missing) > 0 {
		SkipOrFail(t, errors.New("missing "+strings.Join(missing, "; ")))
	}
}

// SkipOrFail ends t when err is not nil: it skips with err as the reason off
// CI and fails under CI. Use it only for errors that mean the environment
// cannot run the test (the tracer's "no BTF", "missing capability", "hook
// unavailable" errors), never for a wrong result.
func SkipOrFail(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if InCI() {
		t.Fatalf("privileged eBPF test cannot run: %v (CI is set: privileged tests must run here)", err)
	}
	t.Skipf("privileged eBPF test skipped: %v (set CI=1 to make this a failure)", err)
}

// missingCaps lists the capabilities this process lacks to load BPF.
func missingCaps() []string {
	eff, err := caps.Effective()
	if err != nil {
		if os.Geteuid() == 0 {
			return nil
		}
		return caps.MissingForBPF(0)
	}
	return caps.MissingForBPF(eff)
}
