// SPDX-License-Identifier: Apache-2.0

package dnsnames

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

const ns = 4026531840

// rr is one answer record of a test response.
type rr struct {
	owner string
	ttl   uint32
	cname string     // a CNAME when set
	addr  netip.Addr // else an A or AAAA
	other bool       // else a TXT record
}

// response builds a successful response to an A question for q.
func response(t testing.TB, q string, answers ...rr) []byte {
	t.Helper()
	return build(t, dnsmessage.Header{ID: 7, Response: true, RecursionAvailable: true}, q, answers...)
}

func build(t testing.TB, h dnsmessage.Header, q string, answers ...rr) []byte {
	t.Helper()
	b := dnsmessage.NewBuilder(nil, h)
	b.EnableCompression()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.StartQuestions())
	must(b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(q), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET}))
	must(b.StartAnswers())
	for _, a := range answers {
		rh := dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(a.owner), Class: dnsmessage.ClassINET, TTL: a.ttl}
		switch {
		case a.cname != "":
			must(b.CNAMEResource(rh, dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(a.cname)}))
		case a.other:
			must(b.TXTResource(rh, dnsmessage.TXTResource{TXT: []string{"v=spf1 -all"}}))
		case a.addr.Is4():
			must(b.AResource(rh, dnsmessage.AResource{A: a.addr.As4()}))
		default:
			must(b.AAAAResource(rh, dnsmessage.AAAAResource{AAAA: a.addr.As16()}))
		}
	}
	msg, err := b.Finish()
	must(err)
	return msg
}

