// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/privtest"
)

// hooksEnv forces a hook mode for every tracer the tests start, so the kernel
// matrix can run the whole suite through kprobes or fentry.
const hooksEnv = "EBPFNET_TEST_HOOKS"

// startTracer starts a tracer for one test and closes it at the end. Off CI a
// machine that cannot run BPF skips the test; under CI it fails.
func startTracer(t *testing.T, cfg Config) *Tracer {
	t.Helper()
	cfg.ClassifyProtocols = true // the receiver's default
	return startTracerAs(t, cfg)
}

// startTracerAs starts a tracer with cfg as it is.
func startTracerAs(t *testing.T, cfg Config) *Tracer {
	t.Helper()
	privtest.Require(t)
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t)
	}
	if cfg.Hooks == "" {
		cfg.Hooks = os.Getenv(hooksEnv)
	}
	tr, err := New(cfg)
	if errors.Is(err, ErrNoBTF) || errors.Is(err, ErrMissingCapability) || errors.Is(err, ErrHookUnavailable) {
		privtest.SkipOrFail(t, err)
	}
	if err != nil {
		t.Fatalf("start tracer: %+v", err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Errorf("close tracer: %v", err)
		}
	})
	return tr
}

// collector polls a tracer and keeps every closed connection it reports,
// checking the Snapshot contract on the way: a closed connection comes exactly
// once, and never in Active and Closed of one poll.
type collector struct {
	t      *testing.T
	tr     *Tracer
	closed map[conns.ID]conns.Conn
	active map[conns.ID]conns.Conn // of the last poll
}

func newCollector(t *testing.T, tr *Tracer) *collector {
	return &collector{t: t, tr: tr, closed: map[conns.ID]conns.Conn{}}
}

func (c *collector) poll() {
	c.t.Helper()
	snap, err := c.tr.Poll(context.Background())
	if err != nil {
		c.t.Fatalf("poll: %v", err)
	}
	c.active = make(map[conns.ID]conns.Conn, len(snap.Active))
	for _, a := range snap.Active {
		c.active[a.ID()] = a
	}
	for _, cl := range snap.Closed {
		id := cl.ID()
		if _, dup := c.closed[id]; dup {
			c.t.Errorf("connection reported closed twice: %+v", cl)
		}
		if _, both := c.active[id]; both {
			c.t.Errorf("connection in Active and Closed of one poll: %+v", cl)
		}
		c.closed[id] = cl
	}
}

// waitClosed polls until n closed connections match, or fails after timeout.
func (c *collector) waitClosed(n int, timeout time.Duration, match func(conns.Conn) bool) []conns.Conn {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.poll()
		var got []conns.Conn
		for _, cl := range c.closed {
			if match(cl) {
				got = append(got, cl)
			}
		}
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) != n {
				stillActive := 0
				for _, a := range c.active {
					if match(a) {
						stillActive++
					}
				}
				c.t.Fatalf("want %d closed connections, got %d after %v (%d matching still active; telemetry %+v)",
					n, len(got), timeout, stillActive, c.tr.Telemetry())
			}
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCounts polls until the open connections that match show exactly want:
// (sent, received) bytes by local address.
func (c *collector) waitCounts(timeout time.Duration, match func(conns.Conn) bool, want map[netip.AddrPort][2]uint64) {
	c.t.Helper()
	got := map[netip.AddrPort][2]uint64{}
	waitFor(c.t, timeout, func() bool {
		c.poll()
		clear(got)
		for _, a := range c.active {
			if match(a) {
				got[a.Local] = [2]uint64{a.SentBytes, a.RecvBytes}
			}
		}
		return maps.Equal(got, want)
	}, "open ends show (sent, received) %v, want "+fmt.Sprint(want), func() any { return got })
}

