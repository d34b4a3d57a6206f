// SPDX-License-Identifier: Apache-2.0

package nat

import (
	"net/netip"
	"testing"
	"time"
)

var (
	client  = netip.MustParseAddrPort("10.0.0.5:40000")
	vip     = netip.MustParseAddrPort("10.96.0.10:80")
	backend = netip.MustParseAddrPort("10.244.1.7:8080")
	snat    = netip.MustParseAddrPort("192.0.2.1:51000")
	t0      = time.Unix(1000, 0)
)

// dnat: client -> vip, sent to backend, with the source masqueraded to snat.
func dnatEntry(src netip.AddrPort) Entry {
	return Entry{
		Orig:  Tuple{Src: client, Dst: vip, Proto: ProtoTCP},
		Reply: Tuple{Src: backend, Dst: src, Proto: ProtoTCP},
	}
}

func TestBothEndsOfATranslatedFlow(t *testing.T) {
	tb := NewTable(Options{})
	tb.Upsert(1, dnatEntry(snat), 1)
	// The client dialled the VIP: its peer went to the backend, its own
	// address became snat.
	if tr, ok := tb.Lookup(1, ProtoTCP, client, vip); !ok || tr != (Translation{Local: snat, Peer: backend}) {
		t.Errorf("client: %+v %v", tr, ok)
	}
	// The backend accepted from snat: the client was really client, and it
	// dialled the VIP.
	if tr, ok := tb.Lookup(1, ProtoTCP, backend, snat); !ok || tr != (Translation{Local: vip, Peer: client}) {
		t.Errorf("backend: %+v %v", tr, ok)
	}
	// Another protocol, another tuple: nothing.
	if _, ok := tb.Lookup(1, ProtoUDP, client, vip); ok {
		t.Error("udp lookup matched a tcp flow")
	}
	if _, ok := tb.Lookup(1, ProtoTCP, client, backend); ok {
		t.Error("lookup of an unrelated tuple matched")
	}
}

func TestOnlyTheTranslatedEndIsSet(t *testing.T) {
	tb := NewTable(Options{})
	tb.Upsert(1, dnatEntry(client), 1) // DNAT only: the source is kept
	tr, ok := tb.Lookup(1, ProtoTCP, client, vip)
	if !ok || tr != (Translation{Peer: backend}) {
		t.Errorf("DNAT only: %+v %v", tr, ok)
	}
	snatOnly := Entry{Orig: Tuple{Src: client, Dst: backend, Proto: ProtoUDP}, Reply: Tuple{Src: backend, Dst: snat, Proto: ProtoUDP}}
	tb.Upsert(1, snatOnly, 1)
	if tr, ok := tb.Lookup(1, ProtoUDP, client, backend); !ok || tr != (Translation{Local: snat}) {
		t.Errorf("SNAT only: %+v %v", tr, ok)
	}
}

func TestUntranslatedEntriesAreNotKept(t *testing.T) {
	tb := NewTable(Options{})
	plain := Entry{Orig: Tuple{Src: client, Dst: backend, Proto: ProtoTCP}, Reply: Tuple{Src: backend, Dst: client, Proto: ProtoTCP}}
	tb.Upsert(1, plain, 1)
	if s := tb.Stats(); s.Entries != 0 {
		t.Fatalf("kept %d untranslated entries", s.Entries)
	}
	if _, ok := tb.Lookup(1, ProtoTCP, client, backend); ok {
		t.Error("untranslated flow has a translation")
	}
}

func TestMappedAddressesMatch(t *testing.T) {
	tb := NewTable(Options{})
	tb.Upsert(1, dnatEntry(snat), 1)
	mapped := netip.AddrPortFrom(netip.AddrFrom16(client.Addr().As16()), client.Port())
	mvip := netip.AddrPortFrom(netip.AddrFrom16(vip.Addr().As16()), vip.Port())
	if tr, ok := tb.Lookup(1, ProtoTCP, mapped, mvip); !ok || tr.Peer != backend {
		t.Errorf("v4-mapped socket: %+v %v", tr, ok)
	}
}

