// SPDX-License-Identifier: Apache-2.0

package caps

import (
	"reflect"
	"runtime"
	"testing"
)

func TestMissingForBPF(t *testing.T) {
	missing := map[uint64][]string{ // effective set -> what is missing
		1<<BPF | 1<<Perfmon | 1<<NetAdmin: nil,
		1 << SysAdmin:                     nil,
		1 << NetAdmin:                     {"CAP_BPF", "CAP_PERFMON"},
		0:                                 {"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"},
	}
	for eff, want := range missing {
		if got := MissingForBPF(eff); !reflect.DeepEqual(got, want) {
			t.Errorf("MissingForBPF(%#x) = %v, want %v", eff, got, want)
		}
	}
}

func TestEffectiveParses(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("reads /proc/self/status, which only Linux has")
	}
	if _, err := Effective(); err != nil {
		t.Fatal(err)
	}
}
