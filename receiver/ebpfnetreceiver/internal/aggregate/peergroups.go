// SPDX-License-Identifier: Apache-2.0

package aggregate

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
)

// PeerGroup names a set of address prefixes. A peer address inside one of
// them is written as Name in network.peer.address, so every peer of the group
// shares its series.
type PeerGroup struct {
	Name     string
	Prefixes []netip.Prefix
}

// peerMatcher finds the group of a peer address by longest-prefix match: the
// most specific prefix that contains the address wins, whatever the order of
// the groups, as in a routing table (a cluster's /8 and a /12 of services
// inside it). A prefix must be in one group only, so the match is unique
// (the receiver's config validation refuses a repeated prefix; here the last
// one would win).
//
// Prefixes are kept in one map per prefix length, longest first: a lookup
// masks the address to each length present and looks the result up, so its
// cost grows with the number of distinct lengths (a handful), not with the
// number of prefixes. The maps are keyed by the masked address as integers,
// which hash faster than a netip.Prefix.
type peerMatcher struct {
	v4    []prefixLen[uint32]
	v6    []prefixLen[v6Addr]
	other uint16 // the group of every address no group holds; 0 keeps the address
}

// Group names are interned process-wide, so an Attrs holds a group as a
// uint16 (see Attrs.vals) and still writes its name without knowing its
// aggregator. Index 0 is no group. The table only grows, by the distinct
// names of all configs (a few each), and is read without a lock.
var (
	groupNames   atomic.Pointer[[]string]
	groupNamesMu sync.Mutex // serializes intern
)

func init() { groupNames.Store(&[]string{""}) }

// intern returns the index of name in groupNames, adding it if new.
func intern(name string) uint16 {
	groupNamesMu.Lock()
	defer groupNamesMu.Unlock()
	names := *groupNames.Load()
	if i := slices.Index(names, name); i >= 0 {
		return uint16(i)
	}
	if len(names) > 0xffff {
		// Only a process that configured 65535 distinct names gets here.
		panic(fmt.Sprintf("aggregate: more than %d peer group names", 0xffff))
	}
	grown := append(slices.Clip(names), name)
	groupNames.Store(&grown)
	return uint16(len(grown) - 1)
}

func groupName(g uint16) string { return (*groupNames.Load())[g] }

// v6Addr is an IPv6 address as two big-endian halves.
type v6Addr struct{ hi, lo uint64 }

func (a v6Addr) and(m v6Addr) v6Addr { return v6Addr{a.hi & m.hi, a.lo & m.lo} }

type prefixLen[K comparable] struct {
	bits   int
	mask   K
	groups map[K]uint16 // masked address -> group (index of groupNames)
}

func v4Of(a netip.Addr) uint32 { b := a.As4(); return binary.BigEndian.Uint32(b[:]) }

func v6Of(a netip.Addr) v6Addr {
	b := a.As16()
	return v6Addr{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

// v4Mask and v6Mask are the netmasks of a prefix length (Go shifts of the
// full width or more give 0).
func v4Mask(bits int) uint32 { return ^uint32(0) << (32 - bits) }

func v6Mask(bits int) v6Addr {
	if bits <= 64 {
		return v6Addr{^uint64(0) << (64 - bits), 0}
	}
	return v6Addr{^uint64(0), ^uint64(0) << (128 - bits)}
}

// newPeerMatcher returns nil when there is nothing to match, so the
// aggregator skips the lookup.
func newPeerMatcher(groups []PeerGroup, other string) *peerMatcher {
	if len(groups) == 0 && other == "" {
		return nil
	}
	m := &peerMatcher{}
	if other != "" {
		m.other = intern(other)
	}
	for _, g := range groups {
		id := intern(g.Name)
		for _, p := range g.Prefixes {
			if p.Addr().Is4() {
				m.v4 = addPrefix(m.v4, p.Bits(), v4Mask(p.Bits()), v4Of(p.Addr())&v4Mask(p.Bits()), id)
			} else {
				mask := v6Mask(p.Bits())
				m.v6 = addPrefix(m.v6, p.Bits(), mask, v6Of(p.Addr()).and(mask), id)
			}
		}
	}
	slices.SortFunc(m.v4, byLengthDesc)
	slices.SortFunc(m.v6, byLengthDesc)
	return m
}

func addPrefix[K comparable](lens []prefixLen[K], bits int, mask, key K, group uint16) []prefixLen[K] {
	i := slices.IndexFunc(lens, func(l prefixLen[K]) bool { return l.bits == bits })
	if i < 0 {
		lens = append(lens, prefixLen[K]{bits: bits, mask: mask, groups: map[K]uint16{}})
		i = len(lens) - 1
	}
	lens[i].groups[key] = group
	return lens
}

func byLengthDesc[K comparable](x, y prefixLen[K]) int { return cmp.Compare(y.bits, x.bits) }

// lookup returns the group of addr, or false when addr keeps its address: no
// group holds it and there is no catch-all, or it is unknown (the zero Addr:
// the tracer missed the peer). An IPv4 prefix holds IPv4 addresses only; addr
// is unmapped already (attrsOf).
func (m *peerMatcher) lookup(addr netip.Addr) (uint16, bool) {
	switch {
	case addr.Is4():
		a := v4Of(addr)
		for _, l := range m.v4 {
			if g, ok := l.groups[a&l.mask]; ok {
				return g, true
			}
		}
	case addr.Is6():
		a := v6Of(addr)
		for _, l := range m.v6 {
			if g, ok := l.groups[a.and(l.mask)]; ok {
				return g, true
			}
		}
	default:
		return 0, false
	}
	return m.other, m.other != 0
}
