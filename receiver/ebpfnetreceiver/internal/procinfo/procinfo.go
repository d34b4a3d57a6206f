// SPDX-License-Identifier: Apache-2.0

package procinfo

// Options set up a Resolver.
type Options struct {
	// CommandLine reads /proc/<pid>/cmdline into Resource.CommandLine: off
	// unless a user asked for it (process.command_line), as it may hold
	// secrets.
	CommandLine bool
}

// Stats are a Resolver's cumulative counts of what it could not name, which
// the receiver exports as its telemetry.
type Stats struct {
	// UnknownCgroups counts owners whose cgroup id named no cgroup the
	// resolver could find (removed longer ago than its grace, or never
	// seen): their container.id fell back to /proc, or is missing.
	UnknownCgroups uint64
	// CgroupEvictions counts cgroups dropped to keep the resolver's bound.
	CgroupEvictions uint64
}
