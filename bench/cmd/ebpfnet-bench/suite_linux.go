// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/bench/internal/floor"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/bench/internal/kern"
)

// plan sizes a run: the full run (make bench) or a smoke run (-quick); the Makefile's comment on
// the bench target says how long each takes.
type plan struct {
	quick       bool
	rounds      int           // interleaved rounds of the overhead arms
	rrDur       time.Duration // per measurement
	bulkDur     time.Duration
	costWindows int
	churnSteps  []churnPlanStep
	churnProcs  int   // generator processes sharing each churn step
	synthetic   []int // synthetic tracked connections for the scale phase
	real        []int // real loopback connections (two tracked sockets each)
	// Rounds of the TCP health phase (health_linux.go), each both arms: about 9 s per arm.
	healthRounds int
}

func fullPlan() plan {
	return plan{rounds: 6, rrDur: 2500 * time.Millisecond, bulkDur: 1500 * time.Millisecond, costWindows: 5,
		churnSteps: []churnPlanStep{{5000, 4 * time.Second}, {10000, 4 * time.Second}, {15000, 4 * time.Second},
			{churnTarget, 30 * time.Second}, {30000, 4 * time.Second}}, churnProcs: 4,
		synthetic: []int{10_000, 100_000, 1_000_000}, real: []int{4_000, 9_000}, healthRounds: 3}
}

func quickPlan() plan {
	return plan{quick: true, rounds: 2, rrDur: time.Second, bulkDur: time.Second, costWindows: 2,
		churnSteps: []churnPlanStep{{5000, 2 * time.Second}, {churnTarget, 2 * time.Second}}, churnProcs: 4,
		synthetic: []int{10_000, 100_000}, real: []int{4_000}, healthRounds: 1}
}

func runSuite(args []string) error {
	fs := flag.NewFlagSet("ebpfnet-bench", flag.ExitOnError)
	quick := fs.Bool("quick", os.Getenv("BENCH_QUICK") == "1", "smoke run (fewer rounds and steps); also BENCH_QUICK=1")
	out := fs.String("out", "docs/BENCHMARKS.md", "report to write")
	gobench := fs.String("gobench", "", "output of `go test -bench` to include")
	script := fs.String("bpftrace", "bench/bpftrace/bytes.bt", "bpftrace script of the bpftrace arm")
	notes := fs.String("notes", "bench/NOTES.md", "closing notes to append, if the file exists")
	only := fs.String("only", "", "comma-separated phases to run (overhead,cost,churn,scale,health); default all")
	procs := fs.Int("churn-procs", 0, "churn: generator processes per step (0: the plan's)")
	fs.IntVar(&churnAddrs, "churn-addrs", churnAddrs, "churn: destination addresses per generator process")
	_ = fs.Parse(args)
	if os.Geteuid() != 0 {
		return errors.New("run as root: the suite loads BPF programs and enables bpf_stats")
	}
	var err error
	if self, err = os.Executable(); err != nil {
		return err
	}
	if err := ensureTracefs(); err != nil {
		return err
	}
	p := fullPlan()
	if *quick {
		p = quickPlan()
	}
	if *procs > 0 {
		p.churnProcs = *procs
	}
	want := func(name string) bool { return *only == "" || strings.Contains(","+*only+",", ","+name+",") }
	r := &report{plan: p, started: time.Now()}
	if b, err := os.ReadFile(*notes); err == nil {
		r.notes = string(b)
	}
	if _, err := renderNotes(r.notes, nil); err != nil { // before the run, not after it
		return fmt.Errorf("%s: %w", *notes, err)
	}
	r.machine = machine()
	r.bpftraceVersion = commandOut("bpftrace", "--version")
	logf("machine: %s", r.machine)
	if want("overhead") {
		if err := r.overhead(*script); err != nil {
			return fmt.Errorf("overhead: %w", err)
		}
	}
	if want("cost") {
		if err := r.cost(*script); err != nil {
			return fmt.Errorf("per-program cost: %w", err)
		}
	}
	if want("churn") {
		if err := r.churn(); err != nil {
			return fmt.Errorf("churn: %w", err)
		}
	}
	if want("scale") {
		if err := r.scale(); err != nil {
			return fmt.Errorf("scale: %w", err)
		}
	}
	if want("health") {
		if err := r.tcpHealth(); err != nil {
			return fmt.Errorf("tcp health: %w", err)
		}
	}
	if *gobench != "" {
		b, err := os.ReadFile(*gobench)
		if err != nil {
			return err
		}
		r.gobench = string(b)
	}
	r.elapsed = time.Since(r.started)
	md, err := r.markdown()
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
		return err
	}
	logf("wrote %s in %s", *out, r.elapsed.Round(time.Second))
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func ensureTracefs() error {
	if err := exec.Command("mountpoint", "-q", "/sys/kernel/tracing").Run(); err == nil {
		return nil
	}
	return unix.Mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, "")
}