func whole(msg []byte) conns.DNSResponse {
	return conns.DNSResponse{Netns: ns, Size: len(msg), Msg: msg}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// lookup fails the test unless addr maps to want at now ("" for no name).
func lookup(t *testing.T, n *Names, now time.Time, netns uint32, a string, want string) {
	t.Helper()
	got, ok := n.Lookup(now, netns, addr(a))
	if got != want || ok != (want != "") {
		t.Errorf("%s in %d at +%v: %q %v, want %q", a, netns, now.Sub(t0), got, ok, want)
	}
}

func TestCNAMEChain(t *testing.T) {
	n := New(Config{Grace: time.Minute})
	msg := response(t, "WWW.Example.TEST.",
		rr{owner: "www.example.test.", ttl: 300, cname: "edge.cdn.test."},
		rr{owner: "edge.cdn.test.", ttl: 30, cname: "pop1.cdn.test."},
		rr{owner: "pop1.cdn.test.", ttl: 600, addr: addr("198.18.1.1")},
		rr{owner: "pop1.cdn.test.", ttl: 600, addr: addr("2001:db8::1")},
		rr{owner: "pop1.cdn.test.", ttl: 600, other: true},
		// Not on the question's chain: an answer about another name.
		rr{owner: "elsewhere.test.", ttl: 600, addr: addr("198.18.1.2")},
	)
	n.Learn(t0, whole(msg))
	// The name the client asked for, as written: lower case, no root dot.
	lookup(t, n, t0, ns, "198.18.1.1", "www.example.test")
	lookup(t, n, t0, ns, "2001:db8::1", "www.example.test")
	lookup(t, n, t0, ns, "::ffff:198.18.1.1", "www.example.test")
	lookup(t, n, t0, ns, "198.18.1.2", "")
	lookup(t, n, t0, ns+1, "198.18.1.1", "") // another namespace asked nothing
	// The chain's lowest TTL (30 s) and the grace bound the name.
	lookup(t, n, t0.Add(90*time.Second), ns, "198.18.1.1", "www.example.test")
	lookup(t, n, t0.Add(91*time.Second), ns, "198.18.1.1", "")
	if s := n.Stats(); s.Answers != 2 || s.Expired != 1 || s.ParseErrors != 0 || s.Responses != 1 {
		t.Errorf("stats %+v, want 2 answers, 1 expired", s)
	}
}

func TestCNAMELoop(t *testing.T) {
	n := New(Config{})
	msg := response(t, "a.test.",
		rr{owner: "a.test.", ttl: 60, cname: "b.test."},
		rr{owner: "b.test.", ttl: 60, cname: "a.test."},
		rr{owner: "b.test.", ttl: 60, addr: addr("198.18.2.1")},
	)
	n.Learn(t0, whole(msg))
	lookup(t, n, t0, ns, "198.18.2.1", "a.test")
}

func TestTTLAndGrace(t *testing.T) {
	n := New(Config{Grace: 30 * time.Second})
	n.Learn(t0, whole(response(t, "svc.test.", rr{owner: "svc.test.", ttl: 60, addr: addr("198.18.3.1")})))
	n.Learn(t0, whole(response(t, "zero.test.", rr{owner: "zero.test.", ttl: 0, addr: addr("198.18.3.2")})))
	lookup(t, n, t0.Add(90*time.Second), ns, "198.18.3.1", "svc.test")
	lookup(t, n, t0.Add(30*time.Second), ns, "198.18.3.2", "zero.test") // TTL 0: the grace alone
	// A new answer renews it.
	n.Learn(t0.Add(80*time.Second), whole(response(t, "svc.test.", rr{owner: "svc.test.", ttl: 60, addr: addr("198.18.3.1")})))
	lookup(t, n, t0.Add(170*time.Second), ns, "198.18.3.1", "svc.test")
	// Prune drops what nobody looked up.
	n.Prune(t0.Add(171 * time.Second))
	if n.Len() != 0 {
		t.Errorf("%d entries after both expired, want 0", n.Len())
	}
	if s := n.Stats(); s.Expired != 2 {
		t.Errorf("expired %d, want 2", s.Expired)
	}
}

// TestBound: 100,000 distinct answers into maps of several bounds: the bound
// holds, every answer over it is one eviction, and the most recent answers
// are the ones kept.
func TestBound(t *testing.T) {
	const answers = 100_000
	ip := func(i int) netip.Addr { // 198.18.0.0/15 holds 131,072
		return netip.AddrFrom4([4]byte{198, 18 + byte(i>>16), byte(i >> 8), byte(i)})
	}
	msgs := make([][]byte, answers)
	for i := range msgs {
		msgs[i] = response(t, "svc.test.", rr{owner: "svc.test.", ttl: 3600, addr: ip(i)})
	}
	for _, max := range []int{1, 1000, DefaultMaxEntries, answers} {
		n := New(Config{MaxEntries: max})
		if max == DefaultMaxEntries {
			n = New(Config{}) // the default
		}
		for i := range answers {
			n.Learn(t0, whole(msgs[i]))
			if n.Len() > max {
				t.Fatalf("max %d: %d entries after %d answers", max, n.Len(), i+1)
			}
		}
		s := n.Stats()
		if n.Len() != max || s.Evictions != uint64(answers-max) || s.Answers != answers {
			t.Errorf("max %d: len %d, evictions %d, answers %d; want %d, %d, %d", max, n.Len(), s.Evictions, s.Answers, max, answers-max, answers)
		}
		if got, _ := n.Lookup(t0, ns, ip(answers-1)); got != "svc.test" {
			t.Errorf("max %d: the last answer is gone", max)
		}
		if got, ok := n.Lookup(t0, ns, ip(0)); max < answers && ok {
			t.Errorf("max %d: the first answer is still there: %q", max, got)
		}
	}
}

// TestLookupKeepsRecent: a looked-up entry is recent again, so the bound
// evicts the one nobody used.
func TestLookupKeepsRecent(t *testing.T) {
	n := New(Config{MaxEntries: 2})
	learn := func(a string) {
		n.Learn(t0, whole(response(t, "x.test.", rr{owner: "x.test.", ttl: 60, addr: addr(a)})))
	}
	learn("198.18.4.1")
	learn("198.18.4.2")
	lookup(t, n, t0, ns, "198.18.4.1", "x.test")
	learn("198.18.4.3")
	lookup(t, n, t0, ns, "198.18.4.1", "x.test")
	lookup(t, n, t0, ns, "198.18.4.2", "")
	lookup(t, n, t0, ns, "198.18.4.3", "x.test")
}

func TestNotLearnt(t *testing.T) {
	a := rr{owner: "svc.test.", ttl: 60, addr: addr("198.18.5.1")}
	for _, c := range []struct {
		name  string
		msg   []byte
		parse uint64 // parse errors expected
	}{
		{"query", build(t, dnsmessage.Header{ID: 1}, "svc.test.", a), 0},
		{"nxdomain", build(t, dnsmessage.Header{ID: 1, Response: true, RCode: dnsmessage.RCodeNameError}, "svc.test.", a), 0},
		{"opcode", build(t, dnsmessage.Header{ID: 1, Response: true, OpCode: 2}, "svc.test.", a), 0},
		{"empty", nil, 1},
		{"header only", []byte{0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0}, 1},
		{"garbage", append([]byte{0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0}, "HTTP/1.1 200 OK\r\n"...), 1},
		{"not a response", []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 0}, // QR clear: not counted
		{"bad pointer", append(response(t, "svc.test.")[:12:12], 0xc0, 0xff, 0, 1, 0, 1), 1},
		{"unprintable name", response(t, "sv\tc.test.", rr{owner: "sv\tc.test.", ttl: 60, addr: addr("198.18.5.1")}), 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := New(Config{})
			n.Learn(t0, whole(c.msg))
			lookup(t, n, t0, ns, "198.18.5.1", "")
			if s := n.Stats(); s.ParseErrors != c.parse || s.Answers != 0 {
				t.Errorf("stats %+v, want %d parse errors", s, c.parse)
			}
		})
	}
}

