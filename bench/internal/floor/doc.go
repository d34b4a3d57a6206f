// SPDX-License-Identifier: Apache-2.0

// Package floor loads the benchmark floor: empty BPF programs (bpf/bench/empty.bpf.c) on every
// hook the tracer uses on the host kernel. The throughput they leave is the best any tracer on
// those hooks can do; their run_time_ns/run_cnt is the per-event floor of the hook.
package floor
