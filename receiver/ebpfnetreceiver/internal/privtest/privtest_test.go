// SPDX-License-Identifier: Apache-2.0

package privtest

import (
	"runtime"
	"testing"
)

func TestEffectiveCapsParses(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/self/status")
	}
	if _, err := effectiveCaps(); err != nil {
		t.Fatalf("effectiveCaps: %v", err)
	}
}

func TestSkipOrFailNilIsNoop(t *testing.T) {
	SkipOrFail(t, nil) // must neither skip nor fail
}
