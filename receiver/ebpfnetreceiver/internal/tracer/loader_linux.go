// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"go.uber.org/zap"
)

// kretprobeMaxActive is how many calls of one function a kretprobe tracks at once.
const kretprobeMaxActive = 4096

// loader loads and attaches programs one by one against maps loaded once.
type loader struct {
	spec       *ebpf.CollectionSpec
	maps       map[string]*ebpf.Map // every map of spec, by name
	cgroupPath string
	kernelBTF  *btf.Spec
	log        *zap.Logger

	progs []loadedProgram
	links []link.Link // links[i] attaches progs[i]; nil for a program the poll runs
	run   *ebpf.Program
}

// loadedProgram is a program of the object loaded into the kernel, by the
// name it has in the object (the kernel keeps only 15 characters of it).
type loadedProgram struct {
	*ebpf.Program
	name string
	role role
	data string // the data point it serves (dataPoint.name)
}

// choose attaches one candidate per data point, trying them in order. allowed
// filters candidates (the forcing option, and what earlier choices permit); a
// data point with no candidate that attaches is an error naming each attempt.
func (l *loader) choose(points []dataPoint, allowed func(dataPoint, candidate, []Hook) bool) ([]Hook, error) {
	var chosen []Hook
	for _, dp := range points {
		var attempts []string
		ok := false
		for _, c := range dp.candidates {
			if !allowed(dp, c, chosen) {
				continue
			}
			err := l.tryCandidate(dp.name, c)
			if err == nil {
				chosen = append(chosen, Hook{Data: dp.name, Mode: c.mode, Hook: c.sub, Gives: dp.gives})
				ok = true
				break
			}
			attempts = append(attempts, fmt.Sprintf("%s: %v", c.sub, err))
			l.log.Debug("hook candidate unavailable", zap.String("data", dp.name), zap.String("mode", c.sub), zap.Error(err))
		}
		if !ok {
			if len(attempts) == 0 {
				attempts = append(attempts, "no candidate allowed by the hooks option")
			}
			return chosen, fmt.Errorf("%w: no way to get %s on this kernel (%s)", ErrHookUnavailable, dp.gives, strings.Join(attempts, "; "))
		}
	}
	return chosen, nil
}

// tryCandidate loads and attaches every program of c, or leaves nothing behind.
func (l *loader) tryCandidate(data string, c candidate) error {
	var progs []loadedProgram
	var links []link.Link
	var runProg *ebpf.Program
	undo := func() {
		_ = closeLinks(links)
		for _, p := range progs {
			p.Close()
		}
	}
	for _, p := range c.programs {
		ps, err := l.pick(p)
		if err != nil {
			if p.optional {
				continue
			}
			undo()
			return err
		}
		prog, err := l.load(ps)
		if err != nil {
			undo()
			return err // names the program
		}
		progs = append(progs, loadedProgram{prog, ps.Name, p.role, data})
		var lk link.Link
		if p.kind == attachRun {
			// Run once now: a kernel that loads it but cannot run it (no raw_tp
			// test runs before 5.10) must fail here, not at the first poll.
			if _, err := prog.Run(&ebpf.RunOptions{}); err != nil {
				undo()
				return fmt.Errorf("run %s: %w", ps.Name, err)
			}
			runProg = prog
		} else if lk, err = l.attach(p, ps, prog); err != nil {
			undo()
			return fmt.Errorf("attach %s: %w", ps.Name, err)
		}
		links = append(links, lk)
	}
	l.progs = append(l.progs, progs...)
	l.links = append(l.links, links...)
	if runProg != nil {
		l.run = runProg
	}
	return nil
}

