// SPDX-License-Identifier: Apache-2.0

package aggregate

import "github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"

// KeyOf returns the attributes a series of a metric keeping set has for c:
// with the resource (pid and network namespace) it is the key the
// Aggregator adds c under, without peer groups. Tools that group
// connections the way the receiver's metrics do (nettop) use it, so the
// grouping is the receiver's and not a copy of it.
func KeyOf(c *conns.Conn, set AttrSet) Attrs { return attrsOf(c).project(set) }
