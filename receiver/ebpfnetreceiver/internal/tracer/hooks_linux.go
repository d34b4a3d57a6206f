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

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// Hook modes, from the most to the least preferred. A mode is chosen per data
// point by trying it on the running kernel: feature probes mislead (on some
// kernels kprobes "are available" but cannot attach, tracing programs "are
// not supported" although tp_btf works).
const (
	ModeTracepoint = "tracepoint" // tp_btf, else raw_tp: stable, no trampoline, no kprobe
	ModeFentry     = "fentry"     // fexit/fentry trampolines on kernel functions (5.5+)
	ModeKprobe     = "kprobe"     // kprobe/kretprobe (CONFIG_KPROBES)
	ModeCgroup     = "cgroup"     // cgroup hooks on the cgroup2 root
)

// attachKind says how one program is attached.
type attachKind int

const (
	attachTracing   attachKind = iota // tp_btf, fentry, fexit: target is in the program
	attachRawTP                       // raw_tp: target is a tracepoint name
	attachKprobe                      // kprobe on target
	attachKretprobe                   // kretprobe on target
	attachCgroup                      // cgroup program on the cgroup2 root
)

// kretprobeMaxActive is how many calls of one function a kretprobe tracks at once.
const kretprobeMaxActive = 4096

// program is one BPF program of a candidate.
type program struct {
	name   string
	kind   attachKind
	target string // kernel function or tracepoint; for BTF checks and kprobes
	// recvArgs: the program exists as name+"5" and name+"6", for the two
	// prototypes recvmsg functions have had; the kernel's BTF picks one.
	recvArgs bool
	// optional: attached when the kernel has target, skipped when it does not
	// (tcp_sendpage is gone from 6.5).
	optional bool
}

// candidate is one way to get a data point: all its programs attach, or none.
type candidate struct {
	mode     string
	sub      string // finer mode for the log: tp_btf, raw_tp
	programs []program
}

// dataPoint is one piece of data the tracer needs, with its candidates best first.
type dataPoint struct {
	name       string
	gives      string
	candidates []candidate
}

// withBackup is a tp_btf primary and its backup on the same tracepoint, in
// that order: the kernel runs a tracepoint's programs in attach order, and the
// backup handles only the events the kernel skipped the primary for (see
// bpf/maps/guard.h).
func withBackup(name, tracepoint string) []program {
	return []program{
		{name: "enet_tp_" + name, kind: attachTracing, target: tracepoint},
		{name: "enet_tb_" + name, kind: attachTracing, target: tracepoint},
	}
}

func kprobePair(name, fn string) []program {
	return []program{{name: "enet_kp_" + name, kind: attachKprobe, target: fn}, {name: "enet_kr_" + name, kind: attachKretprobe, target: fn}}
}

func kprobeRecv(name, fn string) []program {
	return []program{{name: "enet_kp_" + name, kind: attachKprobe, target: fn, recvArgs: true}, {name: "enet_kr_" + name, kind: attachKretprobe, target: fn}}
}

