// SPDX-License-Identifier: Apache-2.0

package nat

import (
	"net/netip"
	"sync"
	"time"
)

// Defaults of Options.
const (
	// DefaultMaxEntries bounds the translated flows kept: each costs about
	// 620 bytes (the record and its three index entries, measured on
	// amd64), so about 80 MB when full. Untranslated flows are not kept, so
	// this is the translated share of a node's conntrack table
	// (nf_conntrack_max is often 131072 to 262144 for all flows).
	DefaultMaxEntries = 131072
	// DefaultGrace keeps a destroyed entry long enough for the poll after
	// the connection's close to find it, at any sane collection_interval.
	DefaultGrace = 2 * time.Minute
)

// Protocol numbers (IANA), as conntrack and the tracer's transports use them.
const (
	ProtoTCP uint8 = 6
	ProtoUDP uint8 = 17
)

// Tuple is one direction of a flow: source, destination, IP protocol.
// Addresses are unmapped (an IPv4 flow has IPv4 addresses).
type Tuple struct {
	Src, Dst netip.AddrPort
	Proto    uint8
}

// Entry is one conntrack entry's tuples.
type Entry struct {
	Orig, Reply Tuple
}

// Translated reports whether the kernel rewrites the flow: its reply tuple
// is not its original one reversed.
func (e *Entry) Translated() bool {
	return e.Reply.Src != e.Orig.Dst || e.Reply.Dst != e.Orig.Src
}

// Translation is what a socket's endpoints become on the wire. A field is
// the zero AddrPort when that end is not translated.
type Translation struct {
	Local, Peer netip.AddrPort
}

// Options bound a Table; zero fields take the defaults.
type Options struct {
	MaxEntries int
	Grace      time.Duration
}

// Stats are a Table's cumulative counts.
type Stats struct {
	// Entries is the number of translated flows kept now.
	Entries int
	// Evictions counts flows dropped to keep MaxEntries: destroyed ones
	// before their grace ended first, then the oldest live ones (whose
	// sockets then go without a translation).
	Evictions uint64
	// Ambiguous counts lookups that found the socket's tuple translated
	// differently in several other network namespaces and gave none.
	Ambiguous uint64
}

// sockKey indexes a socket's view of a flow by its peer and local port,
// not its local address: a socket bound to the wildcard address (a UDP
// server on 0.0.0.0) does not know the address its datagrams came to, and
// is matched by port. Lookup checks the local address of the candidates.
type sockKey struct {
	peer  netip.AddrPort
	lport uint16
	proto uint8
}

// flowKey names one conntrack entry: its original tuple in its namespace
// (conntrack zones aside, the kernel's own identity of an entry).
type flowKey struct {
	orig  Tuple
	netns uint32
}

// record is one translated flow, in the live or the dead list.
type record struct {
	flowKey
	reply      Tuple
	gen        uint64    // the dump or event generation that last saw it
	deadAt     time.Time // zero while conntrack has it
	prev, next *record
}

// list is an intrusive doubly linked list, oldest first.
type list struct{ head, tail *record }

func (l *list) push(r *record) {
	r.prev, r.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = r
	} else {
		l.head = r
	}
	l.tail = r
}

func (l *list) remove(r *record) {
	if r.prev != nil {
		r.prev.next = r.next
	} else {
		l.head = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	} else {
		l.tail = r.prev
	}
	r.prev, r.next = nil, nil
}

// Table maps sockets to their translation. It is safe for concurrent use:
// conntrack sources write, the receiver's poll reads.
type Table struct {
	opts Options

	mu         sync.Mutex
	flows      map[flowKey]*record
	socks      map[sockKey][]*record // usually one record
	live, dead list                  // dead: by deadAt
	stats      Stats
}

// NewTable returns an empty table.
func NewTable(opts Options) *Table {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	return &Table{opts: opts, flows: map[flowKey]*record{}, socks: map[sockKey][]*record{}}
}

// views returns the two socket keys of a flow: the initiator's and the
// responder's.
func views(orig, reply Tuple) (initiator, responder sockKey) {
	return sockKey{peer: orig.Dst, lport: orig.Src.Port(), proto: orig.Proto},
		sockKey{peer: reply.Dst, lport: reply.Src.Port(), proto: reply.Proto}
}

// Upsert records that conntrack in netns has e (a new entry, or one a dump
// listed) as of generation gen. An entry without translation is ignored,
// unless it replaces a translated one of the same original tuple.
func (t *Table) Upsert(netns uint32, e Entry, gen uint64) {
	e = unmapEntry(e)
	fk := flowKey{orig: e.Orig, netns: netns}
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.flows[fk]
	if r != nil && r.reply != e.Reply {
		t.drop(r) // the tuple was reused by a flow translated otherwise
		r = nil
	}
	if !e.Translated() {
		return
	}
	if r != nil {
		r.gen = gen
		if !r.deadAt.IsZero() { // destroyed, then listed or created again
			t.dead.remove(r)
			r.deadAt = time.Time{}
			t.live.push(r)
		}
		return
	}
	for len(t.flows) >= t.opts.MaxEntries {
		victim := t.dead.head
		if victim == nil {
			victim = t.live.head
		}
		t.drop(victim)
		t.stats.Evictions++
	}
	r = &record{flowKey: fk, reply: e.Reply, gen: gen}
	t.flows[fk] = r
	ini, resp := views(e.Orig, e.Reply)
	t.socks[ini] = append(t.socks[ini], r)
	if resp != ini {
		t.socks[resp] = append(t.socks[resp], r)
	}
	t.live.push(r)
}

