// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"errors"
	"os"
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/privtest"
)

// TestHookModes forces each payload mode in turn. On every kernel the result
// is one of two: the tracer starts and reports that mode for the payload, or
// it fails with ErrHookUnavailable naming what it tried. The automatic choice
// must succeed, and its choice is logged for the kernel matrix.
func TestHookModes(t *testing.T) {
	privtest.Require(t)
	for _, mode := range []string{ModeTracepoint, ModeFentry, ModeKprobe} {
		tr, err := New(Config{Hooks: mode, Logger: zaptest.NewLogger(t)})
		if err != nil {
			if !errors.Is(err, ErrHookUnavailable) || !strings.Contains(err.Error(), "UDP payload") {
				t.Errorf("hooks=%s: error does not say which hook is missing: %v", mode, err)
			}
			t.Logf("hooks=%s unavailable on this kernel: %v", mode, err)
			continue
		}
		for _, h := range tr.Hooks() {
			if h.Data == "payload" && h.Mode != mode {
				t.Errorf("hooks=%s: payload traced with %s", mode, h.Mode)
			}
			if h.Data == "udp_end" && mode == ModeKprobe && h.Mode != ModeKprobe {
				t.Errorf("hooks=kprobe: UDP socket end traced with %s", h.Mode)
			}
		}
		t.Logf("hooks=%s available: %+v", mode, tr.Hooks())
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
	}
	tr := startTracer(t, Config{Hooks: os.Getenv(hooksEnv)})
	for _, h := range tr.Hooks() {
		t.Logf("KERNEL-MATRIX hook data=%s mode=%s via=%s", h.Data, h.Mode, h.Hook)
	}
	if _, err := New(Config{Hooks: "bogus"}); err == nil || !strings.Contains(err.Error(), "tracepoint, fentry, kprobe") {
		t.Errorf("hooks=bogus: %v", err)
	}
}
