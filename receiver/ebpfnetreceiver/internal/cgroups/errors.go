// SPDX-License-Identifier: Apache-2.0

package cgroups

import "errors"

// ErrNoCgroup2 is returned when no cgroup2 file system is mounted.
var ErrNoCgroup2 = errors.New("no cgroup2 file system is mounted")