// ---- Overhead: loopback throughput, five arms interleaved ----

const (
	armUntraced = "untraced"
	armFloor    = "empty programs"
	armTracer   = "ebpfnet tracer"
	// armNoClassify is the tracer with protocol_classification: false, against armTracer in
	// the same round: what classification costs (issue 15).
	armNoClassify = "ebpfnet tracer, no classification"
	armBpftrace   = "bpftrace"
)

var arms = []string{armUntraced, armFloor, armTracer, armNoClassify, armBpftrace}

// roundArms is the order of the arms in round i: the two tracer arms swap places every other
// round, so that what comes just before each (the floor's detach, the other tracer's shutdown)
// is the same for both over the rounds, and their difference carries no order bias.
func roundArms(i int) []string {
	a := slices.Clone(arms)
	if i%2 == 1 {
		t, n := slices.Index(a, armTracer), slices.Index(a, armNoClassify)
		a[t], a[n] = a[n], a[t]
	}
	return a
}

// classifierPrefix starts the names of the protocol classification programs, bpf/netflow.bpf.c's
// cgroup_skb programs (bpf/protocols/hook.h): the tracer loads them only with
// protocol_classification on.
const classifierPrefix = "enet_cg_skb"

// classifiersLoaded counts the loaded programs named classifierPrefix*: under the host BPF lock
// the only ones are those of the collector child the bench started.
func classifiersLoaded() (int, error) {
	progs, err := kern.Programs(func(name string, _ ebpf.ProgramID) bool { return strings.HasPrefix(name, classifierPrefix) })
	return len(progs), err
}

// startTracerArm starts the collector child for a tracer arm and checks that it loaded the
// classifiers if and only if classify: the two tracer arms differ in that alone.
func startTracerArm(classify bool) (*collector, error) {
	// The collector's default collection interval: polls happen as in production.
	c, err := startCollector(10*time.Second, 65536, fmt.Sprintf("-classify=%t", classify))
	if err != nil {
		return nil, err
	}
	n, err := classifiersLoaded()
	if err == nil && (n > 0) != classify {
		err = fmt.Errorf("protocol_classification %t, yet %d %s* programs loaded", classify, n, classifierPrefix)
	}
	if err != nil {
		c.stop(syscall.SIGTERM)
		return nil, err
	}
	return c, nil
}

// setup attaches an arm and returns what detaches it.
func setupArm(arm, script string) (func(), error) {
	switch arm {
	case armUntraced:
		return func() {}, nil
	case armFloor:
		f, err := floor.Attach()
		if err != nil {
			return nil, err
		}
		return func() { _ = f.Close() }, nil
	case armTracer, armNoClassify:
		c, err := startTracerArm(arm == armTracer)
		if err != nil {
			return nil, err
		}
		return func() { c.stop(syscall.SIGTERM) }, nil
	case armBpftrace:
		c, err := startBpftrace(script)
		if err != nil {
			return nil, err
		}
		return func() { c.stop(syscall.SIGINT) }, nil
	}
	return nil, fmt.Errorf("unknown arm %s", arm)
}

type result struct {
	Value float64 `json:"value"`
}

func (r *report) overhead(script string) error {
	p := r.plan
	r.rr = map[string]dist{}
	r.bulk = map[string]dist{}
	for round := 0; round < p.rounds; round++ {
		for _, arm := range roundArms(round) {
			detach, err := setupArm(arm, script)
			if err != nil {
				return fmt.Errorf("%s: %w", arm, err)
			}
			time.Sleep(200 * time.Millisecond)
			var rr, bulk result
			err = loadChild(&rr, "rr", "-conns", "4", "-size", "64", "-dur", p.rrDur.String())
			if err == nil {
				err = loadChild(&bulk, "bulk", "-size", "65536", "-dur", p.bulkDur.String())
			}
			detach()
			if err != nil {
				return fmt.Errorf("%s: %w", arm, err)
			}
			r.rr[arm] = append(r.rr[arm], rr.Value)
			r.bulk[arm] = append(r.bulk[arm], bulk.Value)
			logf("overhead round %d %-15s rr %.0f/s bulk %.2f GB/s", round+1, arm, rr.Value, bulk.Value/1e9)
		}
	}
	return nil
}

