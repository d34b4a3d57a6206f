// SPDX-License-Identifier: Apache-2.0

package dnsnames

import (
	"net/netip"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// Defaults of Config.
const (
	// DefaultMaxEntries bounds the map: at about 100 bytes an entry (a
	// name shared by the addresses of one answer), some 6.5 MB at most.
	DefaultMaxEntries = 65536
	// DefaultGrace is how long a name outlives its answer's TTL: clients
	// connect a little after they resolve, and keep using an address past
	// the TTL (Go and glibc cache nothing, but Java and pools do).
	DefaultGrace = 5 * time.Minute
	// maxChain bounds the CNAME links followed from the question's name.
	maxChain = 16
)

// Config bounds a Names.
type Config struct {
	MaxEntries int           // 0: DefaultMaxEntries
	Grace      time.Duration // added to each answer's TTL; 0: none
}

// Stats counts what Names saw, cumulative.
type Stats struct {
	Responses   uint64 // DNS responses handed to Learn
	Answers     uint64 // address answers learnt (an address learnt again counts again)
	ParseErrors uint64 // responses that are not well-formed DNS (nothing learnt from them)
	Truncated   uint64 // responses cut at the capture's bound: the answers past it are not learnt
	Evictions   uint64 // live entries dropped to keep MaxEntries
	Expired     uint64 // entries dropped because TTL + grace had passed
}

// key is an address in a network namespace: the same address means
// different hosts in different namespaces.
type key struct {
	netns uint32
	addr  netip.Addr
}

// node is one entry of the map and of its least-recently-learnt list; the
// list links nodes by index into Names.nodes, which stays allocated.
type node struct {
	key
	name       string
	expires    time.Time
	prev, next int32 // -1: none
}

// Names maps addresses to the names DNS answered them for, per network
// namespace, within MaxEntries (the entry learnt or looked up longest ago is
// evicted first) and for each answer's TTL plus the grace. Not safe for
// concurrent use.
type Names struct {
	max   int
	grace time.Duration
	index map[key]int32
	nodes []node
	free  []int32
	head  int32 // most recent
	tail  int32 // least recent
	stats Stats

	// scratch of learn, reused
	chain   []string
	pending []answer
}

// answer is an address record of a response, before its owner is checked
// against the question's CNAME chain.
type answer struct {
	owner string
	addr  netip.Addr
	ttl   uint32
}

// New returns an empty map bounded by cfg.
func New(cfg Config) *Names {
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	return &Names{max: cfg.MaxEntries, grace: max(cfg.Grace, 0), index: map[key]int32{}, head: -1, tail: -1}
}

// Len is the number of entries, expired ones not yet dropped included.
func (n *Names) Len() int { return len(n.index) }

// Stats returns the counts so far.
func (n *Names) Stats() Stats { return n.stats }

// Learn takes the address answers of one response: each A or AAAA record
// whose owner is the question's name, or a name the question's CNAME chain
// leads to, maps its address to the question's name (what the client asked
// for) until now + the chain's lowest TTL + the grace. A response that is not
// a successful standard response learns nothing; one that is not well formed
// is counted in Stats.ParseErrors. Never panics on any input.
func (n *Names) Learn(now time.Time, r conns.DNSResponse) {
	n.stats.Responses++
	cut := r.Size > len(r.Msg)
	var p dnsmessage.Parser
	h, err := p.Start(r.Msg)
	if err != nil {
		n.failed(cut)
		return
	}
	if !h.Response || h.OpCode != 0 || h.RCode != dnsmessage.RCodeSuccess {
		return
	}
	q, err := p.Question()
	if err != nil {
		n.failed(cut)
		return
	}
	if q.Class != dnsmessage.ClassINET {
		return
	}
	if err := p.SkipAllQuestions(); err != nil {
		n.failed(cut)
		return
	}
	asked := canonical(q.Name)
	if asked == "" {
		return // the root, or a name we would not write
	}
	cnames := map[string]cnameLink{}
	n.pending = n.pending[:0]
	for {
		ah, err := p.AnswerHeader()
		if err == dnsmessage.ErrSectionDone {
			break
		}
		if err != nil {
			if !n.failed(cut) {
				return // malformed: trust none of it
			}
			break // cut short: the whole records before the cut stand
		}
		owner := canonical(ah.Name)
		switch ah.Type {
		case dnsmessage.TypeA:
			a, err := p.AResource()
			if err != nil {
				if !n.failed(cut) {
					return
				}
				goto done
			}
			n.pending = append(n.pending, answer{owner: owner, addr: netip.AddrFrom4(a.A), ttl: ah.TTL})
		case dnsmessage.TypeAAAA:
			a, err := p.AAAAResource()
			if err != nil {
				if !n.failed(cut) {
					return
				}
				goto done
			}
			n.pending = append(n.pending, answer{owner: owner, addr: netip.AddrFrom16(a.AAAA).Unmap(), ttl: ah.TTL})
		case dnsmessage.TypeCNAME:
			c, err := p.CNAMEResource()
			if err != nil {
				if !n.failed(cut) {
					return
				}
				goto done
			}
			cnames[owner] = cnameLink{target: canonical(c.CNAME), ttl: ah.TTL}
		default:
			if err := p.SkipAnswer(); err != nil {
				if !n.failed(cut) {
					return
				}
				goto done
			}
		}
	}
done:
	if len(n.pending) == 0 {
		return
	}
	// The names the question leads to, with the lowest TTL on the way.
	ttls := map[string]uint32{asked: ^uint32(0)}
	cur, ttl := asked, ^uint32(0)
	for range maxChain {
		l, ok := cnames[cur]
		if !ok {
			break
		}
		ttl = min(ttl, l.ttl)
		cur = l.target
		if _, loop := ttls[cur]; loop {
			break
		}
		ttls[cur] = ttl
	}
	for _, a := range n.pending {
		chainTTL, ok := ttls[a.owner]
		if !ok {
			continue // an answer for a name the client did not ask about
		}
		life := time.Duration(ttlSeconds(min(chainTTL, a.ttl)))*time.Second + n.grace
		n.put(key{netns: r.Netns, addr: a.addr}, asked, now.Add(life))
		n.stats.Answers++
	}
}

// ttlSeconds reads a TTL as RFC 2181 section 8 says: a value with the top
// bit set is 0.
func ttlSeconds(ttl uint32) uint32 {
	if ttl > 1<<31-1 {
		return 0
	}
	return ttl
}

type cnameLink struct {
	target string
	ttl    uint32
}

// failed counts a parse failure: as cut short when the capture cut the
// message (expected, and the records before the cut are whole), else as
// malformed. It reports whether the message was cut.
func (n *Names) failed(cut bool) bool {
	if cut {
		n.stats.Truncated++
	} else {
		n.stats.ParseErrors++
	}
	return cut
}

// canonical is a name as written in server.address: lower case, without the
// root's trailing dot. A name with bytes that are not printable ASCII (DNS
// allows any) is "", never a name: it would end up in attributes as is.
func canonical(name dnsmessage.Name) string {
	s := strings.TrimSuffix(name.String(), ".")
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return ""
		}
	}
	return strings.ToLower(s)
}

