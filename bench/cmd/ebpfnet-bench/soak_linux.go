// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/bench/internal/kern"
)

// The soak's ports: churn on one, the long-lived connections on the other.
const (
	soakChurnPort = 20300
	soakHoldPort  = 20301
)

// soakTolerance is how far the mean of RSS and of each map's occupancy over the soak's last
// part may be from its mean over its first part (parts of equal length).
const soakTolerance = 0.10

// soakSample is what the soak records every interval.
type soakSample struct {
	at     time.Duration // since the load started
	rssKB  int64         // collector VmRSS at its latest poll
	conns  int           // entries in the conns map
	socks  int           // entries in the socks map
	open   int64         // open connections the receiver reported on the long-lived port
	closed int64         // churn connections (sockets) the receiver reported closed so far
	cpuPct float64       // collector CPU over the interval, % of one core
}

// runSoak is `make soak`: churn at a sustainable rate plus a set of long-lived connections
// exchanging a little traffic, with the bench's collector child, for a long time. It samples the
// collector's RSS and the occupancy of its conns and socks maps, and fails (non-zero exit) if
// their means over the last part of the run drift more than soakTolerance from those over the
// first part (a sixth of the run, at most 5 minutes, both), or if any
// connection is lost: closed reported != 2x churn connections, a long-lived connection not
// reported open, or their bytes not reported exactly.
func runSoak(args []string) error {
	fs := flag.NewFlagSet("soak", flag.ExitOnError)
	dur := fs.Duration("dur", 30*time.Minute, "how long the load runs")
	rate := fs.Float64("rate", 4000, "churn: new connections per second, all generators together")
	procs := fs.Int("procs", 2, "churn: generator processes")
	holdN := fs.Int("hold", 2000, "long-lived connections (both ends tracked: twice as many sockets)")
	traffic := fs.Duration("traffic", 10*time.Second, "long-lived: a traffic round this often")
	size := fs.Int("size", 100, "long-lived: bytes each client sends per round (the server echoes them)")
	every := fs.Duration("every", 30*time.Second, "sampling interval (at most dur/12, so the first sixth has 2 samples)")
	_ = fs.Parse(args)
	if os.Geteuid() != 0 {
		return errors.New("run as root: the collector loads BPF programs")
	}
	var err error
	if self, err = os.Executable(); err != nil {
		return err
	}
	interval := min(*every, *dur/12)
	window := min(5*time.Minute, *dur/6) // the first part, whose mean the end is held to
	logf("soak: %s of churn at %.0f/s (%d processes) and %d long-lived connections (%d bytes each way every %s); sampling every %s, baseline the first %s",
		*dur, *rate, *procs, *holdN, *size, *traffic, interval, window)

	col, err := startCollector(time.Second, 65536)
	if err != nil {
		return err
	}
	defer col.stop(syscall.SIGTERM)
	first, err := col.scrape(10 * time.Second)
	if err != nil {
		return err
	}
	hold, err := startChild(self, "load", "hold", "-n", fmt.Sprint(*holdN), "-port", fmt.Sprint(soakHoldPort),
		"-every", traffic.String(), "-size", fmt.Sprint(*size))
	if err != nil {
		return err
	}
	defer hold.stop(syscall.SIGTERM)
	if _, err := hold.next(2 * time.Minute); err != nil {
		return fmt.Errorf("long-lived connections: %w", err)
	}

	type churnDone struct {
		res churnResult
		err error
	}
	done := make(chan churnDone, 1)
	started := time.Now()
	go func() {
		res, err := churnLoad(*rate, *dur, soakChurnPort, *procs)
		done <- churnDone{res, err}
	}()
	var samples []soakSample
	prev, prevAt := first, started
	next := started.Add(interval)
	var churn churnDone
	for running := true; running; {
		select {
		case churn = <-done:
			running = false
			continue
		default:
		}
		l, err := col.scrape(10 * time.Second)
		if err != nil {
			return err
		}
		if time.Now().Before(next) {
			continue
		}
		next = next.Add(interval)
		s, err := sample(col, l, prev, prevAt, started, first)
		if err != nil {
			return err
		}
		prev, prevAt = l, time.Now()
		samples = append(samples, s)
		logf("soak %s: RSS %.1f MB, conns %d, socks %d, long-lived open %d, churn closed %d, collector %.0f%% CPU",
			s.at.Round(time.Second), float64(s.rssKB)/1024, s.conns, s.socks, s.open, s.closed, s.cpuPct)
	}
	if churn.err != nil {
		return fmt.Errorf("churn: %w", churn.err)
	}
	loadEnd := time.Now()
	end, polls, err := col.awaitClosed(first, loadEnd, soakChurnPort, 2*churn.res.Completed)
	if err != nil {
		return err
	}
	closed := end.Closed[soakChurnPort] - first.Closed[soakChurnPort]
	if out := end.ClosedOut[soakChurnPort] - first.ClosedOut[soakChurnPort]; closed != 2*churn.res.Completed {
		logf("soak: churn closed reported %d of %d connecting ends, %d of %d accepting ends",
			out, churn.res.Completed, closed-out, churn.res.Completed)
	}
	for port, n := range end.Closed {
		if d := n - first.Closed[port]; port != soakChurnPort && d != 0 {
			logf("soak: %d closed connections reported under server.port %d", d, port)
		}
	}
	// What the tables hold once the churn is over: the long-lived connections' sockets, and
	// whatever else runs on the machine.
	after, err := sample(col, end, prev, prevAt, started, first)
	if err != nil {
		return err
	}
	logf("soak: after the churn (%d polls): conns %d, socks %d, RSS %.1f MB", polls, after.conns, after.socks, float64(after.rssKB)/1024)

	// The long-lived connections: stop their traffic, then the bytes the receiver reports
	// must be exactly what both ends sent.
	if _, err := io.WriteString(hold.stdin, "stop\n"); err != nil {
		return err
	}
	b, err := hold.next(time.Minute)
	if err != nil {
		return fmt.Errorf("long-lived connections: %w", err)
	}
	var sent struct {
		Sent int64 `json:"sent"`
	}
	if err := json.Unmarshal(b, &sent); err != nil {
		return fmt.Errorf("long-lived connections: %q: %w", b, err)
	}
	stopped := time.Now()
	var last scrapeLine
	for k := 0; k < 5; k++ { // the first poll after stopped may have started before it
		if last, err = col.scrapeSince(stopped, 10*time.Second); err != nil {
			return err
		}
		if last.Sent[soakHoldPort] == sent.Sent && last.Open[soakHoldPort] == int64(2**holdN) {
			break
		}
	}

	v := soakVerdict{rate: *rate, window: window, interval: interval, samples: samples, after: after, churn: churn.res, closed: closed,
		drops: drops(first, end), polls: polls, holdN: *holdN, open: last.Open[soakHoldPort],
		sentExact: sent.Sent, sentSeen: last.Sent[soakHoldPort]}
	fmt.Print(v.render())
	if !v.pass() {
		return errors.New("soak: FAIL")
	}
	return nil
}

