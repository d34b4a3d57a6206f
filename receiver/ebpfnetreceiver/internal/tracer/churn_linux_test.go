// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// churn opens and closes n TCP connections to one server as fast as workers
// goroutines can, each sending req bytes and receiving resp bytes, while
// another goroutine polls the tracer. It returns the server address.
func churn(t *testing.T, col *collector, n, workers, req, resp int) netip.AddrPort {
	t.Helper()
	ln := listen(t, "tcp4", "127.0.0.1:0")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, req)
				if _, err := io.ReadFull(c, buf); err == nil {
					c.Write(make([]byte, resp))
				}
				c.Close()
			}()
		}
	}()

	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, in := make([]byte, req), make([]byte, resp)
			for next.Add(1) <= int64(n) {
				c, err := net.Dial("tcp4", ln.Addr().String())
				if err != nil {
					failed.Add(1)
					continue
				}
				c.Write(out)
				if _, err := io.ReadFull(c, in); err != nil {
					failed.Add(1)
				}
				c.Close()
			}
		}()
	}
	// Poll while the churn runs, as the receiver would, so records cross poll
	// boundaries and the ring reader is woken under load.
	stop := make(chan struct{})
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				col.poll()
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-polled
	if failed.Load() != 0 {
		t.Fatalf("%d of %d connections failed in the test itself", failed.Load(), n)
	}
	return netip.MustParseAddrPort(ln.Addr().String())
}

// TestChurn10k: 10,000 short-lived connections; every one is reported closed
// exactly once at each end, byte totals equal what the test moved, no drops.
// Events the kernel skipped are logged, not failed: for TCP they can delay an
// owner but not change a count or lose a close, which the exact checks prove.
func TestChurn10k(t *testing.T) {
	tr := startTracer(t, Config{})
	col := newCollector(t, tr)
	const n, req, resp = 10000, 100, 1000
	server := churn(t, col, n, 4, req, resp)

	clients := col.waitClosed(n, 30*time.Second, func(c conns.Conn) bool {
		return c.Peer == server && c.Transport == conns.TransportTCP
	})
	servers := col.waitClosed(n, 30*time.Second, func(c conns.Conn) bool {
		return c.Local == server && c.Transport == conns.TransportTCP
	})
	sum := func(cs []conns.Conn, dir conns.Direction) (sent, recv uint64) {
		for _, c := range cs {
			if c.Direction != dir {
				t.Errorf("direction %v, want %v: %+v", c.Direction, dir, c)
			}
			sent += c.SentBytes
			recv += c.RecvBytes
		}
		return
	}
	cs, cr := sum(clients, conns.DirectionOutgoing)
	ss, sr := sum(servers, conns.DirectionIncoming)
	if cs != n*req || cr != n*resp || ss != n*resp || sr != n*req {
		t.Errorf("byte totals: clients sent %d received %d, servers sent %d received %d; want %d and %d", cs, cr, ss, sr, n*req, n*resp)
	}
	// A record that found the ring full stays in the table and comes with the
	// next poll (RingReserveFailed): delayed, not dropped, and the exact
	// counts above include it.
	tel := tr.Telemetry()
	if tel.Drops() != 0 {
		t.Errorf("drops during churn: %+v", tel)
	}
	t.Logf("telemetry after churn: %+v", tel)
	logRecursionMisses(t, tr)
}

// logRecursionMisses logs how often the kernel skipped each program (its
// per-program recursion guard): where the backups earn their keep, and what
// a failure on a kernel that preempts tracepoint programs looked like.
func logRecursionMisses(t *testing.T, tr *Tracer) {
	t.Helper()
	var b strings.Builder
	for _, p := range tr.loader.recursionMisses() {
		if p.misses > 0 {
			fmt.Fprintf(&b, " %s=%d", p.name, p.misses)
		}
	}
	t.Logf("kernel skips per program:%s", b.String())
}