// hookTable is every way the tracer can get its data, in order of preference.
func hookTable() []dataPoint {
	tcpSendPage := program{name: "enet_kp_tpage", kind: attachKprobe, target: "tcp_sendpage", optional: true}
	tcpSendPageRet := program{name: "enet_kr_tpage", kind: attachKretprobe, target: "tcp_sendpage", optional: true}
	return []dataPoint{
		{name: "tcp_state", gives: "TCP open, close, direction and failures", candidates: []candidate{
			{ModeTracepoint, "tp_btf", withBackup("state", "inet_sock_set_state")},
			{ModeTracepoint, "raw_tp", []program{{name: "enet_rt_state", kind: attachRawTP, target: "inet_sock_set_state"}}},
		}},
		{name: "tcp_destroy", gives: "the final counters of TCP connections", candidates: []candidate{
			{ModeTracepoint, "tp_btf", withBackup("destroy", "tcp_destroy_sock")},
			{ModeTracepoint, "raw_tp", []program{{name: "enet_rt_destroy", kind: attachRawTP, target: "tcp_destroy_sock"}}},
		}},
		{name: "payload", gives: "bytes and packets sent and received", candidates: []candidate{
			{ModeTracepoint, "tp_btf", concat(withBackup("send", "sock_send_length"), withBackup("recv", "sock_recv_length"))},
			{ModeFentry, "fexit", []program{
				{name: "enet_fx_tsend", kind: attachTracing, target: "tcp_sendmsg"},
				{name: "enet_fx_tpage", kind: attachTracing, target: "tcp_sendpage", optional: true},
				{name: "enet_fx_usend", kind: attachTracing, target: "udp_sendmsg"},
				{name: "enet_fx_u6send", kind: attachTracing, target: "udpv6_sendmsg"},
				{name: "enet_fx_trecv", kind: attachTracing, target: "tcp_recvmsg", recvArgs: true},
				{name: "enet_fx_urecv", kind: attachTracing, target: "udp_recvmsg", recvArgs: true},
				{name: "enet_fx_u6recv", kind: attachTracing, target: "udpv6_recvmsg", recvArgs: true},
			}},
			{ModeKprobe, "kprobe", concat(kprobePair("tsend", "tcp_sendmsg"), []program{tcpSendPage, tcpSendPageRet},
				kprobePair("usend", "udp_sendmsg"), kprobePair("u6send", "udpv6_sendmsg"),
				kprobeRecv("trecv", "tcp_recvmsg"), kprobeRecv("urecv", "udp_recvmsg"), kprobeRecv("u6recv", "udpv6_recvmsg"))},
		}},
		{name: "udp_peers", gives: "peers of unconnected UDP sockets", candidates: []candidate{
			{ModeCgroup, "cgroup", []program{
				{name: "enet_cg_send4", kind: attachCgroup}, {name: "enet_cg_send6", kind: attachCgroup},
				{name: "enet_cg_recv4", kind: attachCgroup}, {name: "enet_cg_recv6", kind: attachCgroup},
			}},
		}},
		{name: "udp_end", gives: "the end of UDP sockets", candidates: []candidate{
			{ModeCgroup, "cgroup", []program{{name: "enet_cg_release", kind: attachCgroup}}},
			{ModeFentry, "fentry", []program{
				{name: "enet_fe_udpfree", kind: attachTracing, target: "udp_destroy_sock"},
				{name: "enet_fe_udp6free", kind: attachTracing, target: "udpv6_destroy_sock"},
			}},
			{ModeKprobe, "kprobe", []program{
				{name: "enet_kp_udpfree", kind: attachKprobe, target: "udp_destroy_sock"},
				{name: "enet_kp_udp6free", kind: attachKprobe, target: "udpv6_destroy_sock"},
			}},
		}},
	}
}

func concat(ps ...[]program) []program {
	var out []program
	for _, p := range ps {
		out = append(out, p...)
	}
	return out
}

// HookChoice is the hook chosen for one data point on this kernel.
type HookChoice = conns.Hook

// loader loads and attaches programs one by one against maps loaded once.
type loader struct {
	spec       *ebpf.CollectionSpec
	maps       map[string]*ebpf.Map
	cgroupPath string
	kernelBTF  *btf.Spec
	log        *zap.Logger

	progs []loadedProgram
	links []link.Link
}

// loadedProgram is a program of the object loaded into the kernel, by the
// name it has in the object (the kernel keeps only 15 characters of it).
type loadedProgram struct {
	*ebpf.Program
	name string
}