// ratios divides each round's value of arm by the same round's untraced value.
func ratios(m map[string]dist, arm string) dist {
	var out dist
	for i := range m[arm] {
		if i < len(m[armUntraced]) && m[armUntraced][i] > 0 {
			out = append(out, m[arm][i]/m[armUntraced][i])
		}
	}
	return out
}

// ---- Per-program cost: bpf_stats run_time_ns / run_cnt ----

// progCost is one program's per-run cost over the measuring windows.
type progCost struct {
	owner, name string
	nsPerRun    dist // per window, all its loads
	runs        uint64
	recMisses   uint64
	byLoad      map[string]*loadCost // by costLoad name
}

// loadCost is one program's per-run cost during one load of the cost windows.
type loadCost struct {
	nsPerRun dist
	windows  []int // the window of each nsPerRun sample: programs on one hook pair by it
	runs     uint64
}

// costLoad is one load of each cost window. Statistics are read before and after each, so every
// program's cost is known per load: a settled connection's fast path (rr) apart from a new
// connection's classification (the churns).
type costLoad struct {
	Name, What string // exported for the report's templates
	args       func(window int) []string
}

var costLoads = []costLoad{
	{"rr", "request/response, 4 connections of 64-byte messages for 1.5 s: connections settled after their first packets",
		func(int) []string { return []string{"rr", "-conns", "4", "-size", "64", "-dur", "1500ms"} }},
	{"churn", "2,000 new connections in 1 s, each 16 zero bytes each way: no protocol",
		func(w int) []string {
			return []string{"churn", "-rate", "2000", "-dur", "1s", "-port", fmt.Sprint(20050 + w)}
		}},
	{"churn, first messages", "2,000 new connections in 1 s, a third each opening with HTTP/1.1 (GET and its 200), RESP (PING, +PONG) and TLS 1.3 (ClientHello, ServerHello): bench/internal/load's Exchanges",
		func(w int) []string {
			return []string{"churn", "-rate", "2000", "-dur", "1s", "-port", fmt.Sprint(20060 + w), "-addrs", "6", "-messages", "http,redis,tls"}
		}},
}

func (r *report) cost(script string) error {
	f, err := floor.Attach()
	if err != nil {
		return err
	}
	defer f.Close()
	col, err := startCollector(10*time.Second, 65536)
	if err != nil {
		return err
	}
	defer col.stop(syscall.SIGTERM)
	bt, err := startBpftrace(script)
	if err != nil {
		return err
	}
	defer bt.stop(syscall.SIGINT)
	btObjs, err := kern.ObjectsOf(bt.pid())
	if err != nil {
		return err
	}
	owner := func(name string, id ebpf.ProgramID) string {
		switch {
		case strings.HasPrefix(name, "enet_"):
			return "ebpfnet"
		case strings.HasPrefix(name, floor.Prefix):
			return "floor"
		case btObjs.Progs[id]:
			return "bpftrace"
		}
		return ""
	}
	keep := func(name string, id ebpf.ProgramID) bool { return owner(name, id) != "" }
	if n, err := classifiersLoaded(); err != nil || n == 0 {
		return fmt.Errorf("the collector loaded %d %s* programs (%v): protocol_classification is off", n, classifierPrefix, err)
	}
	costs := map[ebpf.ProgramID]*progCost{}
	for w := 0; w < r.plan.costWindows; w++ {
		stats, err := kern.EnableStats()
		if err != nil {
			return fmt.Errorf("enable bpf_stats: %w", err)
		}
		// snaps[i] is before costLoads[i], the last after them all.
		snaps := make([]map[ebpf.ProgramID]kern.ProgStat, 0, len(costLoads)+1)
		s, err := kern.Programs(keep)
		snaps = append(snaps, s)
		for _, l := range costLoads {
			if err != nil {
				break
			}
			var res churnResult // rr's result has none of its fields
			if err = loadChild(&res, l.args(w)...); err != nil {
				break
			}
			if res.Failed > 0 {
				err = fmt.Errorf("%s: %d of %d connections failed", l.Name, res.Failed, res.Failed+res.Completed)
				break
			}
			s, err = kern.Programs(keep)
			snaps = append(snaps, s)
		}
		_ = stats.Close()
		if err != nil {
			return err
		}
		before, after := snaps[0], snaps[len(snaps)-1]
		for id, a := range after {
			b := before[id]
			runs := a.RunCount - b.RunCount
			c := costs[id]
			if c == nil {
				c = &progCost{owner: owner(a.Name, id), name: a.Name, byLoad: map[string]*loadCost{}}
				costs[id] = c
			}
			c.runs += runs
			c.recMisses += a.RecursionMisses - b.RecursionMisses
			if runs > 0 {
				c.nsPerRun = append(c.nsPerRun, float64(a.RuntimeNS-b.RuntimeNS)/float64(runs))
			}
			for i, l := range costLoads {
				lb, la := snaps[i][id], snaps[i+1][id]
				lc := c.byLoad[l.Name]
				if lc == nil {
					lc = &loadCost{}
					c.byLoad[l.Name] = lc
				}
				if runs := la.RunCount - lb.RunCount; runs > 0 {
					lc.runs += runs
					lc.nsPerRun = append(lc.nsPerRun, float64(la.RuntimeNS-lb.RuntimeNS)/float64(runs))
					lc.windows = append(lc.windows, w)
				}
			}
		}
		logf("per-program cost window %d/%d: %d programs", w+1, r.plan.costWindows, len(after))
	}
	for _, c := range costs {
		r.costs = append(r.costs, *c)
	}
	return nil
}

