// SPDX-License-Identifier: Apache-2.0

//go:build linux

package nat

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/privtest"
)

// testNS is a network namespace the test creates, with loopback up and an
// nftables DNAT of 127.0.0.1:80 to 127.0.0.1:8080 in its output hook, so
// that its loopback connections are tracked and translated.
type testNS struct{ name string }

func newTestNS(t testing.TB) *testNS {
	t.Helper()
	privtest.Require(t)
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("needs %s: %v", tool, err)
		}
	}
	ns := &testNS{name: fmt.Sprintf("enatw%d", os.Getpid()%100000)}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns.name).Run() })
	for _, args := range [][]string{{"netns", "add", ns.name}, {"-n", ns.name, "link", "set", "lo", "up"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	cmd := exec.Command("ip", "netns", "exec", ns.name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(`table ip enatw { chain out { type nat hook output priority -100; ip daddr 127.0.0.1 tcp dport 80 dnat to 127.0.0.1:8080; }; }`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	return ns
}

// in runs fn on a thread in the namespace.
func (ns *testNS) in(t testing.TB, fn func()) {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	f, err := os.Open("/run/netns/" + ns.name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		panic(err)
	}
}

// watcherIn starts a Watcher whose own namespace is ns, so that no other
// traffic of the host reaches its counts.
func (ns *testNS) watcherIn(t testing.TB, tb *Table) *Watcher {
	t.Helper()
	var w *Watcher
	var err error
	ns.in(t, func() { w, err = NewWatcher(tb, zap.NewNop()) })
	if err != nil {
		privtest.SkipOrFail(t, err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// serve accepts and closes connections on 127.0.0.1:8080 in ns.
func (ns *testNS) serve(t testing.TB) {
	t.Helper()
	var ln net.Listener
	var err error
	ns.in(t, func() { ln, err = net.Listen("tcp4", "127.0.0.1:8080") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

// dialReset opens a connection to 127.0.0.1:80 (DNATed to :8080) on the
// calling thread, which is in the namespace, and resets it: no TIME_WAIT,
// so the ports are reused at once (conntrack still has one NEW each).
func dialReset() error { return dialResetPort(80) }

func dialResetPort(port int) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return err
	}
	return unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
}

// TestWatcherTranslatesNewConnections: a connection made after the Watcher
// started is in its table with the DNAT conntrack did, from the NEW event;
// the event of an untranslated connection, tracked as well, is filtered
// out in the kernel and never read.
func TestWatcherTranslatesNewConnections(t *testing.T) {
	ns := newTestNS(t)
	tb := NewTable(Options{})
	w := ns.watcherIn(t, tb)
	ns.serve(t)
	var c, direct net.Conn
	var err, derr error
	ns.in(t, func() {
		direct, derr = net.Dial("tcp4", "127.0.0.1:8080") // first: its event would be read first
		c, err = net.Dial("tcp4", "127.0.0.1:80")
	})
	if derr != nil {
		t.Fatal(derr)
	}
	direct.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := netip.MustParseAddrPort(c.LocalAddr().String())
	var tr Translation
	var ok bool
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if tr, ok = tb.Lookup(0, ProtoTCP, local, netip.MustParseAddrPort("127.0.0.1:80")); ok {
			break
		}
	}
	if want := (Translation{Peer: netip.MustParseAddrPort("127.0.0.1:8080")}); !ok || tr != want {
		t.Fatalf("translation of %v -> 127.0.0.1:80: %+v %v, want %+v (stats %+v)", local, tr, ok, want, w.Stats())
	}
	if s := w.Stats(); s.New != 1 || s.Lost != 0 {
		t.Errorf("%d NEW events read, %d lost; want only the translated connection's", s.New, s.Lost)
	}
	out, err := exec.Command("ip", "netns", "exec", ns.name, "conntrack", "-L", "-p", "tcp").CombinedOutput()
	if err != nil || strings.Count(string(out), "sport=8080") != 2 {
		t.Errorf("conntrack -L should list both connections (the kernel tracks the untranslated one too): %v: %s", err, out)
	}
}

// TestWatcherTranslatesIPv6: the same over IPv6 (ctnetlink's 16-byte
// addresses), UDP this time: a datagram to [::1]:53 DNATed to [::1]:5353.
func TestWatcherTranslatesIPv6(t *testing.T) {
	ns := newTestNS(t)
	cmd := exec.Command("ip", "netns", "exec", ns.name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(`table ip6 enatw6 { chain out { type nat hook output priority -100; ip6 daddr ::1 udp dport 53 dnat to [::1]:5353; }; }`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
	tb := NewTable(Options{})
	w := ns.watcherIn(t, tb)
	var srv, c net.Conn
	var err error
	ns.in(t, func() {
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp6", "[::1]:5353"); err != nil {
			return
		}
		srv = pc.(*net.UDPConn)
		c, err = net.Dial("udp6", "[::1]:53")
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	defer c.Close()
	if _, err := c.Write([]byte("q")); err != nil {
		t.Fatal(err)
	}
	local := netip.MustParseAddrPort(c.LocalAddr().String())
	var tr Translation
	var ok bool
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if tr, ok = tb.Lookup(0, ProtoUDP, local, netip.MustParseAddrPort("[::1]:53")); ok {
			break
		}
	}
	if want := (Translation{Peer: netip.MustParseAddrPort("[::1]:5353")}); !ok || tr != want {
		t.Fatalf("translation of %v -> [::1]:53: %+v %v, want %+v (stats %+v)", local, tr, ok, want, w.Stats())
	}
}

// TestWatcherCountsEveryEvent: with the reader held up and a small socket
// buffer, the kernel drops events; every event sent to the watcher's
// socket is then either read or counted lost. The ground truth is a second
// socket in the namespace, with the same filter and a buffer that holds
// them all: read + lost on the watcher's must equal what it received
// (NEW and DESTROY alike: a lost event may be either), and the NEW ones
// alone cannot be fewer than the connections made.
func TestWatcherCountsEveryEvent(t *testing.T) {
	ns := newTestNS(t)
	var truth *nlSocket
	var err error
	ns.in(t, func() { truth, err = newNLSocket(groupNew | groupDestroy) })
	if err != nil {
		t.Fatal(err)
	}
	var sent, sentNew atomic.Uint64 // events the kernel sent to a socket that lost none
	go func() {
		b := newBatch(16)
		for {
			k, err := truth.recvBatch(b, true)
			if err != nil {
				return
			}
			for i := range k {
				data, _ := b.datagram(i)
				for m, rest, ok := nextMessage(data); ok; m, rest, ok = nextMessage(rest) {
					sent.Add(1)
					if m.typ == ctMsgNew {
						sentNew.Add(1)
					}
				}
			}
		}
	}()
	defer truth.Close()

	old := rcvBuf
	rcvBuf = 64 << 10 // a few dozen events
	defer func() { rcvBuf = old }()
	tb := NewTable(Options{})
	w := ns.watcherIn(t, tb)
	ns.serve(t)

	const conns = 3000
	tb.mu.Lock() // the reader blocks in its first Upsert
	var dialErr error
	ns.in(t, func() {
		for range conns {
			if dialErr = dialReset(); dialErr != nil {
				return
			}
		}
	})
	tb.mu.Unlock()
	if dialErr != nil {
		t.Fatal(dialErr)
	}
	var s WatcherStats
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if s = w.Stats(); sentNew.Load() >= conns && s.Events+s.Lost >= sent.Load() {
			break
		}
	}
	time.Sleep(200 * time.Millisecond) // nothing more may come
	s = w.Stats()
	if got, want := s.Events+s.Lost, sent.Load(); got != want || s.Lost == 0 || s.Resyncs == 0 || sentNew.Load() < conns {
		t.Fatalf("%d connections, %d events sent (%d NEW): %d read, %d lost, %d re-dumps; want read+lost = sent, some lost, a re-dump, at least one NEW per connection",
			conns, want, sentNew.Load(), s.Events, s.Lost, s.Resyncs)
	}
	t.Logf("%d connections, %d events sent (%d NEW): %d read, %d lost (counted), %d re-dumps", conns, sent.Load(), sentNew.Load(), s.Events, s.Lost, s.Resyncs)
}

// BenchmarkConntrack20k measures what following conntrack costs at 20,000
// new connections a second: a helper process (this test binary) opens and
// resets loopback connections at that rate in a namespace for
// NAT_BENCH_SECONDS (default 5) while this process only reads the events.
// translated: every connection is DNATed, so every event is read;
// untranslated: tracked but not translated, so the socket filter drops every
// event in the kernel. Reported: the connections/s reached, the CPU this
// process used per second (user+system, all threads: the event reader, the
// table, the runtime), the events read and lost.
// Run: CI=true go test -run '^$' -bench Conntrack20k -benchtime 1x ./internal/nat/
func BenchmarkConntrack20k(b *testing.B) {
	for _, arm := range []struct {
		name string
		port int
	}{{"translated", 80}, {"untranslated", 8080}} {
		b.Run(arm.name, func(b *testing.B) { benchConntrack(b, arm.port) })
	}
}

func benchConntrack(b *testing.B, port int) {
	ns := newTestNS(b)
	tb := NewTable(Options{})
	w := ns.watcherIn(b, tb)
	secs := 5
	if v, err := strconv.Atoi(os.Getenv("NAT_BENCH_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	for b.Loop() {
		before := w.Stats()
		var ru0, ru1 unix.Rusage
		unix.Getrusage(unix.RUSAGE_SELF, &ru0)
		start := time.Now()
		cmd := exec.Command("ip", "netns", "exec", ns.name, os.Args[0])
		cmd.Env = append(os.Environ(), "NAT_LOAD_RATE=20000", "NAT_LOAD_SECONDS="+strconv.Itoa(secs), "NAT_LOAD_PORT="+strconv.Itoa(port))
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("load helper: %v: %s", err, out)
		}
		var made int
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			fmt.Sscanf(sc.Text(), "connections %d", &made)
		}
		want := uint64(made) // NEW events read or lost
		if port != 80 {
			want = 0
		}
		// Let the reader drain what is queued, then measure.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if s := w.Stats(); s.New+s.Lost-before.New-before.Lost >= want {
				break
			}
		}
		elapsed := time.Since(start).Seconds()
		unix.Getrusage(unix.RUSAGE_SELF, &ru1)
		cpu := time.Duration(ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano())
		s := w.Stats()
		b.ReportMetric(float64(made)/float64(secs), "conns/s")
		b.ReportMetric(cpu.Seconds()*1000/elapsed, "cpu-ms/s")
		b.ReportMetric(float64(s.Events-before.Events), "events")
		b.ReportMetric(float64(s.New-before.New), "new-events")
		b.ReportMetric(float64(s.Lost-before.Lost), "lost")
		b.ReportMetric(float64(s.Resyncs-before.Resyncs), "resyncs")
		if got := s.New + s.Lost - before.New - before.Lost; got != want {
			b.Errorf("%d connections to port %d, %d NEW events read + lost, want %d", made, port, got, want)
		}
	}
}

// TestMain makes the test binary, run by BenchmarkConntrack20k with
// NAT_LOAD_RATE set, the load process instead of running the tests.
func TestMain(m *testing.M) {
	if rate, _ := strconv.Atoi(os.Getenv("NAT_LOAD_RATE")); rate > 0 {
		secs, _ := strconv.Atoi(os.Getenv("NAT_LOAD_SECONDS"))
		port, _ := strconv.Atoi(os.Getenv("NAT_LOAD_PORT"))
		if err := natLoad(rate, secs, port); err != nil {
			fmt.Fprintln(os.Stderr, "nat load:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// natLoad is the load of BenchmarkConntrack20k, run inside the test
// namespace: rate new connections a second to port for secs seconds, each
// connect then reset; it prints how many it made.
func natLoad(rate, secs, port int) error {
	if secs <= 0 {
		return fmt.Errorf("NAT_LOAD_SECONDS %d", secs)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:8080")
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// Workers take tokens paced at rate; each connection is connect then
	// reset, on blocking sockets (loopback completes the handshake inline).
	tokens := make(chan struct{}, rate)
	var made atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range tokens {
				if err := dialResetPort(port); err != nil {
					if !errors.Is(err, unix.EADDRNOTAVAIL) {
						firstErr.CompareAndSwap(nil, err)
					}
					continue
				}
				made.Add(1)
			}
		}()
	}
	const tick = time.Millisecond
	perTick := rate / int(time.Second/tick)
	end := time.Now().Add(time.Duration(secs) * time.Second)
	tk := time.NewTicker(tick)
	for now := range tk.C {
		if now.After(end) {
			break
		}
		for range perTick {
			select {
			case tokens <- struct{}{}:
			default: // the workers are behind: the rate is not reached
			}
		}
	}
	tk.Stop()
	close(tokens)
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "connect error: %v\n", e)
	}
	fmt.Printf("connections %d\n", made.Load())
	return nil
}
