// SPDX-License-Identifier: Apache-2.0

//go:build linux

package nat

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// namedNetnsDir is where `ip netns add` and CNI plugins bind-mount the
// namespaces they create.
const namedNetnsDir = "/run/netns"

// Timing of the namespaces the Watcher follows.
const (
	// netnsIdle closes the conntrack sockets of a namespace found through a
	// connection's process once no connection of it was polled for this
	// long: an open socket would keep a dead pod's namespace alive.
	netnsIdle = 5 * time.Minute
	// retryRefused is how long a namespace that could not be entered is
	// left alone before the next try.
	retryRefused = time.Minute
)

// ErrNoConntrack: the kernel has no conntrack netlink; NAT translation is
// off, which is not an error of the receiver.
var ErrNoConntrack = errNoConntrack

// Watcher feeds a Table from conntrack in every network namespace it can
// enter: its own, the named ones (/run/netns) and those of the connections
// it is shown (through /proc/<pid>/ns/net, or a thread's when the process's
// main thread is elsewhere). Each namespace has an event socket (NEW and
// DESTROY) read by its own goroutine and a dump socket: a dump when the
// namespace is first followed, again after events were lost.
type Watcher struct {
	table *Table
	log   *zap.Logger
	now   func() time.Time

	mu      sync.Mutex
	ns      map[uint32]*nsWatch
	refused map[uint32]refusal
	closed  bool
	wg      sync.WaitGroup

	events, news, lost, resyncs, netnsRefused atomic.Uint64
	refusedLogged                             atomic.Bool
}

// WatcherStats are the Watcher's cumulative counts.
type WatcherStats struct {
	// Events counts conntrack events read (NEW and DESTROY, every protocol);
	// New those of new entries.
	Events, New uint64
	// Lost counts events the kernel could not deliver: the event socket's
	// drop counter (each event is one message), plus one per overrun the
	// kernel signalled without a drop (an allocation failure) and each
	// event larger than the reader's buffer (batchBufSize). Each
	// overrun is followed by a re-dump (Resyncs), so entries the lost NEWs
	// carried are found again; destroyed ones whose DESTROY was lost end
	// at that dump instead.
	Lost    uint64
	Resyncs uint64
	// NetnsRefused counts namespaces whose conntrack could not be read:
	// not enterable (setns needs CAP_SYS_ADMIN) or refused; their sockets
	// are matched with the entries of the namespaces that could. A
	// namespace whose process had exited is not counted: it is tried again
	// through the next connection polled in it.
	NetnsRefused uint64
	// Namespaces is the number followed now.
	Namespaces int
}

// refusal is a namespace that could not be followed: when to try again,
// and whether by its name (a name is tried by its path whatever a try
// through a process gave).
type refusal struct {
	until time.Time
	named bool
}

// nsWatch is one followed namespace.
type nsWatch struct {
	inode        uint32
	from         string // how it was found, for logs
	named        bool   // found in /run/netns: followed while it is there
	events, dump *nlSocket
	lastSeen     time.Time
	stopped      atomic.Bool // set before its sockets are closed
	// Owned by the reader goroutine once it runs.
	gen, seq, drops uint64
	// overrun: the kernel signalled lost events and the queue has not been
	// read empty since. Until it is, the kernel drops every event (the
	// socket stays congested), and those drops are counted (settle) when
	// it is.
	overrun bool
}

// NewWatcher starts following conntrack in the calling thread's network
// namespace (the collector's): a dump, then events. It returns an error
// wrapping ErrNoConntrack when the kernel has none.
func NewWatcher(t *Table, log *zap.Logger) (*Watcher, error) {
	w := &Watcher{table: t, log: log, now: time.Now, ns: map[uint32]*nsWatch{}, refused: map[uint32]refusal{}}
	// The thread's: the sockets below are made in it (a caller may have
	// moved it to another namespace, as tests do).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, err
	}
	defer self.Close()
	ino, err := inodeOf(self)
	if err != nil {
		return nil, err
	}
	ev, err := newNLSocket(groupNew | groupDestroy)
	if err != nil {
		return nil, err
	}
	dump, err := newNLSocket(0)
	if err != nil {
		ev.Close()
		return nil, err
	}
	if err := w.start(&nsWatch{inode: ino, from: "own", named: true, events: ev, dump: dump}); err != nil {
		return nil, err
	}
	return w, nil
}

// start dumps a namespace's conntrack table and starts reading its events.
func (w *Watcher) start(n *nsWatch) error {
	if err := w.dumpInto(n); err != nil {
		n.events.Close()
		n.dump.Close()
		return fmt.Errorf("conntrack dump (%s network namespace %d): %w", n.from, n.inode, err)
	}
	n.lastSeen = w.now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		n.events.Close()
		n.dump.Close()
		return nil
	}
	w.ns[n.inode] = n
	w.wg.Add(1)
	go w.read(n)
	return nil
}

