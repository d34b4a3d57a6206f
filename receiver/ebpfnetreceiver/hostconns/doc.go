// SPDX-License-Identifier: Apache-2.0

// Package hostconns is the receiver's tracer for tools that run without a
// Collector: it starts the same kernel tracer (internal/tracer), names each
// connection's process and container with the same resolver
// (internal/procinfo), groups connections by the same key as the receiver's
// metrics (internal/aggregate) when asked, and hands out plain rows.
//
// It exists because Go keeps internal packages to the receiver's own tree:
// cmd/nettop, the terminal view of the host's connections, cannot import
// them, and copying them would give two tracers that drift apart. It does not
// import the Collector (no pdata, no component): its rows are Go structs that
// also marshal as JSON.
package hostconns
