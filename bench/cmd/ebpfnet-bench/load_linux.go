// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/bench/internal/load"
)

// runLoad runs one load generator and prints its result as one JSON object.
func runLoad(args []string) error {
	if len(args) == 0 {
		return errors.New("load: want rr, bulk, churn or hold")
	}
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	conns := fs.Int("conns", 4, "rr: connections")
	size := fs.Int("size", 64, "rr: message bytes; bulk: write bytes")
	dur := fs.Duration("dur", 2*time.Second, "duration")
	rate := fs.Float64("rate", 1000, "churn: new connections per second")
	port := fs.Int("port", 0, "churn, hold: server port")
	addrs := fs.Int("addrs", 8, "churn, hold: destination addresses 127.0.0.1..N")
	workers := fs.Int("workers", 64, "churn: client goroutines")
	n := fs.Int("n", 1000, "hold: connections")
	_ = fs.Parse(args[1:])
	out := json.NewEncoder(os.Stdout)
	switch args[0] {
	case "rr":
		v, err := load.RR(*conns, *size, *dur)
		if err != nil {
			return err
		}
		return out.Encode(map[string]float64{"value": v})
	case "bulk":
		v, err := load.Bulk(*size, *dur)
		if err != nil {
			return err
		}
		return out.Encode(map[string]float64{"value": v})
	case "churn":
		r, err := load.Churn(*rate, *dur, *port, *addrs, *workers)
		if err != nil {
			return err
		}
		return out.Encode(r)
	case "hold":
		// Both ends live in this process: 2n descriptors. Without CAP_SYS_RESOURCE the hard
		// limit caps n; raise the soft limit to it.
		var lim unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return err
		}
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			return err
		}
		if uint64(2**n+64) > lim.Max {
			return fmt.Errorf("hold: %d connections need %d descriptors, RLIMIT_NOFILE allows %d", *n, 2**n+64, lim.Max)
		}
		release := make(chan struct{})
		errc := make(chan error, 1)
		go func() { errc <- load.Hold(*n, *port, *addrs, release) }()
		// Hold reports readiness by printing; stdin closing releases.
		go func() {
			for {
				// Poll until every connection is open.
				time.Sleep(100 * time.Millisecond)
				if open := countFDs(); open >= 2**n {
					_ = out.Encode(map[string]bool{"ready": true})
					return
				}
			}
		}()
		go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(release) }()
		return <-errc
	}
	return errors.New("load: want rr, bulk, churn or hold")
}

func countFDs() int {
	ents, _ := os.ReadDir("/proc/self/fd")
	return len(ents)
}
