// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/privtest"
)

// ourIDs returns the kernel IDs of the tracer's programs and links.
func ourIDs(t *testing.T, tr *Tracer) (progs, links map[uint32]bool) {
	t.Helper()
	progs, links = map[uint32]bool{}, map[uint32]bool{}
	for _, p := range tr.loader.progs {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		progs[uint32(id)] = true
	}
	for _, l := range tr.loader.links {
		if l == nil {
			continue // a program the poll runs, never attached
		}
		info, err := l.Info()
		if errors.Is(err, ebpf.ErrNotSupported) {
			continue // a kprobe as a perf event (before 5.15): no link ID; its program is checked
		}
		if err != nil {
			t.Fatal(err)
		}
		links[uint32(info.ID)] = true
	}
	return progs, links
}

// kernelIDs lists every program and link ID the kernel has now.
func kernelIDs(t *testing.T) (progs, links map[uint32]bool) {
	t.Helper()
	progs, links = map[uint32]bool{}, map[uint32]bool{}
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			break
		}
		progs[uint32(next)] = true
		id = next
	}
	it := new(link.Iterator)
	for it.Next() {
		links[uint32(it.ID)] = true
		it.Take().Close()
	}
	return progs, links
}

// bpftoolIDs lists program and link IDs as `bpftool prog list` / `link list`
// show them: the operator's view.
func bpftoolIDs(t *testing.T, bpftool string) (progs, links map[uint32]bool) {
	t.Helper()
	list := func(what string) map[uint32]bool {
		out, err := exec.Command(bpftool, "-j", what, "list").Output()
		if err != nil {
			t.Fatalf("bpftool %s list: %v", what, err)
		}
		var items []struct {
			ID uint32 `json:"id"`
		}
		if err := json.Unmarshal(out, &items); err != nil {
			t.Fatalf("bpftool %s list: %v", what, err)
		}
		ids := map[uint32]bool{}
		for _, i := range items {
			ids[i.ID] = true
		}
		return ids
	}
	return list("prog"), list("link")
}

// idView is one way of listing the kernel's program and link IDs.
type idView struct {
	name string
	list func() (progs, links map[uint32]bool)
}

// TestCloseLeavesNothing: after Close no program or link of the tracer is left
// in the kernel, as the kernel's ID lists and bpftool show; Close is idempotent.
// Without bpftool the kernel's ID lists are still checked, and then the test
// skips (off CI) or fails (under CI): the operator's view went unchecked.
func TestCloseLeavesNothing(t *testing.T) {
	tr := startTracer(t, Config{})
	bpftool, bpftoolErr := exec.LookPath("bpftool")
	progs, links := ourIDs(t, tr)
	if len(progs) == 0 || len(links) > len(progs) {
		t.Fatalf("tracer has %d programs and %d links", len(progs), len(links))
	}
	// Both views must list the running tracer, or empty lists after Close
	// would prove nothing.
	views := []idView{{"the kernel", func() (map[uint32]bool, map[uint32]bool) { return kernelIDs(t) }}}
	if bpftoolErr == nil {
		views = append(views, idView{"bpftool", func() (map[uint32]bool, map[uint32]bool) { return bpftoolIDs(t, bpftool) }})
	}
	for _, v := range views {
		vp, vl := v.list()
		for id := range progs {
			if !vp[id] {
				t.Fatalf("program %d not listed by %s while running", id, v.name)
			}
		}
		for id := range links {
			if !vl[id] {
				t.Fatalf("link %d not listed by %s while running", id, v.name)
			}
		}
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// The kernel frees a raw-tracepoint link's program after an RCU grace
	// period, so the IDs may linger for some milliseconds after Close returns.
	var left []string
	start := time.Now()
	for {
		left = left[:0]
		for _, v := range views {
			vp, vl := v.list()
			for id := range progs {
				if vp[id] {
					left = append(left, fmt.Sprintf("program %d (%s)", id, v.name))
				}
			}
			for id := range links {
				if vl[id] {
					left = append(left, fmt.Sprintf("link %d (%s)", id, v.name))
				}
			}
		}
		if len(left) == 0 || time.Since(start) > 5*time.Second {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Errorf("still in the kernel 5s after Close: %v", left)
	}
	t.Logf("all programs and links gone %v after Close", time.Since(start).Round(time.Millisecond))
	if bpftoolErr != nil {
		privtest.SkipOrFail(t, fmt.Errorf("checked with the kernel's ID lists only, bpftool's view not checked: %w", bpftoolErr))
	}
}
