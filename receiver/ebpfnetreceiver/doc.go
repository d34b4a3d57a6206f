// SPDX-License-Identifier: Apache-2.0

//go:generate go tool -modfile=../../internal/tools/go.mod mdatagen metadata.yaml

// Package ebpfnetreceiver is the ebpfnet receiver: it traces TCP and UDP
// connections in the kernel with eBPF (internal/tracer), aggregates them per
// process, network namespace and service (internal/aggregate), and reports
// cumulative metrics to the next consumer on every collection_interval.
//
// Data flows one way: tracer poll -> aggregator (per-connection deltas,
// per-series cumulative sums) -> metrics builder (generated from
// metadata.yaml by mdatagen) -> consumer. In a logs pipeline, the same
// poll's failed TCP connections become one log record each (failure_logs.go),
// rate-bounded; the metrics and logs receivers of one component ID share one
// tracer (shared.go). Only Linux can run it; on other systems Start returns an
// error that says so.
package ebpfnetreceiver // import "github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver"
