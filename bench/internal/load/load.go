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
	Rate      float64 // completed per second
}

// Churn opens new TCP connections at rate per second for d, spread over the listeners on
// port of 127.0.0.1 .. 127.0.0.<addrs> (more destination addresses, more 4-tuples: no
// ephemeral port runs out). Each connection sends 16 bytes, reads 16 back and closes; the
// server closes after the client. It returns when every connection it opened has closed.
func Churn(rate float64, d time.Duration, port, addrs, workers int) (ChurnResult, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var srv sync.WaitGroup
	for a := 1; a <= addrs; a++ {
		ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.%d:%d", a, port))
		if err != nil {
			return ChurnResult{}, err
		}
		lns = append(lns, ln)
		go serveWG(ln, &srv, func(c net.Conn) {
			buf := make([]byte, 16)
			if _, err := io.ReadFull(c, buf); err == nil {
				_, _ = c.Write(buf)
				_, _ = c.Read(buf) // EOF: the client closed first
			}
		})
	}
	total := int64(rate * d.Seconds())
	var next, done, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 16)
			for {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				// Pace: connection i is due at start + i*interval.
				if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
					time.Sleep(wait)
				}
				c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.%d:%d", 1+int(i)%addrs, port))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, err = c.Write(buf)
				if err == nil {
					_, err = io.ReadFull(c, buf)
				}
				c.Close()
				if err != nil {
					failed.Add(1)
					continue
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	time.Sleep(50 * time.Millisecond) // let the servers see EOF
	for _, ln := range lns {
		ln.Close()
	}
	srv.Wait()
	return ChurnResult{Completed: done.Load(), Failed: failed.Load(), Rate: float64(done.Load()) / el.Seconds()}, nil
}

// Hold opens n loopback TCP connections spread over 127.0.0.1 .. 127.0.0.<addrs> on port,
// exchanges one byte each way on each (so the tracer tracks both ends) and keeps them open
// until release is closed.
func Hold(n, port, addrs int, release <-chan struct{}) error {
	var mu sync.Mutex
	var held []net.Conn
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	var lns []net.Listener
	for a := 1; a <= addrs; a++ {
		ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.%d:%d", a, port))
		if err != nil {
			return err
		}
		defer ln.Close()
		lns = append(lns, ln)
		go serve(ln, func(c net.Conn) {
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			b := make([]byte, 1)
			if _, err := c.Read(b); err == nil {
				_, _ = c.Write(b)
			}
			<-release // serve closes the connection when the handler returns
		})
	}
	b := make([]byte, 1)
	for i := range n {
		c, err := net.Dial("tcp4", fmt.Sprintf("127.0.0.%d:%d", 1+i%addrs, port))
		if err != nil {
			return fmt.Errorf("connection %d of %d: %w", i, n, err)
		}
		mu.Lock()
		held = append(held, c)
		mu.Unlock()
		if _, err := c.Write(b); err != nil {
			return err
		}
		if _, err := c.Read(b); err != nil {
			return err
		}
	}
	<-release
	return nil
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
