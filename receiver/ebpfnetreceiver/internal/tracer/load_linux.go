// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"errors"
	"fmt"
	"maps"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/caps"
)

// loadSpec reads the embedded BPF object and sizes the connection table, and
// the socket tables that hold one entry per connection, to size entries.
// Every other size, the ring's among them, is the one bpf/common/sizing.h
// compiled in.
func loadSpec(size uint32) (*ebpf.CollectionSpec, *netflowSpecs, error) {
	spec, err := loadNetflow()
	if err != nil {
		return nil, nil, err
	}
	var s netflowSpecs
	if err := spec.Assign(&s); err != nil {
		return nil, nil, fmt.Errorf("netflow object: %w", err)
	}
	for _, m := range []*ebpf.MapSpec{s.Conns, s.Socks, s.UdpCookies} {
		m.MaxEntries = size
	}
	return spec, &s, nil
}

// setCookieHelper tells the programs whether they may ask the kernel for
// socket cookies: it probes the helper by loading (never attaching) a tracing
// program that calls it, which the kernel accepts from 5.12 on.
func setCookieHelper(s *netflowSpecs, spec *ebpf.CollectionSpec, kernelBTF *btf.Spec) (bool, error) {
	probe := &ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{s.EnetPrCookie.Name: s.EnetPrCookie}, Types: spec.Types, ByteOrder: spec.ByteOrder}
	coll, err := ebpf.NewCollectionWithOptions(probe, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{KernelTypes: kernelBTF}})
	cookies := err == nil
	if cookies {
		coll.Close()
	}
	if err := s.CookieHelper.Set(boolByte(cookies)); err != nil {
		return false, fmt.Errorf("set variable: %w", err)
	}
	return cookies, nil
}

// setSkbReadKernel tells the DNS capture whether it may read the receiving
// socket's namespace from the socket itself (bpf_probe_read_kernel in
// cgroup_skb programs, which older kernels refuse): it loads, never
// attaches, a cgroup_skb program that calls the helper. Without it the
// namespace comes from the socket table, which a response that beats its
// query's send misses (counted in DNSNoSocket).
func setSkbReadKernel(s *netflowSpecs, spec *ebpf.CollectionSpec) (bool, error) {
	probe := &ebpf.CollectionSpec{Programs: map[string]*ebpf.ProgramSpec{s.EnetPrSkbread.Name: s.EnetPrSkbread}, Types: spec.Types, ByteOrder: spec.ByteOrder}
	coll, err := ebpf.NewCollection(probe)
	ok := err == nil
	if ok {
		coll.Close()
	}
	ok = ok && !testSocketTableNetns
	if err := s.SkbReadKernel.Set(boolByte(ok)); err != nil {
		return false, fmt.Errorf("set variable: %w", err)
	}
	return ok, nil
}

// testSocketTableNetns makes the DNS capture take namespaces from the
// socket table even where it could read the socket: the kernels of the
// matrix all allow the read, so only a test reaches the other path.
var testSocketTableNetns bool

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

// createMaps creates every map of spec once, for the programs loaded one by
// one to share. The named maps go to t.objs; t.maps keeps the sections of the
// globals (.rodata, .bss); byName has them all, for MapReplacements.
func (t *Tracer) createMaps(spec *ebpf.CollectionSpec) (byName map[string]*ebpf.Map, err error) {
	mapsOnly := &ebpf.CollectionSpec{Maps: spec.Maps, Variables: spec.Variables, Types: spec.Types, ByteOrder: spec.ByteOrder}
	coll, err := ebpf.NewCollection(mapsOnly)
	if errors.Is(err, os.ErrPermission) && caps.SeccompFiltered() {
		// checkPrerequisites found the capabilities: what refused is the
		// process's seccomp filter, most often a container runtime's
		// default profile.
		return nil, fmt.Errorf("create maps: %w: bpf(2) was refused although the process holds the capabilities, and a seccomp filter is active (Seccomp: 2 in /proc/self/status): "+
			"container runtimes' default profiles before containerd 1.7 allow bpf(2) and perf_event_open(2) only with CAP_SYS_ADMIN; "+
			"run on containerd 1.7+ or CRI-O, or give the container a seccomp profile that allows both to CAP_BPF and CAP_PERFMON", err)
	}
	if err != nil {
		return nil, fmt.Errorf("create maps: %w", err)
	}
	byName = maps.Clone(coll.Maps)
	// Assign moves the named maps out of coll: from here t.objs closes them.
	if err := coll.Assign(&t.objs); err != nil {
		t.objs = netflowMaps{}
		coll.Close()
		return nil, fmt.Errorf("netflow maps: %w", err)
	}
	t.maps = coll
	return byName, nil
}

// closeMaps frees every map createMaps created.
func (t *Tracer) closeMaps() error {
	err := t.objs.Close()
	if t.maps != nil {
		t.maps.Close()
	}
	return err
}