// waitActive polls until one active connection matches.
func (c *collector) waitActive(timeout time.Duration, match func(conns.Conn) bool) conns.Conn {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.poll()
		for _, a := range c.active {
			if match(a) {
				return a
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("no matching active connection after %v", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// netnsInode returns the inode of a network namespace file.
func netnsInode(t *testing.T, path string) uint32 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return uint32(st.Ino)
}

// ssInfo is what `ss -tie` reports for one TCP socket: the kernel's ground
// truth the tracer is checked against.
type ssInfo struct {
	local, peer   netip.AddrPort
	cookie        uint64
	dataSegsOut   uint64
	dataSegsIn    uint64
	bytesReceived uint64
	retrans       uint32        // total_retrans, the second number of retrans:x/total (absent: 0)
	rtt, rttVar   time.Duration // rtt:srtt/rttvar, printed in ms with microsecond precision
}

var (
	ssField   = regexp.MustCompile(`\b(sk|data_segs_out|data_segs_in|bytes_received):([0-9a-f]+)`)
	ssRetrans = regexp.MustCompile(`\bretrans:[0-9]+/([0-9]+)`)
	ssRTT     = regexp.MustCompile(`\brtt:([0-9.]+)/([0-9.]+)`)
)

func ssMillis(s string) time.Duration {
	v, _ := strconv.ParseFloat(s, 64)
	return time.Duration(v * float64(time.Millisecond)).Round(time.Microsecond)
}

// ssTCP lists the TCP sockets with the given port at either end, by local address.
func ssTCP(t *testing.T, port uint16) map[netip.AddrPort]ssInfo {
	t.Helper()
	filter := fmt.Sprintf("( sport = :%d or dport = :%d )", port, port)
	out, err := exec.Command("ss", "-tieHn", "state", "established", filter).CombinedOutput()
	if err != nil {
		t.Fatalf("ss: %v: %s", err, out)
	}
	res := map[netip.AddrPort]ssInfo{}
	var cur *ssInfo
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, " ") {
			f := strings.Fields(line)
			if len(f) < 4 {
				continue
			}
			// Recv-Q Send-Q Local Peer [ino:.. sk:.. ...]
			info := ssInfo{local: parseSSAddr(t, f[2]), peer: parseSSAddr(t, f[3])}
			cur = &info
			res[info.local] = info
		}
		for _, m := range ssField.FindAllStringSubmatch(line, -1) {
			if cur == nil {
				continue
			}
			base := 10
			if m[1] == "sk" {
				base = 16
			}
			v, _ := strconv.ParseUint(m[2], base, 64)
			switch m[1] {
			case "sk":
				cur.cookie = v
			case "data_segs_out":
				cur.dataSegsOut = v
			case "data_segs_in":
				cur.dataSegsIn = v
			case "bytes_received":
				cur.bytesReceived = v
			}
			res[cur.local] = *cur
		}
		if cur == nil {
			continue
		}
		if m := ssRetrans.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseUint(m[1], 10, 32)
			cur.retrans = uint32(v)
		}
		if m := ssRTT.FindStringSubmatch(line); m != nil {
			cur.rtt, cur.rttVar = ssMillis(m[1]), ssMillis(m[2])
		}
		res[cur.local] = *cur
	}
	return res
}

func parseSSAddr(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	s = strings.NewReplacer("[", "", "]", "").Replace(s)
	i := strings.LastIndex(s, ":")
	a, err := netip.ParseAddr(s[:i])
	if err != nil {
		t.Fatalf("ss address %q: %v", s, err)
	}
	p, _ := strconv.ParseUint(s[i+1:], 10, 16)
	return netip.AddrPortFrom(a.Unmap(), uint16(p))
}

// listen opens a listener for one test and closes it at the end.
func listen(t *testing.T, network, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func selfNetns(t *testing.T) uint32 { return netnsInode(t, "/proc/self/ns/net") }

func pid() uint32 { return uint32(os.Getpid()) }

// selfComm is this process's task name, as the kernel keeps it.
func selfComm(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// serveOne accepts one connection on ln, lets read take what the client
// sends, then writes reply bytes and closes it. The channel gets the first
// error, or nil.
func serveOne(ln net.Listener, read func(net.Conn) error, reply int) <-chan error {
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- fmt.Errorf("accept: %w", err)
			return
		}
		defer c.Close()
		if err := read(c); err != nil {
			errc <- err
			return
		}
		_, err = c.Write(make([]byte, reply))
		errc <- err
	}()
	return errc
}

// dialPair connects a client to a new listener on addr and returns both ends;
// the test's cleanup closes them.
func dialPair(t *testing.T, network, addr string) (cli, srv net.Conn) {
	t.Helper()
	ln := listen(t, network, addr)
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	cli, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	srv, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { srv.Close() })
	return cli, srv
}

// waitFor polls cond until it holds, or fails after timeout saying what it
// last saw (format with what()'s value).
func waitFor(t *testing.T, timeout time.Duration, cond func() bool, format string, what func() any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: "+format, timeout, what())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
