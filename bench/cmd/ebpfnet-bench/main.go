// SPDX-License-Identifier: Apache-2.0

// Command ebpfnet-bench is the benchmark suite of otelcol-ebpfnet (`make bench`). Run as root
// on the host kernel, it measures per-program cost, loopback throughput overhead against an
// untraced run, the empty-program floor, the tracer without protocol classification and a
// bpftrace script (arms interleaved), connection churn and scale, and writes docs/BENCHMARKS.md.
// It re-executes itself for its child processes: `load` (the load generators) and `collector`
// (the receiver, measured on its own).
// `ebpfnet-bench soak` (`make soak`) is the long run: churn and long-lived connections for 30
// minutes, checking the collector's memory and map occupancy stay level and nothing is lost.
package main

import (
	"fmt"
	"os"
)

func main() {
	var err error
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "load":
			err = runLoad(os.Args[2:])
		case "collector":
			err = runCollector(os.Args[2:])
		case "soak":
			err = runSoak(os.Args[2:])
		default:
			err = runSuite(os.Args[1:])
		}
	} else {
		err = runSuite(nil)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ebpfnet-bench:", err)
		os.Exit(1)
	}
}
