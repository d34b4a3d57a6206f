// SPDX-License-Identifier: Apache-2.0

// Package procinfo names the process and the container behind a connection:
// from the pid, /proc/<pid> (executable name, command line, start time); from
// the owner's cgroup id the kernel took with the socket, the container and
// pod (internal/cgroups), with /proc/<pid>/cgroup as the fallback.
//
// The receiver fills its resource attributes with it, and hostconns (the
// nettop tool's data) its rows: one resolver, so both name a connection's
// process and container the same way. Outside Linux it knows the pid only.
package procinfo
