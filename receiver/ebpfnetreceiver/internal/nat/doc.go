// SPDX-License-Identifier: Apache-2.0

// Package nat tells the endpoints a socket's packets are translated to by the
// kernel's NAT (DNAT to a service backend, SNAT, masquerade), from conntrack.
//
// A conntrack entry holds a flow's original tuple (as the initiator sent it)
// and its reply tuple (as the responder sees it, reversed). Without NAT the
// reply tuple is the original one reversed; with NAT it is not, and the
// difference is the translation:
//
//   - the initiator's socket has local = orig.src and peer = orig.dst (the
//     virtual address it dialled); its translated peer is reply.src (the
//     backend the packets went to), its translated local endpoint reply.dst
//     (the address SNAT or masquerade gave its packets);
//   - the responder's socket has local = reply.src and peer = reply.dst; its
//     translated peer is orig.src (the client before SNAT), its translated
//     local endpoint orig.dst (the address the client dialled).
//
// Table keeps the translated entries only (an entry without NAT says nothing
// a socket does not), under both socket views, bounded, and keeps entries
// conntrack destroyed for a grace period: a connection that closed before the
// receiver's poll is reported at that poll, after its entry may be gone.
//
// The package is pure Go: the conntrack source (netlink, Linux) feeds it.
package nat
