// SPDX-License-Identifier: Apache-2.0

// Package tracer is the kernel side of otelcol-ebpfnet and the only package
// that imports cilium/ebpf: it checks what the kernel and the process offer,
// loads the BPF object generated from bpf/ (netflow_*_bpfel.go, committed),
// attaches for each piece of data the best hook the running kernel has, and
// turns the kernel's records into conns types.
//
// The BPF side keeps a table of open connections and pushes every closed
// connection, with its final counters, into a ring buffer. A reader goroutine
// moves ring records into memory as the kernel wakes it (once per
// wakeup_watermark bytes, not per record); Poll drains the rest and walks the
// table.
package tracer