// Destroy records that conntrack in netns destroyed the entry of orig at
// now: it is kept for the grace period.
func (t *Table) Destroy(netns uint32, orig Tuple, now time.Time) {
	fk := flowKey{orig: unmapTuple(orig), netns: netns}
	t.mu.Lock()
	defer t.mu.Unlock()
	if r := t.flows[fk]; r != nil && r.deadAt.IsZero() {
		t.kill(r, now)
	}
}

// Sweep ends a dump of netns that ran as generation gen: the entries of
// netns the dump did not list (destroyed while events were lost) are marked
// destroyed at now. Forget(netns) is Sweep with a generation no entry has.
func (t *Table) Sweep(netns uint32, gen uint64, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for r := t.live.head; r != nil; {
		next := r.next
		if r.netns == netns && r.gen < gen {
			t.kill(r, now)
		}
		r = next
	}
}

// Forget marks every entry of netns destroyed at now (its source closed).
func (t *Table) Forget(netns uint32, now time.Time) { t.Sweep(netns, ^uint64(0), now) }

// Prune drops the destroyed entries whose grace ended before now.
func (t *Table) Prune(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for r := t.dead.head; r != nil && now.Sub(r.deadAt) > t.opts.Grace; r = t.dead.head {
		t.drop(r)
	}
}

// Lookup returns the translation of the socket local -> peer of protocol
// proto in network namespace netns. An entry of the same namespace wins;
// otherwise one of another namespace (kube-proxy translates in the node's
// namespace the flows of sockets in pods' namespaces) if all that hold the
// tuple agree. A socket bound to the unspecified address matches by its
// port. ok is false when no translation is known.
func (t *Table) Lookup(netns uint32, proto uint8, local, peer netip.AddrPort) (tr Translation, ok bool) {
	local, peer = unmapAP(local), unmapAP(peer)
	k := sockKey{peer: peer, lport: local.Port(), proto: proto}
	wild := local.Addr().IsUnspecified()
	t.mu.Lock()
	defer t.mu.Unlock()
	var other Translation
	found := false
	for _, r := range t.socks[k] {
		cand, match := r.translationFor(local, peer, wild)
		switch {
		case !match:
		case r.netns == netns:
			return cand, true
		case found && cand != other:
			t.stats.Ambiguous++
			return Translation{}, false
		default:
			other, found = cand, true
		}
	}
	return other, found
}

// translationFor is what r makes of the socket local -> peer, if the socket
// is one of r's ends: the other direction's endpoints, where they differ
// from that end's own. wild: the socket's local address is unspecified,
// only its port is known.
func (r *record) translationFor(local, peer netip.AddrPort, wild bool) (Translation, bool) {
	is := func(end netip.AddrPort) bool {
		return end == local || wild && end.Port() == local.Port()
	}
	var own, wire Tuple // the end's socket view (Src local, Dst peer), what it becomes
	switch {
	case r.orig.Dst == peer && is(r.orig.Src): // the initiator
		own = r.orig
		wire = Tuple{Src: r.reply.Dst, Dst: r.reply.Src}
	case r.reply.Dst == peer && is(r.reply.Src): // the responder
		own = r.reply
		wire = Tuple{Src: r.orig.Dst, Dst: r.orig.Src}
	default:
		return Translation{}, false
	}
	var tr Translation
	if wire.Src != own.Src {
		tr.Local = wire.Src
	}
	if wire.Dst != own.Dst {
		tr.Peer = wire.Dst
	}
	return tr, true
}

// Stats returns the table's counts.
func (t *Table) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.stats
	s.Entries = len(t.flows)
	return s
}

// kill moves r from the live to the dead list.
func (t *Table) kill(r *record, now time.Time) {
	t.live.remove(r)
	r.deadAt = now
	t.dead.push(r)
}

// drop removes r from every index and list.
func (t *Table) drop(r *record) {
	if r.deadAt.IsZero() {
		t.live.remove(r)
	} else {
		t.dead.remove(r)
	}
	delete(t.flows, r.flowKey)
	ini, resp := views(r.orig, r.reply)
	t.unindex(ini, r)
	if resp != ini {
		t.unindex(resp, r)
	}
}

func (t *Table) unindex(k sockKey, r *record) {
	rs := t.socks[k]
	for i, x := range rs {
		if x == r {
			rs[i] = rs[len(rs)-1]
			rs = rs[:len(rs)-1]
			break
		}
	}
	if len(rs) == 0 {
		delete(t.socks, k)
	} else {
		t.socks[k] = rs
	}
}

func unmapAP(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func unmapTuple(t Tuple) Tuple {
	return Tuple{Src: unmapAP(t.Src), Dst: unmapAP(t.Dst), Proto: t.Proto}
}

func unmapEntry(e Entry) Entry { return Entry{Orig: unmapTuple(e.Orig), Reply: unmapTuple(e.Reply)} }