// read handles the events of n until its socket is closed.
func (w *Watcher) read(n *nsWatch) {
	defer w.wg.Done()
	b := newBatch(16) // 16 events per system call at most, 64 KiB
	for {
		k, err := n.events.recvBatch(b, !n.overrun)
		switch {
		case errors.Is(err, unix.EAGAIN): // read empty after an overrun
			w.settle(n)
		case err == nil:
			truncated := uint64(0)
			for i := range k {
				data, trunc := b.datagram(i)
				if trunc {
					truncated++ // an event larger than the buffer: lost
					continue
				}
				w.handle(n, data)
			}
			if truncated > 0 {
				w.resync(n, truncated)
			}
		case errors.Is(err, unix.ENOBUFS):
			w.resync(n, 0)
		case errors.Is(err, unix.EINTR):
		default:
			if !n.stopped.Load() {
				w.log.Warn("conntrack events stopped", zap.Uint32("netns", n.inode), zap.Error(err))
			}
			return
		}
	}
}

// handle applies a datagram of events to the table.
func (w *Watcher) handle(n *nsWatch, b []byte) {
	now := time.Time{}
	for m, rest, ok := nextMessage(b); ok; m, rest, ok = nextMessage(rest) {
		switch m.typ {
		case ctMsgNew:
			w.events.Add(1)
			w.news.Add(1)
			if e, ok := parseEntry(m.data); ok {
				w.table.Upsert(n.inode, e, n.gen)
			}
		case ctMsgDelete:
			w.events.Add(1)
			if t, ok := parseOrig(m.data); ok {
				if now.IsZero() {
					now = w.now()
				}
				w.table.Destroy(n.inode, t, now)
			}
		}
	}
}

// settle runs when the queue has been read empty after an overrun: the
// kernel kept dropping events until then (netlink drops every event to a
// congested socket, and only reading it empty clears that), so drops since
// the resync are lost events too, which a dump must make up for again.
func (w *Watcher) settle(n *nsWatch) {
	d, err := n.events.drops()
	if err == nil && d != n.drops {
		w.resync(n, 0)
		return
	}
	n.overrun = false
}

// resync counts what an overrun lost (the socket's drops since the last
// resync, plus truncated events read) and dumps the table again.
func (w *Watcher) resync(n *nsWatch, truncated uint64) {
	d, err := n.events.drops()
	lost := d - n.drops
	if err != nil || d < n.drops {
		lost = 0
	}
	lost += truncated
	if lost == 0 {
		lost = 1 // signalled without a drop: at least one event is gone
	}
	if err == nil {
		n.drops = d
	}
	w.lost.Add(lost)
	w.resyncs.Add(1)
	n.overrun = true
	if err := w.dumpInto(n); err != nil {
		w.log.Warn("conntrack re-dump after lost events", zap.Uint32("netns", n.inode), zap.Error(err))
	}
}

// dumpInto lists n's conntrack table into the table as a new generation and
// sweeps what it no longer lists.
func (w *Watcher) dumpInto(n *nsWatch) error {
	n.gen++
	n.seq++
	if err := n.dump.send(dumpRequest(uint32(n.seq))); err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	for {
		k, err := n.dump.recv(buf)
		if err != nil {
			return err
		}
		for m, rest, ok := nextMessage(buf[:k]); ok; m, rest, ok = nextMessage(rest) {
			if m.seq != uint32(n.seq) {
				continue // a late reply of an earlier, failed dump
			}
			switch m.typ {
			case unix.NLMSG_DONE:
				w.table.Sweep(n.inode, n.gen, w.now())
				return nil
			case unix.NLMSG_ERROR:
				err := m.errno()
				if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT) {
					err = fmt.Errorf("%w: %w", errNoConntrack, err)
				}
				return err
			case ctMsgNew:
				if e, ok := parseEntry(m.data); ok {
					w.table.Upsert(n.inode, e, n.gen)
				}
			}
		}
	}
}

// Follow marks the namespace netns, of a connection of process pid, as in
// use, and starts following it if it is new (through that process).
func (w *Watcher) Follow(netns, pid uint32) { w.see(netns, pid, w.now()) }

