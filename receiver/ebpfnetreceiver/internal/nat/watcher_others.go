// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package nat

import (
	"errors"

	"go.uber.org/zap"
)

// ErrNoConntrack: conntrack is Linux's.
var ErrNoConntrack = errors.New("conntrack needs Linux")

// Watcher is Linux's; NewWatcher always fails elsewhere.
type Watcher struct{}

// WatcherStats: see the Linux Watcher.
type WatcherStats struct {
	Events, New, Lost, Resyncs, NetnsRefused uint64
	Namespaces                               int
}

func NewWatcher(*Table, *zap.Logger) (*Watcher, error) { return nil, ErrNoConntrack }
func (*Watcher) Follow(netns, pid uint32)              {}
func (*Watcher) Refresh()                              {}
func (*Watcher) Stats() WatcherStats                   { return WatcherStats{} }
func (*Watcher) Close() error                          { return nil }
