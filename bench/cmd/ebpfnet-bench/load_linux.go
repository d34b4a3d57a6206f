// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
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
	size := fs.Int("size", 64, "rr: message bytes; bulk: write bytes; hold: bytes per connection and round")
	dur := fs.Duration("dur", 2*time.Second, "duration")
	rate := fs.Float64("rate", 1000, "churn: new connections per second")
	port := fs.Int("port", 0, "churn, hold: server port")
	first := fs.Int("first", 1, "churn: first destination address 127.0.0.<first>")
	addrs := fs.Int("addrs", 8, "churn: destination addresses from -first; hold: 127.0.0.1..N")
	workers := fs.Int("workers", 64, "churn: client goroutines")
	startNS := fs.Int64("start", 0, "churn: when pacing starts, Unix ns (generators in several processes share it); 0: now")
	linger0 := fs.Bool("linger0", false, "churn: close the client end with SO_LINGER 0 (reset, no TIME_WAIT)")
	messages := fs.String("messages", "", "churn: first messages, comma-separated names of load.Exchanges (http, redis, tls), listener a serving the a-th mod n; empty: 16 zero bytes each way")
	n := fs.Int("n", 1000, "hold: connections")
	every := fs.Duration("every", 0, "hold: a traffic round this often (0: none)")
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
		var err error
		if err = raiseNoFile(0); err != nil {
			return err
		}
		c := load.ChurnConfig{Rate: *rate, Dur: *dur, Port: *port, FirstAddr: *first, Addrs: *addrs, Workers: *workers, Linger0: *linger0}
		if *messages != "" {
			if c.Exchanges, err = load.ExchangesNamed(*messages); err != nil {
				return err
			}
		}
		if *startNS != 0 {
			c.Start = time.Unix(0, *startNS)
		}
		r, err := load.Churn(c)
		if err != nil {
			return err
		}
		return out.Encode(r)
	case "hold":
		// Both ends live in this process: 2n descriptors.
		if err := raiseNoFile(2**n + 64); err != nil {
			return err
		}
		h, err := load.Hold(load.HoldConfig{N: *n, Port: *port, Addrs: *addrs, Every: *every, Size: *size})
		if err != nil {
			return err
		}
		defer h.Close()
		if err := out.Encode(map[string]bool{"ready": true}); err != nil {
			return err
		}
		// A line "stop" on stdin ends the traffic rounds and prints the bytes sent; stdin
		// closing releases the connections.
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			if sc.Text() == "stop" {
				sent, err := h.Quiesce()
				if err != nil {
					return err
				}
				if err := out.Encode(map[string]int64{"sent": sent}); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return errors.New("load: want rr, bulk, churn or hold")
}

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard limit (without CAP_SYS_RESOURCE the
// hard limit is the cap) and fails if that is below need.
func raiseNoFile(need int) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if uint64(need) > lim.Max {
		return fmt.Errorf("%d descriptors needed, RLIMIT_NOFILE allows %d", need, lim.Max)
	}
	return nil
}