// see marks netns as in use and starts following it if it is new.
func (w *Watcher) see(netns, pid uint32, now time.Time) {
	w.mu.Lock()
	if n := w.ns[netns]; n != nil {
		n.lastSeen = now
		w.mu.Unlock()
		return
	}
	if r, ok := w.refused[netns]; (ok && now.Before(r.until)) || w.closed || netns == 0 {
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	f, err := findNetns(pid, netns)
	if err != nil {
		return // the process left it: a later connection of it may show a way in
	}
	err = w.follow(f, netns, "pid "+strconv.Itoa(int(pid)), false)
	f.Close()
	if err != nil {
		w.refuse(netns, now, false, err)
	}
}

// refuse counts a namespace that could not be followed and logs the first.
func (w *Watcher) refuse(netns uint32, now time.Time, named bool, err error) {
	w.mu.Lock()
	w.refused[netns] = refusal{until: now.Add(retryRefused), named: named}
	w.mu.Unlock()
	w.netnsRefused.Add(1)
	if !w.refusedLogged.Swap(true) {
		w.log.Warn("cannot read conntrack in another network namespace; its connections are matched with the entries of the namespaces that could be read (counted in ebpfnet_nat_netns_refused, logged once)",
			zap.Uint32("netns", netns), zap.Error(err))
	}
}

// Refresh follows the named namespaces that appeared, and stops following
// those gone (a name removed) or idle (no connection polled for a while).
func (w *Watcher) Refresh() {
	now := w.now()
	names, _ := os.ReadDir(namedNetnsDir) // absent on hosts without named namespaces
	present := map[uint32]bool{}
	for _, d := range names {
		p := filepath.Join(namedNetnsDir, d.Name())
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		ino, err := inodeOf(f)
		if err == nil {
			present[ino] = true
			w.mu.Lock()
			n, r := w.ns[ino], w.refused[ino]
			if n != nil {
				n.named = true
			}
			w.mu.Unlock()
			// A name is entered by its path whether or not a process of
			// it could be: refusals through /proc do not hold it back.
			if n == nil && (!r.named || !now.Before(r.until)) {
				if err := w.follow(f, ino, p, true); err != nil {
					w.refuse(ino, now, true, err)
				}
			}
		}
		f.Close()
	}
	w.mu.Lock()
	var stop []*nsWatch
	for ino, n := range w.ns {
		if n.from == "own" || present[ino] || (!n.named && now.Sub(n.lastSeen) < netnsIdle) {
			continue
		}
		stop = append(stop, n)
		delete(w.ns, ino)
	}
	for ino, r := range w.refused {
		if now.After(r.until) {
			delete(w.refused, ino) // tried again when seen again
		}
	}
	w.mu.Unlock()
	for _, n := range stop {
		n.stopped.Store(true)
		n.events.Close()
		n.dump.Close()
		w.table.Forget(n.inode, now)
	}
	w.table.Prune(now)
}

// follow opens conntrack sockets inside the namespace f and starts it.
func (w *Watcher) follow(f *os.File, ino uint32, from string, named bool) error {
	ev, dump, err := socketsIn(f)
	if err != nil {
		return err
	}
	return w.start(&nsWatch{inode: ino, from: from, named: named, events: ev, dump: dump})
}

// socketsIn opens an event and a dump socket in the network namespace f, on
// a thread of its own: setns needs CAP_SYS_ADMIN, and a thread that cannot
// return to the collector's namespace must not run other goroutines (it
// stays locked, so it exits with this one).
func socketsIn(f *os.File) (ev, dump *nlSocket, err error) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		self, e := os.Open("/proc/thread-self/ns/net")
		if e != nil {
			err = e
			runtime.UnlockOSThread()
			return
		}
		defer self.Close()
		if e := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); e != nil {
			err = fmt.Errorf("setns: %w", e)
			runtime.UnlockOSThread()
			return
		}
		ev, err = newNLSocket(groupNew | groupDestroy)
		if err == nil {
			if dump, err = newNLSocket(0); err != nil {
				ev.Close()
			}
		}
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) != nil {
			return // leave the thread locked: it dies with this goroutine
		}
		runtime.UnlockOSThread()
	}()
	<-done
	return ev, dump, err
}

// findNetns opens the network namespace of inode ino through process pid:
// its main thread's, else one of its threads' (a process may move one
// thread to another namespace).
func findNetns(pid, ino uint32) (*os.File, error) {
	base := "/proc/" + strconv.Itoa(int(pid))
	try := func(p string) *os.File {
		f, err := os.Open(p)
		if err != nil {
			return nil
		}
		if i, err := inodeOf(f); err == nil && i == ino {
			return f
		}
		f.Close()
		return nil
	}
	if f := try(base + "/ns/net"); f != nil {
		return f, nil
	}
	tasks, _ := os.ReadDir(base + "/task")
	for _, t := range tasks {
		if f := try(base + "/task/" + t.Name() + "/ns/net"); f != nil {
			return f, nil
		}
	}
	return nil, fmt.Errorf("network namespace %d: no process %d in it (exited?)", ino, pid)
}

func inodeOf(f *os.File) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, err
	}
	return uint32(st.Ino), nil
}

// Stats returns the Watcher's counts.
func (w *Watcher) Stats() WatcherStats {
	w.mu.Lock()
	n := len(w.ns)
	w.mu.Unlock()
	return WatcherStats{Events: w.events.Load(), New: w.news.Load(), Lost: w.lost.Load(), Resyncs: w.resyncs.Load(), NetnsRefused: w.netnsRefused.Load(), Namespaces: n}
}

// Close stops following every namespace and waits for the readers.
func (w *Watcher) Close() error {
	w.mu.Lock()
	w.closed = true
	var errs []error
	for ino, n := range w.ns {
		n.stopped.Store(true)
		errs = append(errs, n.events.Close(), n.dump.Close())
		delete(w.ns, ino)
	}
	w.mu.Unlock()
	w.wg.Wait()
	return errors.Join(errs...)
}
