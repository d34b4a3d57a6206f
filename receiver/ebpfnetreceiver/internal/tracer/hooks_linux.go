// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// hookKind says how a program is attached.
type hookKind int

const (
	// hookTracing: tp_btf (BTF-typed raw tracepoint), attached by name.
	hookTracing hookKind = iota
	// hookCgroup: a cgroup program on the cgroup2 root.
	hookCgroup
)

// hook is one piece of data the tracer needs and the program that gets it.
// The whole hook set is this table: another kernel gets another table.
type hook struct {
	program string   // program name in the BPF object
	kind    hookKind //
	point   string   // the kernel hook, as users and kernel docs name it
	gives   string   // what the tracer loses without it
	minimum string   // oldest kernel that has the hook
}

// tracepointHooks is the hook set for kernels with the sock length tracepoints
// (6.3+): nothing per packet, nothing on a kprobe.
var tracepointHooks = []hook{
	{"enet_tcp_state", hookTracing, "tracepoint sock:inet_sock_set_state", "TCP open, close, direction and failures", "4.16"},
	{"enet_tcp_destroy", hookTracing, "tracepoint tcp:tcp_destroy_sock", "the final counters of TCP connections", "5.7"},
	{"enet_send", hookTracing, "tracepoint sock:sock_send_length", "bytes and packets sent", "6.3"},
	{"enet_recv", hookTracing, "tracepoint sock:sock_recv_length", "bytes and packets received", "6.3"},
	{"enet_sendmsg4", hookCgroup, "cgroup/sendmsg4", "peers of unconnected UDP sends over IPv4", "4.18"},
	{"enet_sendmsg6", hookCgroup, "cgroup/sendmsg6", "peers of unconnected UDP sends over IPv6", "4.18"},
	{"enet_recvmsg4", hookCgroup, "cgroup/recvmsg4", "peers of unconnected UDP receives over IPv4", "5.2"},
	{"enet_recvmsg6", hookCgroup, "cgroup/recvmsg6", "peers of unconnected UDP receives over IPv6", "5.2"},
	{"enet_sock_rel", hookCgroup, "cgroup/sock_release", "the end of UDP sockets", "5.9"},
}

// attachAll attaches every hook of the set. On failure it detaches what it
// attached and returns an error naming the hook and the kernel it needs.
func attachAll(hooks []hook, progs map[string]*ebpf.Program, specs map[string]*ebpf.ProgramSpec, cgroupPath string) ([]link.Link, error) {
	var links []link.Link
	for _, h := range hooks {
		l, err := attach(h, progs[h.program], specs[h.program], cgroupPath)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("ebpfnet tracer: %w: %s (gives %s; needs Linux %s+): %w", ErrHookUnavailable, h.point, h.gives, h.minimum, err), closeLinks(links))
		}
		links = append(links, l)
	}
	return links, nil
}

func attach(h hook, prog *ebpf.Program, spec *ebpf.ProgramSpec, cgroupPath string) (link.Link, error) {
	if prog == nil || spec == nil {
		return nil, fmt.Errorf("program %s missing from the BPF object", h.program)
	}
	switch h.kind {
	case hookTracing:
		return link.AttachTracing(link.TracingOptions{Program: prog})
	case hookCgroup:
		return link.AttachCgroup(link.CgroupOptions{Path: cgroupPath, Attach: spec.AttachType, Program: prog})
	}
	return nil, fmt.Errorf("hook %s: unknown kind %d", h.program, h.kind)
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
