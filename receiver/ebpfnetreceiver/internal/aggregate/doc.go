// SPDX-License-Identifier: Apache-2.0

// Package aggregate turns connection snapshots into cumulative metric series.
//
// Each poll's conns.Snapshot goes through one Aggregator: it keeps the last
// counters of every connection (keyed by conns.ID) to compute deltas, adds
// the deltas to cumulative per-series sums, and forgets a connection once it
// is reported closed. A series is a resource (process and network namespace)
// plus the data point attributes a metric keeps: the default set keeps
// server.port and drops the ephemeral client port, so a busy client does not
// create a series per connection.
//
// Config.PeerGroups bound the peers: a peer address inside a configured
// prefix is replaced by its group's name (longest-prefix match), so the peers
// of a group share one series instead of one each.
//
// Series state is bounded: past Config.MaxSeries series a metric folds new
// data into one overflow series marked otel.metric.overflow=true, the
// OpenTelemetry SDK convention. Each series keeps the start timestamp it got
// when it first appeared; a series whose connections are gone keeps its
// cumulative value until it has been idle for Config.SeriesExpiry.
//
// The package is pure Go (stdlib, conns and pdata) so it is unit tested
// without a kernel; it does not know the Collector's metrics builder.
package aggregate