// pick checks in the kernel's BTF that p's target exists and returns the
// program to load: for a recvmsg function, the variant its prototype takes.
// Tracepoints are looked up as btf_trace_<name>; raw tracepoints and cgroup
// hooks are not checked (their load or attach says).
func (l *loader) pick(p program) (*ebpf.ProgramSpec, error) {
	switch p.kind {
	case attachRawTP, attachCgroup, attachIter, attachRun:
		return p.spec, nil
	case attachTPBTF:
		var td *btf.Typedef
		if err := l.kernelBTF.TypeByName("btf_trace_"+p.target, &td); err != nil {
			return nil, fmt.Errorf("tracepoint %s: %w", p.target, err)
		}
		return p.spec, nil
	}
	var fn *btf.Func
	if err := l.kernelBTF.TypeByName(p.target, &fn); err != nil {
		return nil, fmt.Errorf("kernel function %s: %w", p.target, err)
	}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok {
		return nil, fmt.Errorf("kernel function %s: no prototype", p.target)
	}
	if p.byArgs == nil {
		return p.spec, nil
	}
	ps, ok := p.byArgs[len(proto.Params)]
	if !ok {
		return nil, fmt.Errorf("kernel function %s takes %d arguments, the tracer knows the 5- and 6-argument forms", p.target, len(proto.Params))
	}
	return ps, nil
}

// load loads one program of the object against the maps loaded once.
func (l *loader) load(ps *ebpf.ProgramSpec) (*ebpf.Program, error) {
	sub := &ebpf.CollectionSpec{Maps: l.spec.Maps, Programs: map[string]*ebpf.ProgramSpec{ps.Name: ps}, Variables: l.spec.Variables, Types: l.spec.Types, ByteOrder: l.spec.ByteOrder}
	coll, err := ebpf.NewCollectionWithOptions(sub, ebpf.CollectionOptions{MapReplacements: l.maps, Programs: ebpf.ProgramOptions{KernelTypes: l.kernelBTF}})
	if err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			l.log.Debug("verifier", zap.String("program", ps.Name), zap.String("log", fmt.Sprintf("%+v", verr)))
		}
		return nil, err
	}
	defer coll.Close()
	return coll.DetachProgram(ps.Name), nil
}

func (l *loader) attach(p program, ps *ebpf.ProgramSpec, prog *ebpf.Program) (link.Link, error) {
	switch p.kind {
	case attachTPBTF, attachTracing:
		return link.AttachTracing(link.TracingOptions{Program: prog})
	case attachRawTP:
		return link.AttachRawTracepoint(link.RawTracepointOptions{Name: p.target, Program: prog})
	case attachKprobe:
		return link.Kprobe(p.target, prog, nil)
	case attachKretprobe:
		// A kretprobe tracks at most maxactive calls in flight (default max(10, 2 x CPUs));
		// returns beyond that are missed, and with them bytes. Ask for room for every
		// thread that may block in sendmsg/recvmsg; that needs tracefs, so fall back to the
		// default and say so when it is not there.
		lk, err := link.Kretprobe(p.target, prog, &link.KprobeOptions{RetprobeMaxActive: kretprobeMaxActive})
		if err == nil {
			return lk, nil
		}
		l.log.Warn("kretprobe with the kernel's default maxactive: concurrent calls beyond it are missed", zap.String("function", p.target), zap.Error(err))
		return link.Kretprobe(p.target, prog, nil)
	case attachCgroup:
		return link.AttachCgroup(link.CgroupOptions{Path: l.cgroupPath, Attach: ps.AttachType, Program: prog})
	case attachIter:
		m, ok := l.maps[p.target]
		if !ok {
			return nil, fmt.Errorf("iterator over map %s: no such map in the object", p.target)
		}
		return link.AttachIter(link.IterOptions{Program: prog, Map: m})
	}
	return nil, fmt.Errorf("unknown attach kind %d", p.kind)
}

// refresher returns the program the poll runs before it reads the table, or
// nil when an iterator reads it.
func (l *loader) refresher() *ebpf.Program { return l.run }

// iterator returns the attached BPF iterator, or nil when none is.
func (l *loader) iterator() *link.Iter {
	for _, lk := range l.links {
		if it, ok := lk.(*link.Iter); ok {
			return it
		}
	}
	return nil
}

// close detaches and unloads every program the loader attached.
func (l *loader) close() error {
	err := closeLinks(l.links)
	for _, p := range l.progs {
		p.Close()
	}
	l.links, l.progs, l.run = nil, nil, nil
	return err
}

func closeLinks(links []link.Link) error {
	var errs []error
	for _, l := range links {
		if l == nil {
			continue // a program the poll runs
		}
		if err := l.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