// sample reads the collector's state after its poll l; prev is the previous sample's poll,
// read at prevAt.
func sample(col *collector, l, prev scrapeLine, prevAt, started time.Time, first scrapeLine) (soakSample, error) {
	n, err := kern.MapEntries(col.pid(), "conns", "socks")
	if err != nil {
		return soakSample{}, err
	}
	return soakSample{at: time.Since(started), rssKB: l.RSSKB, conns: n["conns"], socks: n["socks"],
		open: l.Open[soakHoldPort], closed: l.Closed[soakChurnPort] - first.Closed[soakChurnPort],
		cpuPct: 100 * float64(l.ProcCPUNS-prev.ProcCPUNS) / float64(time.Since(prevAt))}, nil
}

// soakVerdict is the soak's outcome, computed once from its figures.
type soakVerdict struct {
	rate      float64
	window    time.Duration // the first part of the run: its samples are the baseline
	interval  time.Duration
	samples   []soakSample
	after     soakSample // once the churn is over and reported: not judged, shown
	churn     churnResult
	closed    int64
	drops     int64
	polls     int
	holdN     int
	open      int64
	sentExact int64
	sentSeen  int64
}

// soakCheck is one line of the verdict.
type soakCheck struct {
	what, measured string
	ok             bool
}

// baseline tells the samples of the first window (taken a little after each interval).
func (v soakVerdict) baseline(s soakSample) bool { return s.at < v.window+v.interval/2 }

// final tells the samples of the last window, as long as the first.
func (v soakVerdict) final(s soakSample) bool {
	return s.at > v.samples[len(v.samples)-1].at-v.window-v.interval/2
}

