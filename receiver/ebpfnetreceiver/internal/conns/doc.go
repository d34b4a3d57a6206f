// SPDX-License-Identifier: Apache-2.0

// Package conns holds the domain types of otelcol-ebpfnet: a connection as the
// kernel tracer saw it, the snapshot a poll returns, and the drop counters.
//
// It is pure Go with no dependency on cilium/ebpf or on the Collector, so the
// receiver, the aggregation and the benchmarks can be tested without a
// kernel. Data flows one way: tracer -> conns.Snapshot -> aggregation ->
// metrics builder.
package conns
