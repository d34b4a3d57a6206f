// SPDX-License-Identifier: Apache-2.0

// Package hostconnstest gates the tests of tools built on hostconns
// (cmd/nettop) with the receiver's own rules for privileged tests
// (internal/privtest, which they cannot import): off CI a host that cannot
// run the tracer skips them with the reason, under CI=true it fails them.
package hostconnstest

import (
	"errors"
	"testing"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/hostconns"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/privtest"
)

// Require skips (off CI) or fails (under CI) t unless this process can load
// BPF: Linux, kernel BTF, root or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN.
func Require(t testing.TB) {
	t.Helper()
	privtest.Require(t)
}

// CannotRunHere reports whether err, from hostconns.Open, means this host
// cannot run the tracer (a missing capability, BTF or kernel hook, another
// OS) rather than a bug.
func CannotRunHere(err error) bool {
	for _, e := range []error{hostconns.ErrMissingCapability, hostconns.ErrNoBTF, hostconns.ErrHookUnavailable, hostconns.ErrUnsupportedOS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// SkipOrFail ends t when err is not nil: a skip off CI, a failure under CI.
// Use it only for errors CannotRunHere accepts, never for a wrong result.
func SkipOrFail(t testing.TB, err error) {
	t.Helper()
	privtest.SkipOrFail(t, err)
}