// Lookup returns the name addr was last answered for in netns, if that
// answer has not expired by now. An expired entry is dropped.
func (n *Names) Lookup(now time.Time, netns uint32, addr netip.Addr) (string, bool) {
	k := key{netns: netns, addr: addr.Unmap()}
	i, ok := n.index[k]
	if !ok {
		return "", false
	}
	nd := &n.nodes[i]
	if now.After(nd.expires) {
		n.drop(i)
		n.stats.Expired++
		return "", false
	}
	n.toFront(i)
	return nd.name, true
}

// Prune drops every entry expired by now, so names nobody looks up do not
// stay until they are evicted.
func (n *Names) Prune(now time.Time) {
	for i := range n.nodes {
		nd := &n.nodes[i]
		if nd.name != "" && now.After(nd.expires) {
			n.drop(int32(i))
			n.stats.Expired++
		}
	}
}

// put sets k's entry, making it the most recent; at the bound the least
// recent entry goes first.
func (n *Names) put(k key, name string, expires time.Time) {
	if i, ok := n.index[k]; ok {
		n.nodes[i].name, n.nodes[i].expires = name, expires
		n.toFront(i)
		return
	}
	if len(n.index) >= n.max {
		n.drop(n.tail)
		n.stats.Evictions++
	}
	var i int32
	if l := len(n.free); l > 0 {
		i, n.free = n.free[l-1], n.free[:l-1]
	} else {
		n.nodes = append(n.nodes, node{})
		i = int32(len(n.nodes) - 1)
	}
	n.nodes[i] = node{key: k, name: name, expires: expires, prev: -1, next: -1}
	n.index[k] = i
	n.link(i)
}

// drop removes entry i.
func (n *Names) drop(i int32) {
	n.unlink(i)
	delete(n.index, n.nodes[i].key)
	n.nodes[i] = node{} // let go of the name
	n.free = append(n.free, i)
}

func (n *Names) toFront(i int32) {
	if n.head == i {
		return
	}
	n.unlink(i)
	n.link(i)
}

// link puts i at the head.
func (n *Names) link(i int32) {
	nd := &n.nodes[i]
	nd.prev, nd.next = -1, n.head
	if n.head >= 0 {
		n.nodes[n.head].prev = i
	}
	n.head = i
	if n.tail < 0 {
		n.tail = i
	}
}

func (n *Names) unlink(i int32) {
	nd := &n.nodes[i]
	if nd.prev >= 0 {
		n.nodes[nd.prev].next = nd.next
	} else {
		n.head = nd.next
	}
	if nd.next >= 0 {
		n.nodes[nd.next].prev = nd.prev
	} else {
		n.tail = nd.prev
	}
	nd.prev, nd.next = -1, -1
}
