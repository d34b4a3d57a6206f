// SPDX-License-Identifier: Apache-2.0

//go:build linux

package cgroups

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// fakeClock is the resolver's clock in tests: time moves only when told.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTestResolver(t *testing.T, opts Options) (*Resolver, string, *fakeClock) {
	t.Helper()
	root := t.TempDir()
	r := NewResolver(root, opts)
	clk := &fakeClock{t: time.Unix(1_000_000, 0)}
	r.now = clk.now
	return r, root, clk
}

// mkCgroup makes a directory under root and returns its inode number, the
// id the kernel would hand out for it.
func mkCgroup(t *testing.T, root, rel string) uint64 {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	ino, err := inode(p)
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

// unknownID is an id no directory of a test tree has: lookups of it miss
// and so walk (when the rate limit allows), which is how tests make a walk.
const unknownID = 1 << 62

var (
	containerdPath = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + uidSystemd + ".slice/cri-containerd-" + cid + ".scope"
	dockerPath     = "/system.slice/docker-" + cid2 + ".scope"
)

func TestResolverHitAndMiss(t *testing.T) {
	r, root, _ := newTestResolver(t, Options{})
	id := mkCgroup(t, root, containerdPath)
	host := mkCgroup(t, root, "/system.slice/sshd.service")

	got, ok := r.Lookup(id)
	if want := (Identity{cid, uid, RuntimeContainerd}); !ok || got != want {
		t.Fatalf("first lookup = %+v, %v; want %+v", got, ok, want)
	}
	if p, _ := r.Path(id); p != containerdPath {
		t.Errorf("path %q, want %q", p, containerdPath)
	}
	// The walk cached every directory: a host cgroup is a hit with an
	// empty identity, not a miss that walks again.
	if got, ok := r.Lookup(host); !ok || got != (Identity{}) {
		t.Errorf("host cgroup = %+v, %v", got, ok)
	}
	if got, ok := r.Lookup(id); !ok || got.ContainerID != cid {
		t.Errorf("second lookup = %+v, %v", got, ok)
	}
	s := r.Stats()
	if s.Walks != 1 || s.Misses != 1 || s.Hits != 2 || s.Unknown != 0 {
		t.Errorf("stats %+v: want 1 walk, 1 miss, 2 hits", s)
	}
	// root, system.slice, sshd.service and the four levels of the pod path.
	if n := r.Len(); n != 7 {
		t.Errorf("len %d, want 7", n)
	}
}

func TestResolverRewalkAndRateLimit(t *testing.T) {
	r, root, clk := newTestResolver(t, Options{MinRewalk: time.Second})
	mkCgroup(t, root, "/system.slice")
	if _, ok := r.Lookup(unknownID); ok { // no directory has inode 1 in a temp dir
		t.Fatal("unknown id resolved")
	}
	// A container starts after the first walk.
	id := mkCgroup(t, root, dockerPath)

	// Within MinRewalk a miss does not walk.
	clk.advance(999 * time.Millisecond)
	if _, ok := r.Lookup(id); ok {
		t.Fatal("resolved without a walk")
	}
	if s := r.Stats(); s.Walks != 1 || s.RateLimited != 1 || s.Misses != 2 || s.Unknown != 2 {
		t.Fatalf("stats %+v: want 1 walk, 1 rate-limited, 2 misses, 2 unknown", s)
	}
	// Past it the miss walks again and finds the new cgroup.
	clk.advance(time.Millisecond)
	got, ok := r.Lookup(id)
	if want := (Identity{cid2, "", RuntimeDocker}); !ok || got != want {
		t.Fatalf("after rewalk = %+v, %v; want %+v", got, ok, want)
	}
	if s := r.Stats(); s.Walks != 2 || s.RateLimited != 1 || s.Misses != 3 || s.Unknown != 2 {
		t.Errorf("stats %+v: want 2 walks, 3 misses", s)
	}
}

func TestResolverGracePeriod(t *testing.T) {
	r, root, clk := newTestResolver(t, Options{Grace: time.Minute, MinRewalk: time.Second})
	id := mkCgroup(t, root, dockerPath)
	if _, ok := r.Lookup(id); !ok {
		t.Fatal("not resolved")
	}
	// The container exits and its runtime removes the cgroup.
	if err := os.Remove(filepath.Join(root, filepath.FromSlash(dockerPath))); err != nil {
		t.Fatal(err)
	}
	// Another miss walks; the walk no longer sees the directory.
	clk.advance(2 * time.Second)
	r.Lookup(unknownID)
	if got, ok := r.Lookup(id); !ok || got.ContainerID != cid2 {
		t.Fatalf("removed cgroup inside grace = %+v, %v", got, ok)
	}
	// Still inside the grace period at the next walk.
	clk.advance(59 * time.Second)
	r.Lookup(unknownID)
	if _, ok := r.Lookup(id); !ok {
		t.Fatal("removed cgroup dropped before its grace period ended")
	}
	if s := r.Stats(); s.Expired != 0 {
		t.Fatalf("expired %d before grace", s.Expired)
	}
	// The first walk past Grace drops it.
	clk.advance(time.Second)
	r.Lookup(unknownID)
	if s := r.Stats(); s.Expired != 1 {
		t.Errorf("expired %d, want 1 (stats %+v)", s.Expired, s)
	}
	if _, ok := r.Path(id); ok {
		t.Error("removed cgroup still cached after grace")
	}
}

func TestResolverComesBack(t *testing.T) {
	// A directory gone for one walk and seen again is live again: its
	// grace period restarts from the next disappearance. Renaming it out
	// of the tree and back keeps its inode number.
	r, root, clk := newTestResolver(t, Options{Grace: 10 * time.Second})
	id := mkCgroup(t, root, "/docker/"+cid)
	p, away := filepath.Join(root, "docker", cid), filepath.Join(t.TempDir(), "away")
	r.Lookup(id)
	if err := os.Rename(p, away); err != nil {
		t.Fatal(err)
	}
	clk.advance(5 * time.Second)
	r.Lookup(unknownID) // gone since now
	if err := os.Rename(away, p); err != nil {
		t.Fatal(err)
	}
	clk.advance(5 * time.Second)
	r.Lookup(unknownID) // seen again
	clk.advance(9 * time.Second)
	r.Lookup(unknownID) // 19s after it first went away: past Grace on the old clock
	if got, ok := r.Lookup(id); !ok || got.ContainerID != cid {
		t.Errorf("a cgroup seen again was expired on its first disappearance's clock: %+v, %v", got, ok)
	}
	if s := r.Stats(); s.Expired != 0 {
		t.Errorf("expired %d, want 0", s.Expired)
	}
}

func TestResolverMissEvictsColdNotWanted(t *testing.T) {
	// A miss that walks a tree bigger than the bound still answers: the
	// wanted id is kept, never-used directories are evicted.
	r, root, _ := newTestResolver(t, Options{MaxEntries: 2})
	id := mkCgroup(t, root, dockerPath)
	for _, name := range []string{"a.service", "b.service", "c.service"} {
		mkCgroup(t, root, "/system.slice/"+name)
	}
	if got, ok := r.Lookup(id); !ok || got.ContainerID != cid2 {
		t.Fatalf("lookup = %+v, %v", got, ok)
	}
	if n, s := r.Len(), r.Stats(); n != 2 || s.Evictions != 4 {
		t.Errorf("len %d evictions %d, want 2 and 4 (of 6 directories)", n, s.Evictions)
	}
}

func TestResolverZeroID(t *testing.T) {
	// bpf_get_current_cgroup_id returns 0 without cgroup v2: never a
	// cgroup, so it must not cost a walk.
	r, root, _ := newTestResolver(t, Options{})
	mkCgroup(t, root, dockerPath)
	if _, ok := r.Lookup(0); ok {
		t.Fatal("id 0 resolved")
	}
	if s := r.Stats(); s.Walks != 0 || s.Unknown != 1 {
		t.Errorf("stats %+v: want no walk, 1 unknown", s)
	}
}

func TestResolverBound(t *testing.T) {
	r, root, clk := newTestResolver(t, Options{MaxEntries: 4, MinRewalk: time.Second})
	a := mkCgroup(t, root, "/docker/"+cid)
	// root and /docker and /docker/<cid>: 3 entries.
	if _, ok := r.Lookup(a); !ok {
		t.Fatal("not resolved")
	}
	var more []uint64
	for _, name := range []string{"a.service", "b.service", "c.service"} {
		more = append(more, mkCgroup(t, root, "/system.slice/"+name))
	}
	clk.advance(time.Second)
	r.Lookup(unknownID) // walks: 3 + system.slice + 3 services = 7 directories
	if n := r.Len(); n != 4 {
		t.Fatalf("len %d, want the bound 4", n)
	}
	if s := r.Stats(); s.Evictions != 3 {
		t.Errorf("evictions %d, want 3", s.Evictions)
	}
	// The looked-up container survives: new directories are the coldest.
	if _, ok := r.Path(a); !ok {
		t.Error("the looked-up cgroup was evicted before never-used ones")
	}
	// New directories go in at the back in walk order, so the last ones
	// walked (the three services) go first.
	for _, id := range more {
		if p, ok := r.Path(id); ok {
			t.Errorf("%s kept over colder entries", p)
		}
	}
}

// TestResolverCreated: a cgroup the kernel reported created and that is
// gone before any walk (a container shorter than a poll) resolves without a
// walk, lasts Grace past the first walk that misses it, and counts toward
// the bound.
func TestResolverCreated(t *testing.T) {
	r, _, clk := newTestResolver(t, Options{Grace: time.Minute, MinRewalk: time.Second, MaxEntries: 2})
	const id = 77 // no directory of the tree has it: the cgroup is gone
	r.Created(id, dockerPath)
	if got, ok := r.Lookup(id); !ok || got != (Identity{cid2, "", RuntimeDocker}) {
		t.Fatalf("created cgroup = %+v, %v", got, ok)
	}
	if s := r.Stats(); s.Walks != 0 || s.Hits != 1 {
		t.Fatalf("stats %+v, want one hit and no walk", s)
	}
	clk.advance(2 * time.Second)
	r.Lookup(unknownID) // walks: the directory is not there
	if _, ok := r.Lookup(id); !ok {
		t.Fatal("created cgroup dropped at the first walk, before its grace")
	}
	clk.advance(time.Minute)
	r.Lookup(unknownID)
	if _, ok := r.Lookup(id); ok {
		t.Error("created cgroup kept past its grace")
	}
	// The bound: the two newest of three created are kept (the tree's root,
	// walked but never looked up, and the oldest creation are evicted).
	before, ev := r.Len(), r.Stats().Evictions
	r.Created(1, "/a")
	r.Created(2, "/b")
	r.Created(3, "/c")
	_, has1 := r.Path(1)
	_, has2 := r.Path(2)
	_, has3 := r.Path(3)
	if evicted := r.Stats().Evictions - ev; has1 || !has2 || !has3 || r.Len() != 2 || evicted != uint64(before+3-2) {
		t.Errorf("after three creations with MaxEntries 2: kept 1:%v 2:%v 3:%v, len %d, %d evicted; want 2 and 3 kept, %d evicted",
			has1, has2, has3, r.Len(), evicted, before+3-2)
	}
}