// ---- Churn: new connections per second with no closed connection lost ----

// churnTarget is issue 14's churn target, new connections per second; its step is sustained.
const churnTarget = 20000

// churnPlanStep is one rate of the churn phase and how long it is held.
type churnPlanStep struct {
	rate float64
	dur  time.Duration
}

type churnResult struct {
	Completed int64         `json:"Completed"`
	Failed    int64         `json:"Failed"`
	Rate      float64       `json:"Rate"`
	StartNS   int64         `json:"StartNS"`
	EndNS     int64         `json:"EndNS"`
	cpu       time.Duration // the generator processes' user+system time, summed
}

// churnAddrs is the destination addresses of each generator process: process i listens on
// and connects to 127.0.0.<1+i*churnAddrs> onwards, so no two share a 4-tuple. More addresses,
// more 4-tuples: -churn-addrs changes it.
var churnAddrs = 8

// churnLoad runs procs churn generator processes at rate/procs each for d on port, all paced
// from one start instant, and sums them: completed and failed are totals, Rate is completed over
// the span from that start to the last generator's end.
func churnLoad(rate float64, d time.Duration, port, procs int) (churnResult, error) {
	if procs < 1 || procs*churnAddrs > 254 {
		return churnResult{}, fmt.Errorf("%d generator processes: 1 to %d", procs, 254/churnAddrs)
	}
	// Process start-up is not load: pacing starts once every child can have started.
	start := time.Now().Add(300 * time.Millisecond)
	res := make([]churnResult, procs)
	errs := make([]error, procs)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i].cpu, errs[i] = loadChildCPU(&res[i], "churn", "-rate", fmt.Sprint(rate/float64(procs)), "-dur", d.String(),
				"-port", fmt.Sprint(port), "-first", fmt.Sprint(1+i*churnAddrs), "-addrs", fmt.Sprint(churnAddrs),
				"-start", fmt.Sprint(start.UnixNano()))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return churnResult{}, err
	}
	sum := churnResult{StartNS: start.UnixNano()}
	for _, r := range res {
		sum.Completed += r.Completed
		sum.Failed += r.Failed
		sum.EndNS = max(sum.EndNS, r.EndNS)
		sum.cpu += r.cpu
	}
	if span := time.Duration(sum.EndNS - sum.StartNS); span > 0 {
		sum.Rate = float64(sum.Completed) / span.Seconds()
	}
	return sum, nil
}

type churnStep struct {
	target      float64
	dur         time.Duration
	procs       int
	achieved    float64
	completed   int64
	failed      int64
	closedSeen  int64 // closed connections (sockets) the receiver reported for the step's port
	cpuPer1000  float64
	genUSPer    float64 // generator processes' CPU per connection, µs (both ends, kernel included)
	drops       int64
	scrapeMaxMS float64
	polls       int // polls after the load ended until the count was complete or stopped moving
}

// exact is a step with every connection reported closed at both ends and nothing lost.
func (s churnStep) exact() bool {
	return s.closedSeen == 2*s.completed && s.failed == 0 && s.drops == 0 && s.completed > 0
}