// choose attaches one candidate per data point, trying them in order. allowed
// filters candidates (the forcing option, and what earlier choices permit); a
// data point with no candidate that attaches is an error naming each attempt.
func (l *loader) choose(points []dataPoint, allowed func(dataPoint, candidate, []HookChoice) bool) ([]HookChoice, error) {
	var chosen []HookChoice
	for _, dp := range points {
		var attempts []string
		ok := false
		for _, c := range dp.candidates {
			if !allowed(dp, c, chosen) {
				continue
			}
			err := l.tryCandidate(c)
			if err == nil {
				chosen = append(chosen, HookChoice{Data: dp.name, Mode: c.mode, Hook: c.sub, Gives: dp.gives})
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
			return chosen, fmt.Errorf("ebpfnet tracer: %w: no way to get %s on this kernel (%s)", ErrHookUnavailable, dp.gives, strings.Join(attempts, "; "))
		}
	}
	return chosen, nil
}

// tryCandidate loads and attaches every program of c, or leaves nothing behind.
func (l *loader) tryCandidate(c candidate) error {
	var progs []loadedProgram
	var links []link.Link
	undo := func() {
		_ = closeLinks(links)
		for _, p := range progs {
			p.Close()
		}
	}
	for _, p := range c.programs {
		name := p.name
		if p.target != "" && p.kind != attachRawTP && p.kind != attachCgroup {
			n, err := l.funcArgs(p)
			if err != nil {
				if p.optional {
					continue
				}
				undo()
				return err
			}
			if p.recvArgs {
				name = fmt.Sprintf("%s%d", name, n)
			}
		}
		prog, err := l.load(name)
		if err != nil {
			undo()
			return fmt.Errorf("load %s: %w", name, err)
		}
		progs = append(progs, loadedProgram{prog, name})
		lk, err := l.attach(p, prog)
		if err != nil {
			undo()
			return fmt.Errorf("attach %s: %w", name, err)
		}
		links = append(links, lk)
	}
	l.progs = append(l.progs, progs...)
	l.links = append(l.links, links...)
	return nil
}

// funcArgs returns how many arguments the kernel's function (or tracepoint)
// target takes, from the kernel's BTF: it exists, and its prototype picks the
// recvmsg variant. Tracepoints are looked up as btf_trace_<name>.
func (l *loader) funcArgs(p program) (int, error) {
	if p.kind == attachTracing && (strings.HasPrefix(p.name, "enet_tp_") || strings.HasPrefix(p.name, "enet_tb_")) {
		var td *btf.Typedef
		if err := l.kernelBTF.TypeByName("btf_trace_"+p.target, &td); err != nil {
			return 0, fmt.Errorf("tracepoint %s: %w", p.target, err)
		}
		return 0, nil
	}
	var fn *btf.Func
	if err := l.kernelBTF.TypeByName(p.target, &fn); err != nil {
		return 0, fmt.Errorf("kernel function %s: %w", p.target, err)
	}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok {
		return 0, fmt.Errorf("kernel function %s: no prototype", p.target)
	}
	n := len(proto.Params)
	if p.recvArgs && n != 5 && n != 6 {
		return 0, fmt.Errorf("kernel function %s takes %d arguments, the tracer knows the 5- and 6-argument forms", p.target, n)
	}
	return n, nil
}

// load loads one program of the object against the maps loaded once.
func (l *loader) load(name string) (*ebpf.Program, error) {
	ps, ok := l.spec.Programs[name]
	if !ok {
		return nil, fmt.Errorf("program %s missing from the BPF object", name)
	}
	sub := &ebpf.CollectionSpec{Maps: l.spec.Maps, Programs: map[string]*ebpf.ProgramSpec{name: ps}, Variables: l.spec.Variables, Types: l.spec.Types, ByteOrder: l.spec.ByteOrder}
	coll, err := ebpf.NewCollectionWithOptions(sub, ebpf.CollectionOptions{MapReplacements: l.maps, Programs: ebpf.ProgramOptions{KernelTypes: l.kernelBTF}})
	if err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			l.log.Debug("verifier", zap.String("program", name), zap.String("log", fmt.Sprintf("%+v", verr)))
		}
		return nil, err
	}
	defer coll.Close()
	return coll.DetachProgram(name), nil
}

func (l *loader) attach(p program, prog *ebpf.Program) (link.Link, error) {
	switch p.kind {
	case attachTracing:
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
		return link.AttachCgroup(link.CgroupOptions{Path: l.cgroupPath, Attach: l.spec.Programs[p.name].AttachType, Program: prog})
	}
	return nil, fmt.Errorf("program %s: unknown attach kind %d", p.name, p.kind)
}

// programMisses is a loaded program's name and how often the kernel skipped it.
type programMisses struct {
	name   string
	misses uint64
}

// recursionMisses lists the kernel's skip count (recursion_misses) of every
// loaded program, in attach order; a program whose stats cannot be read is
// left out.
func (l *loader) recursionMisses() []programMisses {
	out := make([]programMisses, 0, len(l.progs))
	for _, p := range l.progs {
		if st, err := p.Stats(); err == nil {
			out = append(out, programMisses{p.name, st.RecursionMisses})
		}
	}
	return out
}

// skippedEvents estimates the events lost to the kernel's recursion guard: the
// skips of every program without a backup, plus the skips of primaries their
// backups did not cover. Zero where the kernel does not count skips (< 5.12).
func (l *loader) skippedEvents(rescued uint64) uint64 {
	var primaries, others uint64
	for _, p := range l.recursionMisses() {
		switch {
		case strings.HasPrefix(p.name, "enet_tp_"):
			primaries += p.misses
		case strings.HasPrefix(p.name, "enet_tb_"):
			// A backup skipped while its primary ran loses nothing; one skipped
			// with its primary shows in the primary's skips.
		default:
			others += p.misses
		}
	}
	if primaries > rescued {
		others += primaries - rescued
	}
	return others
}

func (l *loader) close() error {
	err := closeLinks(l.links)
	for _, p := range l.progs {
		p.Close()
	}
	l.links, l.progs = nil, nil
	return err
}

func closeLinks(links []link.Link) error {
	var errs []error
	for _, l := range links {
		if err := l.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
