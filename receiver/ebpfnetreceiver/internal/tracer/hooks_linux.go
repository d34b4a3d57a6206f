// SPDX-License-Identifier: Apache-2.0

package tracer

import "github.com/cilium/ebpf"

// attachKind says how one program is attached, and what its target names.
type attachKind int

const (
	attachTPBTF     attachKind = iota // tp_btf: target is a tracepoint, the attach point is in the program
	attachTracing                     // fentry, fexit: target is a kernel function, the attach point is in the program
	attachRawTP                       // raw_tp: target is a tracepoint name
	attachKprobe                      // kprobe on target
	attachKretprobe                   // kretprobe on target
	attachCgroup                      // cgroup program on the cgroup2 root
	attachIter                        // BPF iterator over the map named by target, read at each poll
	attachRun                         // never attached: the poll runs it (BPF_PROG_TEST_RUN)
)

// role is what a program's skips by the kernel's recursion guard cost.
type role int

const (
	// roleSole: no program covers for it, each skip is a lost event.
	roleSole role = iota
	// rolePrimary: a tp_btf program with a backup attached after it on the
	// same tracepoint; its skips are lost only where the backup did not
	// rescue them (TELEMETRY_RESCUED).
	rolePrimary
	// roleBackup handles only the events the kernel skipped its primary
	// for (see bpf/maps/guard.h): a backup skipped while its primary ran
	// loses nothing, one skipped with its primary shows in the primary's skips.
	roleBackup
)

