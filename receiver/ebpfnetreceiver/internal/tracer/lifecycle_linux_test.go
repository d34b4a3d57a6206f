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
func bpftoolIDs(t *testing.T) (progs, links map[uint32]bool, ok bool) {
	t.Helper()
	if _, err := exec.LookPath("bpftool"); err != nil {
		return nil, nil, false
	}
	list := func(what string) map[uint32]bool {
		out, err := exec.Command("bpftool", "-j", what, "list").Output()
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
	return list("prog"), list("link"), true
}

// TestCloseLeavesNothing: after Close no program or link of the tracer is left
// in the kernel, as the kernel's ID lists and bpftool show; Close is idempotent.
func TestCloseLeavesNothing(t *testing.T) {
	tr := startTracer(t, Config{})
	progs, links := ourIDs(t, tr)
	if len(progs) == 0 || len(links) > len(progs) {
		t.Fatalf("tracer has %d programs and %d links", len(progs), len(links))
	}
	kp, kl := kernelIDs(t)
	for id := range progs {
		if !kp[id] {
			t.Fatalf("program %d not listed by the kernel while running", id)
		}
	}
	for id := range links {
		if !kl[id] {
			t.Fatalf("link %d not listed by the kernel while running", id)
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
		kp, kl = kernelIDs(t)
		bp, bl, haveBpftool := bpftoolIDs(t)
		left = left[:0]
		for id := range progs {
			if kp[id] || haveBpftool && bp[id] {
				left = append(left, fmt.Sprintf("program %d", id))
			}
		}
		for id := range links {
			if kl[id] || haveBpftool && bl[id] {
				left = append(left, fmt.Sprintf("link %d", id))
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
	_, _, haveBpftool := bpftoolIDs(t)
	if !haveBpftool {
		t.Log("bpftool not installed: checked with the kernel's ID lists only")
	}
}
