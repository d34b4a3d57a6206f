// SPDX-License-Identifier: Apache-2.0

package caps

import (
	"reflect"
	"runtime"
	"testing"
)

func TestMissingForBPF(t *testing.T) {
	for _, c := range []struct {
		eff  uint64
		want []string
	}{
		{1<<BPF | 1<<Perfmon | 1<<NetAdmin, nil},
		{1 << SysAdmin, nil},
		{1 << NetAdmin, []string{"CAP_BPF", "CAP_PERFMON"}},
		{0, []string{"CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN"}},
	} {
		if got := MissingForBPF(c.eff); !reflect.DeepEqual(got, c.want) {
			t.Errorf("MissingForBPF(%#x) = %v, want %v", c.eff, got, c.want)
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