// ceiling is the rate the generators' CPU per connection allows on all of this machine's CPUs,
// if nothing else ran: what bounds the achieved rate when the generators are CPU-bound.
func (s churnStep) ceiling() float64 {
	if s.genUSPer <= 0 {
		return 0
	}
	return float64(numCPU()) * 1e6 / s.genUSPer
}

// short is a step the generator could not drive at its target (achieved < 90%).
func (s churnStep) short() bool { return s.achieved < 0.9*s.target }

// drops sums the receiver's loss counters (lost records, full tables) between two scrapes.
func drops(start, end scrapeLine) int64 {
	var n int64
	for k, v := range end.Telemetry {
		if strings.Contains(k, "lost") || strings.Contains(k, "full") {
			n += v - start.Telemetry[k]
		}
	}
	return n
}

// awaitClosed polls until port's closed connections since start reach want or the count stops
// moving for 3 polls (10 at most), counting only polls that ran after since: the lines of the
// polls during the load queued meanwhile. It returns the last poll and how many it took.
func (c *collector) awaitClosed(start scrapeLine, since time.Time, port int, want int64) (scrapeLine, int, error) {
	var end scrapeLine
	var err error
	polls, still, prev := 0, 0, int64(-1)
	for polls < 10 && still < 3 {
		if end, err = c.scrapeSince(since, 10*time.Second); err != nil {
			return end, polls, err
		}
		polls++
		got := end.Closed[int64(port)] - start.Closed[int64(port)]
		if got >= want {
			break
		}
		if got == prev {
			still++
		} else {
			still = 0
		}
		prev = got
	}
	return end, polls, nil
}

func (r *report) churn() error {
	col, err := startCollector(time.Second, 65536)
	if err != nil {
		return err
	}
	defer col.stop(syscall.SIGTERM)
	if _, err := col.scrape(5 * time.Second); err != nil {
		return err
	}
	short := false
	for i, step := range r.plan.churnSteps {
		if short && step.rate != churnTarget {
			// The generators could not reach a lower rate; the target's step still runs, for
			// the verdict to judge what they reach there.
			continue
		}
		port := 20100 + i
		start, err := col.scrape(5 * time.Second) // in step with the polls
		if err != nil {
			return err
		}
		res, err := churnLoad(step.rate, step.dur, port, r.plan.churnProcs)
		if err != nil {
			return err
		}
		// Reporting latency: the polls after the load until every close is reported.
		end, polls, err := col.awaitClosed(start, time.Now(), port, 2*res.Completed)
		if err != nil {
			return err
		}
		st := churnStep{target: step.rate, dur: step.dur, procs: r.plan.churnProcs, achieved: res.Rate,
			completed: res.Completed, failed: res.Failed, closedSeen: end.Closed[int64(port)] - start.Closed[int64(port)],
			scrapeMaxMS: float64(end.WallNS) / 1e6, polls: polls, drops: drops(start, end)}
		if res.Completed > 0 {
			st.cpuPer1000 = float64(end.ProcCPUNS-start.ProcCPUNS) / 1e6 / (float64(res.Completed) / 1000)
			st.genUSPer = float64(res.cpu.Microseconds()) / float64(res.Completed)
		}
		if out := end.ClosedOut[int64(port)] - start.ClosedOut[int64(port)]; st.closedSeen != 2*res.Completed {
			logf("churn %.0f/s: closed reported %d of %d connecting ends, %d of %d accepting ends",
				step.rate, out, res.Completed, st.closedSeen-out, res.Completed)
		}
		r.churnSteps = append(r.churnSteps, st)
		logf("churn %.0f/s for %s, %d generator processes: achieved %.0f/s, %d connections, %d failed, closed sockets seen %d of %d, %d drops, %d polls, collector %.2f ms CPU per 1000, generators %.0f µs CPU per connection (%.0f/s on %d CPUs)",
			step.rate, step.dur, st.procs, res.Rate, res.Completed, res.Failed, st.closedSeen, 2*res.Completed, st.drops, polls, st.cpuPer1000,
			st.genUSPer, st.ceiling(), numCPU())
		if short = short || st.short(); short && step.rate >= churnTarget {
			break // the load generators (and this machine) cannot go faster
		}
	}
	return nil
}

// ---- Scale: tracked connections, poll cost, memory ----