// TestCut: a response cut by the capture keeps the answers that are whole
// before the cut; the cut is counted apart from malformed messages, and a
// message that is bad before the cut learns nothing.
func TestCut(t *testing.T) {
	var answers []rr
	for i := range 40 {
		answers = append(answers, rr{owner: "many.test.", ttl: 60, addr: netip.AddrFrom4([4]byte{198, 18, 6, byte(i)})})
	}
	msg := response(t, "many.test.", answers...)
	const capture = 512
	if len(msg) <= capture {
		t.Fatalf("response of %d bytes is not cut", len(msg))
	}
	n := New(Config{})
	n.Learn(t0, conns.DNSResponse{Netns: ns, Size: len(msg), Msg: msg[:capture]})
	// Header 12, question 4+10+4 = 18 (many.test: 1+4+1+4+1), each A with a
	// compressed owner 2+10+4 = 16 bytes: (512-30)/16 = 30 whole answers.
	whole := (capture - 12 - 16) / 16
	s := n.Stats()
	if s.Answers != uint64(whole) || s.Truncated != 1 || s.ParseErrors != 0 {
		t.Errorf("stats %+v, want %d answers, 1 truncated", s, whole)
	}
	lookup(t, n, t0, ns, "198.18.6.0", "many.test")
	lookup(t, n, t0, ns, netip.AddrFrom4([4]byte{198, 18, 6, byte(whole - 1)}).String(), "many.test")
	lookup(t, n, t0, ns, netip.AddrFrom4([4]byte{198, 18, 6, byte(whole)}).String(), "")

	// The same bytes claimed whole: malformed, nothing learnt.
	n = New(Config{})
	n.Learn(t0, conns.DNSResponse{Netns: ns, Size: capture, Msg: msg[:capture]})
	if s := n.Stats(); s.Answers != 0 || s.ParseErrors != 1 || s.Truncated != 0 {
		t.Errorf("stats %+v, want 1 parse error and nothing learnt", s)
	}
}

func FuzzLearn(f *testing.F) {
	f.Add(response(f, "a.test.", rr{owner: "a.test.", ttl: 1, cname: "b.test."}, rr{owner: "b.test.", ttl: 5, addr: addr("198.18.0.1")}), 0)
	f.Add([]byte{0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0}, 3)
	f.Add(response(f, "x.test.", rr{owner: "x.test.", ttl: 9, addr: addr("2001:db8::2")}), 20)
	f.Fuzz(func(t *testing.T, msg []byte, cut int) {
		n := New(Config{MaxEntries: 4, Grace: time.Second})
		size := len(msg)
		if cut > 0 && cut < len(msg) {
			msg = msg[:cut]
		}
		n.Learn(t0, conns.DNSResponse{Netns: ns, Size: size, Msg: msg})
		n.Learn(t0, conns.DNSResponse{Netns: ns, Size: size, Msg: msg})
		if n.Len() > 4 {
			t.Fatalf("%d entries over the bound", n.Len())
		}
		s := n.Stats()
		if s.Responses != 2 || s.ParseErrors+s.Truncated > 2 {
			t.Fatalf("stats %+v", s)
		}
		n.Prune(t0.Add((1<<31)*time.Second + 2*time.Second)) // past the longest TTL and the grace
		if n.Len() != 0 {
			t.Fatalf("%d entries survive the prune", n.Len())
		}
	})
}

func TestNamer(t *testing.T) {
	m := NewNamer(Config{Grace: time.Second})
	peer := netip.AddrPortFrom(addr("198.18.8.1"), 443)
	out := conns.Conn{Key: conns.Key{Peer: peer, Netns: ns, PID: 1, Transport: conns.TransportTCP}, Cookie: 1, Direction: conns.DirectionOutgoing}
	in := out
	in.Cookie, in.Direction = 2, conns.DirectionIncoming
	if got := m.Name(&out); got != "" {
		t.Errorf("named before any answer: %q", got)
	}

	msg := response(t, "api.test.", rr{owner: "api.test.", ttl: 10, addr: peer.Addr()})
	closedOut, closedIn := out, in
	closedOut.Cookie, closedIn.Cookie = 3, 4
	snap := conns.Snapshot{Time: t0, DNS: []conns.DNSResponse{whole(msg)}, Closed: []conns.Conn{closedOut, closedIn}}
	m.Apply(&snap)
	if got := m.Name(&out); got != "api.test" {
		t.Errorf("outgoing: %q, want api.test", got)
	}
	if got := m.Name(&in); got != "" {
		t.Errorf("incoming named %q", got)
	}
	if a, b := snap.Closed[0].PeerName, snap.Closed[1].PeerName; a != "api.test" || b != "" {
		t.Errorf("closed connections named %q and %q, want api.test and none (incoming)", a, b)
	}
	// Past TTL + grace, at the next snapshot: gone, and pruned.
	snap = conns.Snapshot{Time: t0.Add(12 * time.Second)}
	m.Apply(&snap)
	if got := m.Name(&out); got != "" || m.Len() != 0 {
		t.Errorf("after expiry: %q, %d names left", got, m.Len())
	}
}
