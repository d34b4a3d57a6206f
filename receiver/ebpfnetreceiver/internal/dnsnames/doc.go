// SPDX-License-Identifier: Apache-2.0

// Package dnsnames names the peers of outgoing connections from the DNS
// responses the host's sockets received (conns.Snapshot.DNS): a bounded map,
// per network namespace, from each answered address to the name the client
// asked for (the question's, through CNAMEs), kept for the answer's TTL plus a
// grace period. No reverse lookups: an address nobody resolved has no name.
//
// Pure Go, no kernel: bad input (the kernel hands over whatever came in on a
// DNS socket) is counted, never a panic.
package dnsnames
