// SPDX-License-Identifier: Apache-2.0

//go:build linux

package floor

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Prefix starts the name of every floor program.
const Prefix = "floor_"

// Floor is the set of attached empty programs.
type Floor struct {
	objs  floorObjects
	links []link.Link
}

// Attach loads the empty programs and attaches them: tp_btf programs on their
// tracepoints, cgroup programs on the cgroup2 root (found in /proc/self/mounts).
func Attach() (*Floor, error) {
	cg, err := cgroup2Root()
	if err != nil {
		return nil, err
	}
	f := &Floor{}
	if err := loadFloorObjects(&f.objs, nil); err != nil {
		return nil, fmt.Errorf("floor: load: %w", err)
	}
	p := &f.objs.floorPrograms
	for _, prog := range []*ebpf.Program{p.FloorTpSend, p.FloorTpRecv, p.FloorTpState, p.FloorTpDestroy} {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			return nil, errors.Join(fmt.Errorf("floor: attach %s: %w", prog, err), f.Close())
		}
		f.links = append(f.links, l)
	}
	spec, err := loadFloor()
	if err != nil {
		return nil, errors.Join(fmt.Errorf("floor: spec: %w", err), f.Close())
	}
	for name, prog := range map[string]*ebpf.Program{"floor_cg_send4": p.FloorCgSend4, "floor_cg_send6": p.FloorCgSend6,
		"floor_cg_recv4": p.FloorCgRecv4, "floor_cg_recv6": p.FloorCgRecv6, "floor_cg_release": p.FloorCgRelease,
		"floor_cg_skbout": p.FloorCgSkbout, "floor_cg_skbin": p.FloorCgSkbin} {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: cg, Attach: spec.Programs[name].AttachType, Program: prog})
		if err != nil {
			return nil, errors.Join(fmt.Errorf("floor: attach %s on %s: %w", name, cg, err), f.Close())
		}
		f.links = append(f.links, l)
	}
	return f, nil
}

// Close detaches and unloads everything.
func (f *Floor) Close() error {
	var errs []error
	for _, l := range f.links {
		errs = append(errs, l.Close())
	}
	f.links = nil
	errs = append(errs, f.objs.Close())
	return errors.Join(errs...)
}

func cgroup2Root() (string, error) {
	fh, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "", err
	}
	defer fh.Close()
	best := ""
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[2] == "cgroup2" {
			if p := strings.ReplaceAll(fields[1], `\040`, " "); best == "" || len(p) < len(best) {
				best = p
			}
		}
	}
	if best == "" {
		return "", errors.New("floor: no cgroup2 file system mounted")
	}
	return best, nil
}