func TestDestroyedEntriesLastTheGrace(t *testing.T) {
	tb := NewTable(Options{Grace: time.Minute})
	tb.Upsert(1, dnatEntry(snat), 1)
	tb.Destroy(1, dnatEntry(snat).Orig, t0)
	tb.Prune(t0.Add(time.Minute)) // not past the grace yet
	if _, ok := tb.Lookup(1, ProtoTCP, client, vip); !ok {
		t.Fatal("destroyed entry gone before its grace ended")
	}
	tb.Prune(t0.Add(time.Minute + time.Nanosecond))
	if _, ok := tb.Lookup(1, ProtoTCP, client, vip); ok {
		t.Fatal("destroyed entry kept past its grace")
	}
	if s := tb.Stats(); s.Entries != 0 || s.Evictions != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRecreatedEntryIsLiveAgain(t *testing.T) {
	tb := NewTable(Options{Grace: time.Minute})
	tb.Upsert(1, dnatEntry(snat), 1)
	tb.Destroy(1, dnatEntry(snat).Orig, t0)
	tb.Upsert(1, dnatEntry(snat), 2) // the same tuple, a new connection
	tb.Prune(t0.Add(time.Hour))
	if _, ok := tb.Lookup(1, ProtoTCP, client, vip); !ok {
		t.Fatal("re-created entry was pruned as destroyed")
	}
}

func TestReusedTupleTakesTheNewTranslation(t *testing.T) {
	tb := NewTable(Options{})
	tb.Upsert(1, dnatEntry(snat), 1)
	other := netip.MustParseAddrPort("10.244.2.9:8080")
	e := dnatEntry(snat)
	e.Reply.Src = other
	tb.Upsert(1, e, 2)
	if tr, _ := tb.Lookup(1, ProtoTCP, client, vip); tr.Peer != other {
		t.Errorf("peer %v, want the new backend %v", tr.Peer, other)
	}
	if _, ok := tb.Lookup(1, ProtoTCP, backend, snat); ok {
		t.Error("the old backend's view survived the reuse")
	}
	if s := tb.Stats(); s.Entries != 1 {
		t.Errorf("%d entries, want 1", s.Entries)
	}
}

func TestSweepDestroysWhatTheDumpMissed(t *testing.T) {
	tb := NewTable(Options{Grace: time.Minute})
	tb.Upsert(1, dnatEntry(snat), 1)
	kept := dnatEntry(client)
	kept.Orig.Src = netip.MustParseAddrPort("10.0.0.6:40001")
	kept.Reply.Dst = kept.Orig.Src
	tb.Upsert(1, kept, 1)
	otherNS := dnatEntry(snat)
	tb.Upsert(2, otherNS, 1)
	tb.Upsert(1, kept, 2) // the re-dump lists only kept
	tb.Sweep(1, 2, t0)
	tb.Prune(t0.Add(2 * time.Minute))
	if _, ok := tb.Lookup(1, ProtoTCP, kept.Orig.Src, vip); !ok {
		t.Error("entry the dump listed was swept")
	}
	if tr, ok := tb.Lookup(1, ProtoTCP, client, vip); !ok || tr.Local != snat {
		// namespace 1's entry is gone; namespace 2's still answers
		t.Errorf("after sweep: %+v %v, want namespace 2's entry", tr, ok)
	}
	if s := tb.Stats(); s.Entries != 2 {
		t.Errorf("%d entries, want 2", s.Entries)
	}
	tb.Forget(2, t0)
	tb.Prune(t0.Add(2 * time.Minute))
	if _, ok := tb.Lookup(1, ProtoTCP, client, vip); ok {
		t.Error("forgotten namespace still answers")
	}
}

func TestSameNamespaceWinsAndConflictsGiveNothing(t *testing.T) {
	tb := NewTable(Options{})
	a := dnatEntry(snat)
	b := dnatEntry(snat)
	b.Reply.Src = netip.MustParseAddrPort("10.244.9.9:8080")
	tb.Upsert(10, a, 1)
	tb.Upsert(20, b, 1)
	if tr, _ := tb.Lookup(20, ProtoTCP, client, vip); tr.Peer != b.Reply.Src {
		t.Errorf("same namespace: peer %v, want %v", tr.Peer, b.Reply.Src)
	}
	if tr, ok := tb.Lookup(30, ProtoTCP, client, vip); ok {
		t.Errorf("two namespaces disagree, got %+v", tr)
	}
	if s := tb.Stats(); s.Ambiguous != 1 {
		t.Errorf("ambiguous %d, want 1", s.Ambiguous)
	}
	tb.Upsert(40, a, 1) // a second namespace agreeing with 10 does not help: 20 still disagrees
	if _, ok := tb.Lookup(30, ProtoTCP, client, vip); ok {
		t.Error("disagreeing namespaces gave a translation")
	}
}

func TestBoundEvictsDestroyedFirst(t *testing.T) {
	tb := NewTable(Options{MaxEntries: 3, Grace: time.Hour})
	entry := func(port uint16) Entry {
		e := dnatEntry(snat)
		e.Orig.Src = netip.AddrPortFrom(client.Addr(), port)
		e.Reply.Dst = netip.AddrPortFrom(snat.Addr(), port)
		return e
	}
	for p := uint16(1); p <= 3; p++ {
		tb.Upsert(1, entry(p), 1)
	}
	tb.Destroy(1, entry(2).Orig, t0)
	tb.Upsert(1, entry(4), 1) // evicts 2, destroyed
	tb.Upsert(1, entry(5), 1) // evicts 1, the oldest live
	for p, want := range map[uint16]bool{1: false, 2: false, 3: true, 4: true, 5: true} {
		if _, ok := tb.Lookup(1, ProtoTCP, entry(p).Orig.Src, vip); ok != want {
			t.Errorf("port %d kept=%v, want %v", p, ok, want)
		}
	}
	if s := tb.Stats(); s.Entries != 3 || s.Evictions != 2 {
		t.Errorf("stats %+v, want 3 entries and 2 evictions", s)
	}
}

func BenchmarkUpsertDestroy(b *testing.B) {
	tb := NewTable(Options{MaxEntries: 65536})
	e := dnatEntry(snat)
	b.ReportAllocs()
	for i := range b.N {
		e.Orig.Src = netip.AddrPortFrom(client.Addr(), uint16(i))
		e.Reply.Dst = netip.AddrPortFrom(snat.Addr(), uint16(i))
		tb.Upsert(1, e, 1)
		tb.Destroy(1, e.Orig, t0)
		if i%1024 == 0 {
			tb.Prune(t0.Add(time.Hour))
		}
	}
}

// TestWildcardBoundSocketMatchesByPort: a UDP server bound to 0.0.0.0 does
// not know the address its datagrams came to; it matches its flows by port,
// and is told only what NAT changed (the address the client dialled), not
// its own address.
func TestWildcardBoundSocketMatchesByPort(t *testing.T) {
	tb := NewTable(Options{})
	dns := Entry{
		Orig:  Tuple{Src: client, Dst: netip.MustParseAddrPort("10.96.0.10:53"), Proto: ProtoUDP},
		Reply: Tuple{Src: netip.MustParseAddrPort("10.244.1.7:5353"), Dst: client, Proto: ProtoUDP},
	}
	tb.Upsert(1, dns, 1)
	wild := netip.MustParseAddrPort("0.0.0.0:5353")
	if tr, ok := tb.Lookup(2, ProtoUDP, wild, client); !ok || tr != (Translation{Local: dns.Orig.Dst}) {
		t.Errorf("wildcard server: %+v %v, want local %v", tr, ok, dns.Orig.Dst)
	}
	if _, ok := tb.Lookup(2, ProtoUDP, netip.MustParseAddrPort("0.0.0.0:5354"), client); ok {
		t.Error("another port matched")
	}
	if _, ok := tb.Lookup(2, ProtoUDP, netip.MustParseAddrPort("10.244.9.9:5353"), client); ok {
		t.Error("another local address matched")
	}
	// SNAT only, server on the wildcard address: its peer was rewritten,
	// its own address was not.
	snatOnly := Entry{Orig: Tuple{Src: client, Dst: backend, Proto: ProtoUDP}, Reply: Tuple{Src: backend, Dst: snat, Proto: ProtoUDP}}
	tb.Upsert(1, snatOnly, 1)
	if tr, ok := tb.Lookup(2, ProtoUDP, netip.AddrPortFrom(netip.IPv4Unspecified(), backend.Port()), snat); !ok || tr != (Translation{Peer: client}) {
		t.Errorf("wildcard server behind SNAT: %+v %v, want peer %v only", tr, ok, client)
	}
}