type scaleRow struct {
	kind       string // synthetic or real
	n          int    // tracked connections (table entries)
	seen       int64  // open connections the receiver reported for them
	wallMS     dist
	cpuMS      dist
	rssMB      float64
	hwmMB      float64
	connsMapMB float64
	allMapsMB  float64
	points     int
	failure    string
}

func (r *report) scale() error {
	netns, err := netnsInode()
	if err != nil {
		return err
	}
	for _, n := range r.plan.synthetic {
		row, err := r.scaleOne("synthetic", n, func(col *collector) (func(), error) {
			t := time.Now()
			err := kern.FillConns(col.pid(), n, uint32(os.Getpid()), netns)
			logf("scale: filled %d synthetic entries in %s", n, time.Since(t).Round(time.Millisecond))
			return func() {}, err
		}, func(l scrapeLine) int64 { return l.Open[443] + l.Open[444] + l.Open[445] + l.Open[446] })
		if err != nil {
			// A size the receiver cannot handle is a result, not a reason to stop.
			row.failure = err.Error()
			logf("scale synthetic %d: %v", n, err)
		}
		r.scaleRows = append(r.scaleRows, row)
	}
	for i, n := range r.plan.real {
		port := 20200 + i
		row, err := r.scaleOne("real", 2*n, func(col *collector) (func(), error) {
			h, err := startChild(self, "load", "hold", "-n", fmt.Sprint(n), "-port", fmt.Sprint(port))
			if err != nil {
				return nil, err
			}
			if _, err := h.next(2 * time.Minute); err != nil {
				h.stop(syscall.SIGTERM)
				return nil, err
			}
			return func() { h.stop(syscall.SIGTERM) }, nil
		}, func(l scrapeLine) int64 { return l.Open[int64(port)] })
		if err != nil {
			row.failure = err.Error()
			logf("scale real %d: %v", n, err)
		}
		r.scaleRows = append(r.scaleRows, row)
	}
	return nil
}

func (r *report) scaleOne(kind string, n int, fill func(*collector) (func(), error), seen func(scrapeLine) int64) (scaleRow, error) {
	row := scaleRow{kind: kind, n: n}
	col, err := startCollector(time.Second, n+65536)
	if err != nil {
		return row, err
	}
	defer col.stop(syscall.SIGTERM)
	if _, err := col.scrape(10 * time.Second); err != nil {
		return row, err
	}
	release, err := fill(col)
	if err != nil {
		return row, err
	}
	defer release()
	// Skip the poll that may have run during the fill, then measure steady polls.
	if _, err := col.scrape(180 * time.Second); err != nil {
		return row, fmt.Errorf("no poll completed within 180 s: %w", err)
	}
	var last scrapeLine
	for k := 0; k < 4; k++ {
		if last, err = col.scrape(180 * time.Second); err != nil {
			return row, fmt.Errorf("no poll completed within 180 s: %w", err)
		}
		row.wallMS = append(row.wallMS, float64(last.WallNS)/1e6)
		row.cpuMS = append(row.cpuMS, float64(last.CPUNS)/1e6)
	}
	row.seen = seen(last)
	row.rssMB, row.hwmMB = float64(last.RSSKB)/1024, float64(last.HWMKB)/1024
	row.points = last.Points
	objs, err := kern.ObjectsOf(col.pid())
	if err != nil {
		return row, err
	}
	for _, m := range objs.Maps {
		row.allMapsMB += float64(m.Memlock) / (1 << 20)
		if m.Name == "conns" {
			row.connsMapMB = float64(m.Memlock) / (1 << 20)
		}
	}
	logf("scale %s %d: seen %d, poll %s ms wall, %s ms CPU, RSS %.0f MB, maps %.0f MB",
		kind, n, row.seen, row.wallMS.format(f1), row.cpuMS.format(f1), row.rssMB, row.allMapsMB)
	return row, nil
}

func netnsInode() (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		return 0, err
	}
	return uint32(st.Ino), nil
}

func commandOut(name string, args ...string) string {
	b, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return "unavailable"
	}
	return strings.TrimSpace(string(b))
}

func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				_, cpu, _ = strings.Cut(l, ":")
				cpu = strings.TrimSpace(cpu)
				break
			}
		}
	}
	var si unix.Sysinfo_t
	_ = unix.Sysinfo(&si)
	return fmt.Sprintf("%s, %d CPUs, %.0f GiB RAM", cpu, numCPU(), float64(si.Totalram)*float64(si.Unit)/(1<<30))
}
