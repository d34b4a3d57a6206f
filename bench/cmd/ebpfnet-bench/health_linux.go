// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/cilium/ebpf"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/bench/internal/kern"
)

// ---- TCP health sampling: poll cost at 100k real connections, sampling on and off ----

// The hold processes of each arm of the TCP health phase. Each holds both ends of its
// connections, so RLIMIT_NOFILE (hard 20,000 on the benchmark machine) caps it below 10,000
// connections: 8 x 6,250 connections are 100,000 tracked sockets. Arm k's holder i listens on
// healthPort + 8k + i.
const (
	healthHolders = 8
	healthPerHold = 6_250
	healthPort    = 20400
	healthPolls   = 3 // measured polls per arm and round, after the one that ends once the connections are open
)

// walkPrograms are the tracer's programs that walk the connection table at each poll
// (bpf/netflow.bpf.c): the iterator, or where the kernel refuses iterators the refresh program
// the poll runs. Only these read tcp_sock for open connections.
var walkPrograms = map[string]bool{"enet_it_conns": true, "enet_rn_refresh": true}

// tcpHealth measures what sampling TCP health at every poll costs: 100,000 real loopback
// sockets polled by the receiver with its defaults (the TCP health metrics on: the poll reads
// RTT and retransmits from every open socket) and with those metrics off (the tracer's
// CloseOnlyTCPHealth: the walk skips them), the two arms alternating, the first arm swapping
// every round. Each arm opens its own connections once its receiver runs, as the real scale
// rows do: a receiver adopts a socket older than itself only at its next I/O.
func (r *report) tcpHealth() error {
	h := &healthRun{n: 2 * healthHolders * healthPerHold, polls: healthPolls, cpuMS: map[string]dist{}, wallMS: map[string]dist{},
		walkMS: map[string]dist{}, roundCPU: map[string]dist{}, roundWall: map[string]dist{}, roundWalk: map[string]dist{}, seen: map[string]int64{}}
	r.health = h
	stats, err := kern.EnableStats()
	if err != nil {
		return fmt.Errorf("bpf_stats: %w", err)
	}
	defer stats.Close()
	k := 0
	for round := range r.plan.healthRounds {
		for _, arm := range healthRoundArms(round) {
			// Ports of their own per arm: the previous arm's connections may linger in TIME_WAIT.
			if err := r.healthArm(h, arm, healthPort+k*healthHolders); err != nil {
				// A failed arm is a result, not a reason to stop the suite.
				h.failure = fmt.Sprintf("%s, round %d: %v", arm, round+1, err)
				logf("tcp health: %s", h.failure)
				return nil
			}
			k++
		}
	}
	return nil
}

// healthRoundArms is the order of the two arms in round i: the first swaps every round, so
// neither always follows the other's shutdown.
func healthRoundArms(i int) []string {
	if i%2 == 1 {
		return []string{armHealthOff, armHealthOn}
	}
	return []string{armHealthOn, armHealthOff}
}

// healthArm runs one arm of one round: a receiver, then the connections (holder i listening on
// port+i), one poll skipped, healthPolls measured.
func (r *report) healthArm(h *healthRun, arm string, port int) error {
	on := arm == armHealthOn
	col, err := startCollector(time.Second, h.n+65536, fmt.Sprintf("-tcp-health=%t", on))
	if err != nil {
		return err
	}
	// Deferred first, so it runs last: the receiver stops before the connections close, and
	// does not spend the next arm's time on their close records.
	var holders []*child
	defer func() {
		for _, c := range holders {
			c.stop(syscall.SIGTERM)
		}
	}()
	defer col.stop(syscall.SIGTERM)
	// What the receiver loaded, not what its configuration meant: the BPF knob itself.
	b, err := kern.ConstOf(col.pid(), "sample_tcp_health")
	if err != nil {
		return err
	}
	if want := boolByte(on); len(b) != 1 || b[0] != want {
		return fmt.Errorf("sample_tcp_health loaded as %v, want %d", b, want)
	}
	for i := range healthHolders {
		c, err := startChild(self, "load", "hold", "-n", fmt.Sprint(healthPerHold), "-port", fmt.Sprint(port+i))
		if err != nil {
			return err
		}
		holders = append(holders, c)
	}
	for _, c := range holders {
		if _, err := c.next(2 * time.Minute); err != nil {
			return fmt.Errorf("hold: %w", err)
		}
	}
	// The first poll that ends after the connections are open may have begun before.
	if _, err := col.scrapeSince(time.Now(), 60*time.Second); err != nil {
		return err
	}
	before, err := walkStats(col.pid())
	if err != nil {
		return err
	}
	var cpu, wall dist
	var last scrapeLine
	for range h.polls {
		if last, err = col.scrape(60 * time.Second); err != nil {
			return err
		}
		cpu = append(cpu, float64(last.CPUNS)/1e6)
		wall = append(wall, float64(last.WallNS)/1e6)
	}
	after, err := walkStats(col.pid())
	if err != nil {
		return err
	}
	if after.RunCount == before.RunCount {
		return errors.New("the connection table walk did not run during the polls")
	}
	// Kernel time of the walk per poll (the refresh runs once a poll, an iterator once an entry).
	walk := float64(after.RuntimeNS-before.RuntimeNS) / 1e6 / float64(h.polls)
	var seen int64
	for i := range healthHolders {
		seen += last.Open[int64(port+i)]
	}
	if seen != int64(h.n) {
		return fmt.Errorf("receiver reported %d open sockets of the %d held", seen, h.n)
	}
	h.seen[arm] = seen
	h.cpuMS[arm] = append(h.cpuMS[arm], cpu...)
	h.wallMS[arm] = append(h.wallMS[arm], wall...)
	h.walkMS[arm] = append(h.walkMS[arm], walk)
	h.roundCPU[arm] = append(h.roundCPU[arm], cpu.median())
	h.roundWall[arm] = append(h.roundWall[arm], wall.median())
	h.roundWalk[arm] = append(h.roundWalk[arm], walk)
	logf("tcp health %s: seen %d, poll %s ms wall, %s ms CPU, table walk %.1f ms kernel time per poll",
		arm, seen, wall.format(f1), cpu.format(f1), walk)
	return nil
}

// walkStats sums the bpf_stats of process pid's table-walk programs.
func walkStats(pid int) (kern.ProgStat, error) {
	objs, err := kern.ObjectsOf(pid)
	if err != nil {
		return kern.ProgStat{}, err
	}
	st, err := kern.Programs(func(name string, id ebpf.ProgramID) bool { return objs.Progs[id] && walkPrograms[name] })
	if err != nil {
		return kern.ProgStat{}, err
	}
	if len(st) == 0 {
		return kern.ProgStat{}, fmt.Errorf("process %d holds no table-walk program (%v)", pid, walkPrograms)
	}
	var sum kern.ProgStat
	for _, s := range st {
		sum.RuntimeNS += s.RuntimeNS
		sum.RunCount += s.RunCount
	}
	return sum, nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}
