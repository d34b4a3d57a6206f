// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/cgroups"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// ownerEnv makes the test binary, re-executed by TestOwnerCgroupID in a cgroup
// of its own, act as a short-lived client instead of running the tests: it
// sends ownerTCPBytes over TCP and ownerUDPBytes in one datagram to the
// addresses in the variable ("tcp-addr udp-addr") and exits.
const ownerEnv = "EBPFNET_TEST_OWNER_CLIENT"

const ownerTCPBytes, ownerUDPBytes = 3001, 301

func TestMain(m *testing.M) {
	if addrs := os.Getenv(ownerEnv); addrs != "" {
		if err := ownerClient(strings.Fields(addrs)); err != nil {
			fmt.Fprintln(os.Stderr, "owner client:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func ownerClient(addrs []string) error {
	if len(addrs) != 2 {
		return fmt.Errorf("want a TCP and a UDP address, got %q", addrs)
	}
	c, err := net.Dial("tcp", addrs[0])
	if err != nil {
		return err
	}
	if _, err := c.Write(make([]byte, ownerTCPBytes)); err != nil {
		return err
	}
	if err := c.Close(); err != nil {
		return err
	}
	u, err := net.Dial("udp", addrs[1])
	if err != nil {
		return err
	}
	if _, err := u.Write(make([]byte, ownerUDPBytes)); err != nil {
		return err
	}
	return u.Close()
}

// cgroupInode is the cgroup id the kernel gives the cgroup2 directory dir:
// its inode number.
func cgroupInode(t *testing.T, dir string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// selfCgroupID is the cgroup id of this process: the inode of its cgroup2
// directory, from the "0::" line of /proc/self/cgroup.
func selfCgroupID(t *testing.T) uint64 {
	t.Helper()
	mnt, err := cgroups.MountPoint()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if rel, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return cgroupInode(t, filepath.Join(mnt, rel))
		}
	}
	t.Fatal(`/proc/self/cgroup has no cgroup2 ("0::") line`)
	return 0
}

// TestOwnerCgroupID: a client started in a cgroup the test creates connects
// over TCP, sends a UDP datagram and exits before the tracer's next poll. Both
// of its connections carry the cgroup id of that cgroup (the directory's
// inode), its pid and its bytes, though /proc has no trace of it by then: the
// kernel's id is what names a short-lived process's container.
func TestOwnerCgroupID(t *testing.T) {
	tr := startTracer(t, Config{UDPIdleTimeout: time.Minute})
	col := newCollector(t, tr)
	mnt, err := cgroups.MountPoint()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(mnt, "ebpfnet-owner-test-")
	if err != nil {
		t.Fatalf("a cgroup for the client: %v", err)
	}
	t.Cleanup(func() {
		if err := os.Remove(dir); err != nil {
			t.Errorf("remove the client's cgroup: %v", err)
		}
	})
	want := cgroupInode(t, dir)
	if want == selfCgroupID(t) {
		t.Fatalf("the new cgroup %s has the test's own id %d", dir, want)
	}

	ln := listen(t, "tcp4", "127.0.0.1:0")
	tcpDone := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			tcpDone <- -1
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		tcpDone <- n
	}()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()

	cg, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer cg.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), ownerEnv+"="+ln.Addr().String()+" "+pc.LocalAddr().String())
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(cg.Fd())} // CLONE_INTO_CGROUP, 5.7+
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("client in %s: %v: %s", dir, err, out)
	}
	child := uint32(cmd.Process.Pid)
	if n := <-tcpDone; n != ownerTCPBytes {
		t.Fatalf("server read %d bytes, want %d", n, ownerTCPBytes)
	}
	buf := make([]byte, 2*ownerUDPBytes)
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := pc.ReadFrom(buf)
	if err != nil || n != ownerUDPBytes {
		t.Fatalf("UDP server read %d bytes (%v), want %d", n, err, ownerUDPBytes)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", child)); err == nil {
		t.Fatalf("client %d still in /proc after it was reaped", child)
	}

	tcpPeer := netip.MustParseAddrPort(ln.Addr().String())
	udpPeer := netip.MustParseAddrPort(pc.LocalAddr().String())
	udpClient := netip.MustParseAddrPort(from.String())
	check := func(what string, c conns.Conn, sent uint64) {
		t.Helper()
		if c.CgroupID != want || c.PID != child || c.SentBytes != sent {
			t.Errorf("%s %v->%v: cgroup id %d, pid %d, sent %d; want cgroup id %d (%s), pid %d, sent %d",
				what, c.Local, c.Peer, c.CgroupID, c.PID, c.SentBytes, want, dir, child, sent)
		}
	}
	check("TCP client", col.waitClosed(1, 5*time.Second, func(c conns.Conn) bool {
		return c.Transport == conns.TransportTCP && c.Peer == tcpPeer && c.Direction == conns.DirectionOutgoing
	})[0], ownerTCPBytes)
	// The client's UDP socket is closed: its flow ends at the next poll.
	check("UDP client", col.waitClosed(1, 5*time.Second, func(c conns.Conn) bool {
		return c.Transport == conns.TransportUDP && c.Local == udpClient && c.Peer == udpPeer
	})[0], ownerUDPBytes)
}

// TestCreatedCgroupPaths: a cgroup created and removed between two polls (a
// container shorter than a poll) comes in the next snapshot's Cgroups with
// its id (the directory's inode) and its path from the cgroup2 root, and in
// no later one.
func TestCreatedCgroupPaths(t *testing.T) {
	tr := startTracer(t, Config{})
	mnt, err := cgroups.MountPoint()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Poll(context.Background()); err != nil { // drain what came before
		t.Fatal(err)
	}
	parent, err := os.MkdirTemp(mnt, "ebpfnet-mkdir-test-")
	if err != nil {
		t.Fatalf("a cgroup: %v", err)
	}
	child := filepath.Join(parent, "libpod-"+strings.Repeat("ab", 32))
	if err := os.Mkdir(child, 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{
		cgroupInode(t, parent): "/" + filepath.Base(parent),
		cgroupInode(t, child):  "/" + filepath.Base(parent) + "/" + filepath.Base(child),
	}
	for _, d := range []string{child, parent} {
		if err := os.Remove(d); err != nil {
			t.Fatal(err)
		}
	}
	snap, err := tr.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint64]string{}
	for _, c := range snap.Cgroups {
		if _, ours := want[c.ID]; ours {
			got[c.ID] = c.Path
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("created cgroups in the snapshot: %v, want %v (all: %v)", got, want, snap.Cgroups)
	}
	if lost := tr.Telemetry().CgroupPathLost; lost != 0 {
		t.Errorf("CgroupPathLost = %d, want 0", lost)
	}
	snap, err = tr.Poll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range snap.Cgroups {
		if _, ours := want[c.ID]; ours {
			t.Errorf("cgroup %d %s reported again by the next poll", c.ID, c.Path)
		}
	}
}
