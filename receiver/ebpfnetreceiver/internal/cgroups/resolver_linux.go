// SPDX-License-Identifier: Apache-2.0

//go:build linux

package cgroups

import (
	"container/list"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Defaults for the zero fields of Options.
const (
	DefaultMaxEntries = 16384
	DefaultGrace      = 2 * time.Minute
	DefaultMinRewalk  = time.Second
)

// Options bound a Resolver. Zero fields take the defaults above.
type Options struct {
	// MaxEntries bounds the cgroups kept; past it the least recently
	// looked-up one is evicted (Stats.Evictions).
	MaxEntries int
	// Grace is how long a cgroup that disappeared from the hierarchy still
	// resolves: its container exited, but a socket it owned may be read by
	// a poll after that.
	Grace time.Duration
	// MinRewalk is the least time between two walks of the hierarchy; a
	// miss inside it answers "unknown" without walking (Stats.RateLimited).
	MinRewalk time.Duration
}

// Stats are the Resolver's counters since it was made.
type Stats struct {
	Hits        uint64 // lookups answered from the cache
	Misses      uint64 // lookups of an id not in the cache
	Walks       uint64 // walks of the hierarchy
	RateLimited uint64 // misses that did not walk because the last walk was too recent
	Unknown     uint64 // lookups still unresolved after the walk (or without one)
	Evictions   uint64 // entries dropped to keep MaxEntries
	Expired     uint64 // entries of removed cgroups dropped after Grace
	WalkErrors  uint64 // directories the walk could not read or stat
}

// Resolver maps a cgroup id (the inode number of a cgroup2 directory, what
// bpf_get_current_cgroup_id returns) to the Identity of its path. It is safe
// for concurrent use.
type Resolver struct {
	root string
	opts Options
	now  func() time.Time

	mu       sync.Mutex
	entries  map[uint64]*list.Element // of *entry
	lru      list.List                // front: most recently looked up or seen
	lastWalk time.Time
	walked   bool
	stats    Stats
}

type entry struct {
	id        uint64
	path      string // relative to root, with a leading "/"
	identity  Identity
	goneSince time.Time // zero while the last walk saw the directory
}

// NewResolver returns a Resolver of the cgroup2 hierarchy mounted at root
// (MountPoint for this process's view; tests pass a directory tree). It
// does not touch the file system until the first lookup.
func NewResolver(root string, opts Options) *Resolver {
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultMaxEntries
	}
	if opts.Grace <= 0 {
		opts.Grace = DefaultGrace
	}
	if opts.MinRewalk <= 0 {
		opts.MinRewalk = DefaultMinRewalk
	}
	return &Resolver{root: root, opts: opts, now: time.Now, entries: make(map[uint64]*list.Element)}
}

// Lookup returns the Identity of cgroup id and whether the id is known. On
// a miss it walks the hierarchy (at most once per MinRewalk) and looks
// again, so the first lookup of a new container costs one walk. Id 0 is
// never known and never walks.
func (r *Resolver) Lookup(id uint64) (Identity, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id == 0 { // no cgroup v2 (bpf_get_current_cgroup_id's answer then): no walk can find it
		r.stats.Unknown++
		return Identity{}, false
	}
	if e, ok := r.entries[id]; ok {
		r.stats.Hits++
		r.lru.MoveToFront(e)
		return e.Value.(*entry).identity, true
	}
	r.stats.Misses++
	now := r.now()
	if r.walked && now.Sub(r.lastWalk) < r.opts.MinRewalk {
		r.stats.RateLimited++
		r.stats.Unknown++
		return Identity{}, false
	}
	r.walk(now, id)
	if e, ok := r.entries[id]; ok {
		return e.Value.(*entry).identity, true
	}
	r.stats.Unknown++
	return Identity{}, false
}

// Path returns the cached path of cgroup id, relative to the root, without
// walking; for logs and tests.
func (r *Resolver) Path(id uint64) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.entries[id]; ok {
		return e.Value.(*entry).path, true
	}
	return "", false
}

// Stats returns the counters.
func (r *Resolver) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Len is the number of cached cgroups, removed ones in their grace
// period included.
func (r *Resolver) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// walk records every directory under the root, marks the cached ones it
// did not see as gone, drops those gone for longer than Grace, and evicts
// down to MaxEntries, keeping want (the id the lookup is for) as the most
// recent. A directory removed while the walk runs is skipped, not an error.
func (r *Resolver) walk(now time.Time, want uint64) {
	r.walked, r.lastWalk = true, now
	r.stats.Walks++
	seen := make(map[uint64]struct{}, len(r.entries))
	_ = filepath.WalkDir(r.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if !os.IsNotExist(err) {
				r.stats.WalkErrors++
			}
			if d != nil && d.IsDir() && p != r.root {
				return fs.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		ino, err := inode(p)
		if err != nil {
			if !os.IsNotExist(err) {
				r.stats.WalkErrors++
			}
			return nil
		}
		rel, err := filepath.Rel(r.root, p)
		if err != nil {
			return nil
		}
		rel = "/" + filepath.ToSlash(rel)
		if rel == "/." {
			rel = "/"
		}
		seen[ino] = struct{}{}
		r.record(ino, rel)
		return nil
	})
	for id, el := range r.entries {
		if _, ok := seen[id]; ok {
			continue
		}
		e := el.Value.(*entry)
		if e.goneSince.IsZero() {
			e.goneSince = now
		} else if now.Sub(e.goneSince) >= r.opts.Grace {
			r.lru.Remove(el)
			delete(r.entries, id)
			r.stats.Expired++
		}
	}
	if el, ok := r.entries[want]; ok {
		r.lru.MoveToFront(el)
	}
	for len(r.entries) > r.opts.MaxEntries {
		el := r.lru.Back()
		r.lru.Remove(el)
		delete(r.entries, el.Value.(*entry).id)
		r.stats.Evictions++
	}
}

// Created records a cgroup the kernel reported created (the tracer's
// cgroup_mkdir hook), path being from the hierarchy's root: one created and
// removed between two walks is still known, for Grace after a walk finds it
// gone. It goes to the front of the LRU list: its processes' sockets are
// about to be looked up.
func (r *Resolver) Created(id uint64, path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.record(id, path)
	r.lru.MoveToFront(r.entries[id])
	for len(r.entries) > r.opts.MaxEntries {
		el := r.lru.Back()
		r.lru.Remove(el)
		delete(r.entries, el.Value.(*entry).id)
		r.stats.Evictions++
	}
}

// record adds or refreshes one directory. A new one goes to the back of the
// LRU list: a walk sees every cgroup of the host, most never looked up, and
// those must be evicted before the ones lookups use. An inode number seen
// under another path takes the new path: 64-bit kernfs ids are not reused,
// but the file systems tests build trees on do reuse inode numbers.
func (r *Resolver) record(ino uint64, rel string) {
	if el, ok := r.entries[ino]; ok {
		e := el.Value.(*entry)
		e.goneSince = time.Time{}
		if e.path != rel {
			e.path, e.identity = rel, Parse(rel)
		}
		return
	}
	r.entries[ino] = r.lru.PushBack(&entry{id: ino, path: rel, identity: Parse(rel)})
}

// inode is the cgroup id of a cgroup2 directory: kernfs gives each node a
// 64-bit id that is both the inode number and what bpf_get_current_cgroup_id
// returns (name_to_handle_at returns it too).
func inode(p string) (uint64, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("cgroup %s: no inode number", p)
	}
	return st.Ino, nil
}