// drift is the mean of f over the last window against its mean over the first. A window, not
// the last sample: a Go process's RSS swings with its GC cycle (by more than 10% within a minute
// in the first runs), and one sample would judge the cycle's phase, not the trend.
func (v soakVerdict) drift(f func(soakSample) float64) (first, last, rel float64) {
	mean := func(in func(soakSample) bool) float64 {
		sum, n := 0.0, 0
		for _, s := range v.samples {
			if in(s) {
				sum += f(s)
				n++
			}
		}
		return sum / float64(n)
	}
	first, last = mean(v.baseline), mean(v.final)
	if first > 0 {
		rel = (last - first) / first
	}
	return first, last, rel
}

func (v soakVerdict) checks() []soakCheck {
	var out []soakCheck
	if len(v.samples) < 4 || !v.baseline(v.samples[0]) || v.baseline(v.samples[len(v.samples)-1]) {
		return []soakCheck{{"samples", fmt.Sprintf("%d: the run is too short to compare its end with its start", len(v.samples)), false}}
	}
	for _, m := range []struct {
		name string
		f    func(soakSample) float64
		unit string
	}{
		{"collector RSS", func(s soakSample) float64 { return float64(s.rssKB) / 1024 }, " MB"},
		{"conns map entries", func(s soakSample) float64 { return float64(s.conns) }, ""},
		{"socks map entries", func(s soakSample) float64 { return float64(s.socks) }, ""},
	} {
		mean, last, rel := v.drift(m.f)
		out = append(out, soakCheck{fmt.Sprintf("%s: mean over the last %s within %.0f%% of the mean over the first", m.name, v.window.Round(time.Second), 100*soakTolerance),
			fmt.Sprintf("%.1f%s vs %.1f%s: %+.1f%%", last, m.unit, mean, m.unit, 100*rel), math.Abs(rel) <= soakTolerance})
	}
	out = append(out,
		soakCheck{fmt.Sprintf("churn generators reached 90%% of %.0f/s", v.rate), fmt.Sprintf("%.0f/s", v.churn.Rate), v.churn.Rate >= 0.9*v.rate},
		soakCheck{"churn: closed reported = 2 x connections, none failed, no drops",
			fmt.Sprintf("%d of %d (%d connections, %d failed, %d drops, %d polls after the load)", v.closed, 2*v.churn.Completed, v.churn.Completed, v.churn.Failed, v.drops, v.polls),
			v.closed == 2*v.churn.Completed && v.churn.Failed == 0 && v.drops == 0 && v.churn.Completed > 0},
		soakCheck{"long-lived connections reported open (both ends)", fmt.Sprintf("%d of %d", v.open, 2*v.holdN), v.open == int64(2*v.holdN)},
		soakCheck{"long-lived connections' bytes sent reported exactly", fmt.Sprintf("%d of %d", v.sentSeen, v.sentExact), v.sentSeen == v.sentExact},
	)
	return out
}

func (v soakVerdict) pass() bool {
	for _, c := range v.checks() {
		if !c.ok {
			return false
		}
	}
	return true
}

func (v soakVerdict) render() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("")
	w("| time | collector RSS (MB) | conns entries | socks entries | long-lived open | churn closed so far | collector CPU (%% of a core) |")
	w("|---|---|---|---|---|---|---|")
	for _, s := range v.samples {
		base := ""
		switch {
		case v.baseline(s):
			base = " (first)"
		case v.final(s):
			base = " (last)"
		}
		w("| %s%s | %.1f | %d | %d | %d | %d | %.0f |", s.at.Round(time.Second), base, float64(s.rssKB)/1024, s.conns, s.socks, s.open, s.closed, s.cpuPct)
	}
	a := v.after
	w("| %s, after the churn | %.1f | %d | %d | %d | %d | %.0f |", a.at.Round(time.Second), float64(a.rssKB)/1024, a.conns, a.socks, a.open, a.closed, a.cpuPct)
	w("")
	w("| check | measured | result |")
	w("|---|---|---|")
	for _, c := range v.checks() {
		res := "PASS"
		if !c.ok {
			res = "**FAIL**"
		}
		w("| %s | %s | %s |", c.what, c.measured, res)
	}
	w("")
	if v.pass() {
		w("soak: PASS")
	} else {
		w("soak: FAIL")
	}
	return b.String()
}
