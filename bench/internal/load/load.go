// SPDX-License-Identifier: Apache-2.0

// Package load holds the loopback load generators of the benchmarks. Each is bounded in time
// and count and stops by itself; all traffic stays on 127.0.0.0/8.
package load

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// RR runs conns request/response pairs of size-byte messages over loopback TCP for d and
// returns transactions per second: the worst case for a tracer, with the most syscalls per byte.
func RR(conns, size int, d time.Duration) (float64, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	go serve(ln, func(c net.Conn) {
		buf := make([]byte, size)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	})
	var ops atomic.Int64
	var wg sync.WaitGroup
	var stop atomic.Bool
	errs := make(chan error, conns)
	cs := make([]net.Conn, conns)
	for i := range cs {
		if cs[i], err = net.Dial("tcp4", ln.Addr().String()); err != nil {
			return 0, err
		}
		defer cs[i].Close()
	}
	start := time.Now()
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, size)
			for !stop.Load() {
				if _, err := c.Write(buf); err != nil {
					errs <- err
					return
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					errs <- err
					return
				}
				ops.Add(1)
			}
		}()
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	el := time.Since(start)
	select {
	case err := <-errs:
		return 0, err
	default:
	}
	return float64(ops.Load()) / el.Seconds(), nil
}

// Bulk streams chunk-byte writes over one loopback TCP connection for d and returns bytes
// per second received.
func Bulk(chunk int, d time.Duration) (float64, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	var got atomic.Int64
	go serve(ln, func(c net.Conn) {
		buf := make([]byte, 256<<10)
		for {
			n, err := c.Read(buf)
			got.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := make([]byte, chunk)
	start := time.Now()
	deadline := start.Add(d)
	_ = c.SetWriteDeadline(deadline)
	for time.Now().Before(deadline) {
		if _, err := c.Write(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				break
			}
			return 0, err
		}
	}
	el := time.Since(start)
	return float64(got.Load()) / el.Seconds(), nil
}

// ChurnResult is what Churn did.
type ChurnResult struct {
	Completed int64   // connections opened, used and closed cleanly
	Failed    int64   // connections that failed at any step
	Rate      float64 // completed per second, over StartNS..EndNS
	StartNS   int64   // when pacing started (Unix ns): several generators share it
	EndNS     int64   // when the last connection of this generator closed (Unix ns)
}

// ChurnConfig is one churn generator's share of the load.
type ChurnConfig struct {
	Rate      float64       // new connections per second
	Dur       time.Duration // pacing window: Rate*Dur connections at most, none opened after it
	Port      int           // listeners' port
	FirstAddr int           // listeners on 127.0.0.<FirstAddr> .. <FirstAddr+Addrs-1>
	Addrs     int
	Workers   int       // client goroutines
	Start     time.Time // when connection 0 is due; zero: now
	// Linger0 closes the client end with SO_LINGER 0: a reset instead of a FIN, so the
	// client's 4-tuple skips TIME_WAIT (the server end closes on the reset).
	Linger0 bool
	// Exchanges are the connections' first messages: listener a serves Exchanges[a mod n]
	// (connection i goes to listener i mod Addrs). None: 16 zero bytes each way.
	Exchanges []Exchange
}

// Churn opens new TCP connections at c.Rate per second for c.Dur (one that falls behind opens
// none after c.Dur, so its rate is what it reached in the window), spread over its own
// listeners on c.Port of c.Addrs consecutive loopback addresses (more destination addresses,
// more 4-tuples: no ephemeral port runs out; generators in several processes take disjoint
// addresses). Each connection sends its listener's request (16 zero bytes without
// c.Exchanges), reads the whole response and closes; the server closes after the client. It
// returns when every connection it opened has closed.
func Churn(c ChurnConfig) (ChurnResult, error) {
	if c.Rate <= 0 || c.Addrs <= 0 || c.Workers <= 0 || c.FirstAddr < 1 || c.FirstAddr+c.Addrs-1 > 254 {
		return ChurnResult{}, fmt.Errorf("churn: rate %v, addresses 127.0.0.%d+%d, %d workers", c.Rate, c.FirstAddr, c.Addrs, c.Workers)
	}
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var srv sync.WaitGroup
	dsts := make([]string, c.Addrs)
	exs := make([]Exchange, c.Addrs)
	for a := range dsts {
		exs[a] = Exchange{Request: make([]byte, 16), Response: make([]byte, 16)}
		if len(c.Exchanges) > 0 {
			exs[a] = c.Exchanges[a%len(c.Exchanges)]
		}
		ex := exs[a]
		dsts[a] = fmt.Sprintf("127.0.0.%d:%d", c.FirstAddr+a, c.Port)
		ln, err := net.Listen("tcp4", dsts[a])
		if err != nil {
			return ChurnResult{}, err
		}
		lns = append(lns, ln)
		go serveWG(ln, &srv, func(c net.Conn) {
			buf := make([]byte, len(ex.Request))
			if _, err := io.ReadFull(c, buf); err == nil {
				_, _ = c.Write(ex.Response)
				_, _ = c.Read(buf) // EOF (or a reset, Linger0): the client closed first
			}
		})
	}
	total := int64(c.Rate * c.Dur.Seconds())
	var next, done, failed atomic.Int64
	var wg sync.WaitGroup
	start := c.Start
	if start.IsZero() {
		start = time.Now()
	}
	deadline := start.Add(c.Dur)
	interval := time.Duration(float64(time.Second) / c.Rate)
	for w := 0; w < c.Workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for {
				i := next.Add(1) - 1
				if i >= total || time.Now().After(deadline) {
					return // all opened, or the window is over: a generator behind pace stops on time
				}
				// Pace: connection i is due at start + i*interval.
				if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
					time.Sleep(wait)
				}
				a := int(i) % len(dsts)
				conn, err := net.Dial("tcp4", dsts[a])
				if err != nil {
					failed.Add(1)
					continue
				}
				_, err = conn.Write(exs[a].Request)
				if err == nil {
					if cap(buf) < len(exs[a].Response) {
						buf = make([]byte, len(exs[a].Response))
					}
					_, err = io.ReadFull(conn, buf[:len(exs[a].Response)])
				}
				if c.Linger0 && err == nil {
					err = conn.(*net.TCPConn).SetLinger(0)
				}
				conn.Close()
				if err != nil {
					failed.Add(1)
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	end := time.Now()
	time.Sleep(50 * time.Millisecond) // let the servers see EOF
	for _, ln := range lns {
		ln.Close()
	}
	srv.Wait()
	return ChurnResult{Completed: done.Load(), Failed: failed.Load(), Rate: float64(done.Load()) / end.Sub(start).Seconds(),
		StartNS: start.UnixNano(), EndNS: end.UnixNano()}, nil
}

// HoldConfig is a set of long-lived connections.
type HoldConfig struct {
	N     int // connections (both ends in this process: 2N sockets)
	Port  int
	Addrs int           // listeners on 127.0.0.1 .. 127.0.0.<Addrs>
	Every time.Duration // a traffic round this often; 0: none after the first byte each way
	Size  int           // bytes each client sends per round; the server echoes them
}

// Holder keeps the connections of Hold open.
type Holder struct {
	lns   []net.Listener
	mu    sync.Mutex
	conns []net.Conn // both ends
	sent  atomic.Int64
	stop  sync.Once
	quit  chan struct{}
	done  chan struct{}
	err   error // of the traffic rounds, set before done closes
}

// Hold opens cfg.N loopback TCP connections spread over 127.0.0.1 .. 127.0.0.<cfg.Addrs> on
// cfg.Port and exchanges one byte each way on each (so the tracer tracks both ends). It returns
// once every connection has done so; then, every cfg.Every, each client sends cfg.Size bytes and
// reads them back, until Quiesce or Close.
func Hold(cfg HoldConfig) (*Holder, error) {
	h := &Holder{quit: make(chan struct{}), done: make(chan struct{})}
	for a := 1; a <= cfg.Addrs; a++ {
		ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.%d:%d", a, cfg.Port))
		if err != nil {
			h.Close()
			return nil, err
		}
		h.lns = append(h.lns, ln)
		go serve(ln, func(c net.Conn) {
			h.keep(c)
			buf := make([]byte, max(1, cfg.Size))
			if _, err := io.ReadFull(c, buf[:1]); err != nil {
				return
			}
			if _, err := c.Write(buf[:1]); err != nil {
				return
			}
			for { // echo each round until the client end closes
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		})
	}
	var clients []net.Conn
	b := make([]byte, 1)
	for i := range cfg.N {
		c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.%d:%d", 1+i%cfg.Addrs, cfg.Port))
		if err != nil {
			h.Close()
			return nil, fmt.Errorf("connection %d of %d: %w", i, cfg.N, err)
		}
		h.keep(c)
		clients = append(clients, c)
		if _, err := c.Write(b); err == nil {
			_, err = io.ReadFull(c, b)
		}
		if err != nil {
			h.Close()
			return nil, fmt.Errorf("connection %d of %d: %w", i, cfg.N, err)
		}
		h.sent.Add(2)
	}
	go h.rounds(clients, cfg)
	return h, nil
}

func (h *Holder) keep(c net.Conn) {
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.mu.Unlock()
}

func (h *Holder) rounds(clients []net.Conn, cfg HoldConfig) {
	defer close(h.done)
	if cfg.Every <= 0 {
		<-h.quit
		return
	}
	buf := make([]byte, cfg.Size)
	t := time.NewTicker(cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-h.quit:
			return
		case <-t.C:
		}
		for _, c := range clients {
			_, err := c.Write(buf)
			if err == nil {
				_, err = io.ReadFull(c, buf)
			}
			if err != nil {
				h.err = fmt.Errorf("traffic round: %w", err)
				return
			}
			h.sent.Add(2 * int64(cfg.Size))
		}
	}
}

// Quiesce ends the traffic rounds after the one in flight and returns the payload bytes both
// ends sent in all (exact: every write completed and was read back).
func (h *Holder) Quiesce() (int64, error) {
	h.stop.Do(func() { close(h.quit) })
	<-h.done
	return h.sent.Load(), h.err
}

// Close ends the traffic and closes every connection and listener.
func (h *Holder) Close() {
	h.stop.Do(func() { close(h.quit) })
	for _, ln := range h.lns {
		ln.Close()
	}
	h.mu.Lock()
	for _, c := range h.conns {
		c.Close()
	}
	h.mu.Unlock()
}

// serve accepts until the listener closes and hands each connection to h, closing it after.
func serve(ln net.Listener, h func(net.Conn)) { serveWG(ln, nil, h) }

// serveWG is serve that counts the running handlers in wg.
func serveWG(ln net.Listener, wg *sync.WaitGroup, h func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if wg != nil {
			wg.Add(1)
		}
		go func() {
			defer c.Close()
			if wg != nil {
				defer wg.Done()
			}
			h(c)
		}()
	}
}