// program is one BPF program of a candidate. What it is (how it attaches, its
// role) is said here, never read from its name.
type program struct {
	spec *ebpf.ProgramSpec
	// byArgs replaces spec for recvmsg functions, whose prototype has had 5
	// and 6 arguments: the BPF object has a program for each, and the
	// kernel's BTF picks one by the target's argument count.
	byArgs map[int]*ebpf.ProgramSpec
	kind   attachKind
	role   role
	target string // kernel function or tracepoint; for BTF checks and kprobes
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

// The names the choice policy tells apart: data points (Hook.Data) and
// hooks (Hook.Hook).
const (
	dataPayload = "payload"
	dataUDPEnd  = "udp_end"
	// dataProtocol: protocol classification, loaded only when configured.
	dataProtocol = "protocol"
	hookTPBTF    = "tp_btf"
	hookFexit    = "fexit"
)

// withBackup is a tp_btf primary and its backup on the same tracepoint, in
// that order: the kernel runs a tracepoint's programs in attach order, and the
// backup handles only the events the kernel skipped the primary for (see
// bpf/maps/guard.h).
func withBackup(primary, backup *ebpf.ProgramSpec, tracepoint string) []program {
	return []program{
		{spec: primary, kind: attachTPBTF, role: rolePrimary, target: tracepoint},
		{spec: backup, kind: attachTPBTF, role: roleBackup, target: tracepoint},
	}
}

func rawTP(spec *ebpf.ProgramSpec, tracepoint string) program {
	return program{spec: spec, kind: attachRawTP, target: tracepoint}
}

// tracing is an fentry or fexit program on kernel function fn.
func tracing(spec *ebpf.ProgramSpec, fn string) program {
	return program{spec: spec, kind: attachTracing, target: fn}
}

func tracingRecv(args5, args6 *ebpf.ProgramSpec, fn string) program {
	return program{byArgs: map[int]*ebpf.ProgramSpec{5: args5, 6: args6}, kind: attachTracing, target: fn}
}

func kprobe(spec *ebpf.ProgramSpec, fn string) program {
	return program{spec: spec, kind: attachKprobe, target: fn}
}

func kprobeRecv(args5, args6 *ebpf.ProgramSpec, fn string) program {
	return program{byArgs: map[int]*ebpf.ProgramSpec{5: args5, 6: args6}, kind: attachKprobe, target: fn}
}

func kretprobe(spec *ebpf.ProgramSpec, fn string) program {
	return program{spec: spec, kind: attachKretprobe, target: fn}
}

func cgroup(spec *ebpf.ProgramSpec) program { return program{spec: spec, kind: attachCgroup} }

// iterator is a BPF iterator over the elements of the object's map named m.
func iterator(spec *ebpf.ProgramSpec, m string) program {
	return program{spec: spec, kind: attachIter, target: m}
}

// run is a program the poll runs through BPF_PROG_TEST_RUN, never attached.
func run(spec *ebpf.ProgramSpec) program { return program{spec: spec, kind: attachRun} }

func optional(p program) program {
	p.optional = true
	return p
}

// hookTable is every way the tracer can get its data, in order of preference;
// classify adds the protocol classifiers.
func hookTable(p *netflowProgramSpecs, classify bool) []dataPoint {
	points := []dataPoint{
		{name: "tcp_state", gives: "TCP open, direction, owner and failures", candidates: []candidate{
			{ModeTracepoint, hookTPBTF, withBackup(p.EnetTpState, p.EnetTbState, "inet_sock_set_state")},
			{ModeTracepoint, "raw_tp", []program{rawTP(p.EnetRtState, "inet_sock_set_state")}},
		}},
		{name: "tcp_destroy", gives: "the end of TCP connections sock_ops did not report", candidates: []candidate{
			{ModeTracepoint, hookTPBTF, withBackup(p.EnetTpDestroy, p.EnetTbDestroy, "tcp_destroy_sock")},
			{ModeTracepoint, "raw_tp", []program{rawTP(p.EnetRtDestroy, "tcp_destroy_sock")}},
		}},
		{name: "tcp_close", gives: "the end of TCP connections established while the tracer runs, never skipped", candidates: []candidate{
			// With the error a connect's owner read (getsockopt SO_ERROR), which
			// the kernel then clears: see bpf/tcp/health.h.
			{ModeCgroup, "cgroup", []program{cgroup(p.EnetCgSockops), cgroup(p.EnetCgSockerr)}},
		}},
		{name: "cgroup_paths", gives: "the paths of cgroups created while the tracer runs, so that a container shorter than a poll is named", candidates: []candidate{
			{ModeTracepoint, hookTPBTF, []program{{spec: p.EnetTpCgmkdir, kind: attachTPBTF, target: "cgroup_mkdir"}}},
			{ModeTracepoint, "raw_tp", []program{rawTP(p.EnetRtCgmkdir, "cgroup_mkdir")}},
		}},
		{name: "tcp_counts", gives: "the counts of open TCP connections, at each poll", candidates: []candidate{
			{ModeIterator, "iter", []program{iterator(p.EnetItConns, "conns")}},
			// Where the kernel refuses iterators (EPERM on this machine kind's 6.18.44):
			// the same refresh, run by the poll, then a batch read of the table.
			{ModeRun, "raw_tp", []program{run(p.EnetRnRefresh)}},
		}},
		{name: dataPayload, gives: "UDP payload, and the owners of TCP connections", candidates: []candidate{
			{ModeTracepoint, hookTPBTF, append(withBackup(p.EnetTpSend, p.EnetTbSend, "sock_send_length"),
				withBackup(p.EnetTpRecv, p.EnetTbRecv, "sock_recv_length")...)},
			{ModeFentry, hookFexit, []program{
				tracing(p.EnetFxTsend, "tcp_sendmsg"),
				optional(tracing(p.EnetFxTpage, "tcp_sendpage")),
				tracing(p.EnetFxUsend, "udp_sendmsg"),
				tracing(p.EnetFxU6send, "udpv6_sendmsg"),
				tracingRecv(p.EnetFxTrecv5, p.EnetFxTrecv6, "tcp_recvmsg"),
				tracingRecv(p.EnetFxUrecv5, p.EnetFxUrecv6, "udp_recvmsg"),
				tracingRecv(p.EnetFxU6recv5, p.EnetFxU6recv6, "udpv6_recvmsg"),
			}},
			{ModeKprobe, "kprobe", []program{
				kprobe(p.EnetKpTsend, "tcp_sendmsg"), kretprobe(p.EnetKrTsend, "tcp_sendmsg"),
				optional(kprobe(p.EnetKpTpage, "tcp_sendpage")), optional(kretprobe(p.EnetKrTpage, "tcp_sendpage")),
				kprobe(p.EnetKpUsend, "udp_sendmsg"), kretprobe(p.EnetKrUsend, "udp_sendmsg"),
				kprobe(p.EnetKpU6send, "udpv6_sendmsg"), kretprobe(p.EnetKrU6send, "udpv6_sendmsg"),
				kprobeRecv(p.EnetKpTrecv5, p.EnetKpTrecv6, "tcp_recvmsg"), kretprobe(p.EnetKrTrecv, "tcp_recvmsg"),
				kprobeRecv(p.EnetKpUrecv5, p.EnetKpUrecv6, "udp_recvmsg"), kretprobe(p.EnetKrUrecv, "udp_recvmsg"),
				kprobeRecv(p.EnetKpU6recv5, p.EnetKpU6recv6, "udpv6_recvmsg"), kretprobe(p.EnetKrU6recv, "udpv6_recvmsg"),
			}},
		}},
		{name: "udp_peers", gives: "peers of unconnected UDP sockets", candidates: []candidate{
			{ModeCgroup, "cgroup", []program{cgroup(p.EnetCgSend4), cgroup(p.EnetCgSend6), cgroup(p.EnetCgRecv4), cgroup(p.EnetCgRecv6)}},
		}},
		{name: dataUDPEnd, gives: "the end of UDP sockets", candidates: []candidate{
			{ModeCgroup, "cgroup", []program{cgroup(p.EnetCgRelease)}},
			{ModeFentry, "fentry", []program{tracing(p.EnetFeUdpfree, "udp_destroy_sock"), tracing(p.EnetFeUdp6free, "udpv6_destroy_sock")}},
			{ModeKprobe, "kprobe", []program{kprobe(p.EnetKpUdpfree, "udp_destroy_sock"), kprobe(p.EnetKpUdp6free, "udpv6_destroy_sock")}},
		}},
	}
	if classify {
		points = append(points, dataPoint{name: dataProtocol, gives: "the protocol stack of each connection, from its first payload bytes", candidates: []candidate{
			{ModeCgroup, "cgroup", []program{cgroup(p.EnetCgSkbout), cgroup(p.EnetCgSkbin)}},
		}})
	}
	return points
}

// allowHooks returns the candidate filter for the forcing option. The cgroup
// release hook names sockets by cookie, so it serves only when the payload
// programs could record cookies (tp_btf or fexit, 5.12+).
func allowHooks(force string, cookies bool) func(dataPoint, candidate, []Hook) bool {
	return func(dp dataPoint, c candidate, chosen []Hook) bool {
		switch dp.name {
		case dataPayload:
			return force == "" || c.mode == force
		case dataUDPEnd:
			if c.mode == ModeCgroup {
				payload := ""
				for _, h := range chosen {
					if h.Data == dataPayload {
						payload = h.Hook
					}
				}
				return cookies && (payload == hookTPBTF || payload == hookFexit) && force != ModeKprobe
			}
			return force == "" || c.mode == force || force == ModeTracepoint
		}
		return true
	}
}
