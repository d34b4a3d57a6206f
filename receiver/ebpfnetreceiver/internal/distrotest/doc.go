// SPDX-License-Identifier: Apache-2.0

// Package distrotest holds the end-to-end tests of the otelcol-ebpfnet
// distribution: they build the binary from cmd/otelcol-ebpfnet (or take the
// one named by $OTELCOL_EBPFNET_BIN), run it as users run it, and check what
// comes out of its exporters over the real protocols.
//
//   - loopback traffic with known byte counts, found exactly in the OTLP/HTTP
//     payload the otlphttp exporter sends to a server the test runs, and in the
//     Prometheus exporter's scrape;
//   - SIGTERM stops the collector within 5 s and leaves none of its BPF
//     programs, links or maps behind;
//   - without privileges it fails fast with one line naming the missing
//     capability; with only the capabilities of deploy/systemd it works;
//   - every protocol the classifiers know, spoken by real servers (nginx,
//     redis-server, PostgreSQL, MariaDB, RabbitMQ, dnsmasq) and clients (curl,
//     redis-cli, psql, mariadb, dig) the test runs on loopback ports it picks,
//     and by Go servers and clients in the test (gRPC, kfake for Kafka, a
//     MongoDB wire responder for the official driver): both ends of every
//     connection carry exactly the expected protocol attributes;
//   - `validate` accepts the shipped configurations and names the key of a bad
//     ebpfnet configuration.
//
// The package has no code of its own. It lives under the receiver only because
// Go lets nothing outside receiver/ebpfnetreceiver import the shared
// privileged-test gate in internal/privtest, which decides whether a missing
// BPF prerequisite skips (off CI) or fails (under CI) these tests.
package distrotest
