// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// fakeReport has figures for every target; bpftrace is the bpftrace arm's request/response rate
// per round, against an untraced 1000, a tracer at 900 and the tracer without classification at
// 910.
func fakeReport(bpftrace dist) *report {
	n := len(bpftrace)
	fill := func(v float64) dist {
		d := make(dist, n)
		for i := range d {
			d[i] = v
		}
		return d
	}
	return &report{
		plan: fullPlan(),
		rr: map[string]dist{armUntraced: fill(1000), armFloor: fill(950), armTracer: fill(900), armNoClassify: fill(910),
			armBpftrace: bpftrace},
		bulk: map[string]dist{armUntraced: fill(2e9), armFloor: fill(2e9), armTracer: fill(2e9), armNoClassify: fill(2e9),
			armBpftrace: fill(2e9)},
		costs: []progCost{
			{owner: "floor", name: "floor_tp_send", nsPerRun: dist{70}, runs: 100},
			{owner: "ebpfnet", name: "enet_tp_send", nsPerRun: dist{300}, runs: 100},
			{owner: "floor", name: "floor_tp_recv", nsPerRun: dist{70}, runs: 100},
			{owner: "ebpfnet", name: "enet_tp_recv", nsPerRun: dist{100}, runs: 100},
		},
		churnSteps: []churnStep{{target: 5000, achieved: 5000, completed: 100, closedSeen: 200}},
		scaleRows:  []scaleRow{{kind: "synthetic", n: 100_000, cpuMS: dist{40}, rssMB: 100, hwmMB: 120}, {kind: "synthetic", n: 1_000_000, cpuMS: dist{400}, rssMB: 500, hwmMB: 550}},
		health:     fakeHealth(dist{230, 250, 210}, dist{200, 200, 200}),
	}
}

// fakeHealth is a TCP health phase of len(on) rounds whose polls all took the round's figure,
// per arm; the walk takes a tenth of it.
func fakeHealth(on, off dist) *healthRun {
	h := &healthRun{n: 100_000, polls: 2, cpuMS: map[string]dist{}, wallMS: map[string]dist{}, walkMS: map[string]dist{},
		roundCPU: map[string]dist{}, roundWall: map[string]dist{}, roundWalk: map[string]dist{}, seen: map[string]int64{}}
	for arm, d := range map[string]dist{armHealthOn: on, armHealthOff: off} {
		for _, v := range d {
			h.cpuMS[arm] = append(h.cpuMS[arm], v, v)
			h.wallMS[arm] = append(h.wallMS[arm], v+10, v+10)
			h.walkMS[arm] = append(h.walkMS[arm], v/10)
			h.roundCPU[arm] = append(h.roundCPU[arm], v)
			h.roundWall[arm] = append(h.roundWall[arm], v+10)
			h.roundWalk[arm] = append(h.roundWalk[arm], v/10)
		}
		h.seen[arm] = 100_000
	}
	return h
}

// TestBpftraceVerdict: clearly ahead means ahead in every round, and the Targets table and the
// closing notes state the same outcome.
func TestBpftraceVerdict(t *testing.T) {
	notes, err := os.ReadFile("../../NOTES.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		bpftrace dist
		want     string
	}{
		{"ahead in every round", dist{850, 880, 899}, "met"},
		{"level", dist{850, 920, 880}, "**missed: level, ahead in 2 of 3 rounds**"},
		{"tied round", dist{850, 900, 880}, "**missed: level, ahead in 2 of 3 rounds**"},
		{"behind in every round", dist{901, 950, 990}, "**missed: behind bpftrace in every round (3)**"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := fakeReport(tc.bpftrace)
			r.notes = string(notes)
			md, err := r.markdown()
			if err != nil {
				t.Fatal(err)
			}
			row := regexp.MustCompile(`(?m)^\| request/response clearly ahead of bpftrace.*\| ([^|]*) \|$`).FindStringSubmatch(md)
			if row == nil || row[1] != tc.want {
				t.Fatalf("Targets row: %q, want outcome %q", row, tc.want)
			}
			_, closing, _ := strings.Cut(md, "## Closing note")
			if !strings.Contains(closing, "ahead in every round: "+tc.want+")") {
				t.Errorf("closing notes do not quote the outcome %q:\n%s", tc.want, closing)
			}
		})
	}
}

// TestNotesQuoteEveryVerdict: bench/NOTES.md quotes each target's outcome through {{verdict}}, and
// its own text judges none (no outcome word outside the template actions), so the notes cannot
// contradict the Targets table.
func TestNotesQuoteEveryVerdict(t *testing.T) {
	b, err := os.ReadFile("../../NOTES.md")
	if err != nil {
		t.Fatal(err)
	}
	notes := string(b)
	for _, k := range verdictKeys {
		if !strings.Contains(notes, `{{verdict "`+k+`"}}`) {
			t.Errorf("bench/NOTES.md does not quote the verdict %q", k)
		}
	}
	static := regexp.MustCompile(`\{\{[^}]*\}\}`).ReplaceAllString(notes, "")
	if m := regexp.MustCompile(`(?i)\b(met|missed|not demonstrated|not clearly|clearly ahead of bpftrace:)\b`).FindAllString(static, -1); m != nil {
		t.Errorf("bench/NOTES.md judges targets in its own words %q: quote {{verdict \"key\"}} instead", m)
	}
	if _, err := renderNotes(`{{verdict "no-such-target"}}`, nil); err == nil {
		t.Error("an unknown verdict key renders")
	}
	r := fakeReport(dist{850, 880, 899})
	for _, v := range r.verdicts() {
		if v.key == "" || !strings.Contains(strings.Join(verdictKeys, ","), v.key) {
			t.Errorf("verdict %q has a key verdictKeys does not list", v.key)
		}
	}
	if got := len(r.verdicts()); got != len(verdictKeys) {
		t.Errorf("a report with every figure has %d verdicts, verdictKeys lists %d", got, len(verdictKeys))
	}
}

// TestChurnVerdict: the churn target is judged on its own step; a generator that fell short is
// said to have, with what it reached, and a loss is a miss whatever the rate.
func TestChurnVerdict(t *testing.T) {
	step := func(achieved float64, completed, closed int64) churnStep {
		return churnStep{target: churnTarget, dur: 30e9, procs: 4, achieved: achieved, completed: completed, closedSeen: closed}
	}
	for _, tc := range []struct {
		name  string
		steps []churnStep
		want  string
	}{
		{"reached, exact", []churnStep{step(19500, 585000, 1170000)}, "met"},
		{"short, exact", []churnStep{step(12000, 360000, 720000)},
			"**not demonstrated: the generator fell short, 12000/s of 20000/s, every connection reported**"},
		{"reached, lost", []churnStep{step(19500, 585000, 1169990)}, "**missed: closed reported 1169990 of 1170000, 0 failed, 0 drops**"},
		{"short, lost", []churnStep{step(4561, 600000, 1199960)},
			"**missed: closed reported 1199960 of 1200000, 0 failed, 0 drops; and the generator fell short, 4561/s of 20000/s**"},
		{"target step not run", []churnStep{{target: 5000, achieved: 3000, completed: 100, closedSeen: 200, procs: 4}},
			"**not demonstrated: the generator fell short at the 5000/s step (3000/s with 4 processes)**"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &report{plan: fullPlan(), churnSteps: tc.steps}
			if got := r.churnVerdict().outcome; got != tc.want {
				t.Errorf("outcome %q, want %q", got, tc.want)
			}
		})
	}
}

// TestClassifyVerdict: classification's cost is off minus on over untraced, round by round, and
// the target is judged on the median of the rounds.
func TestClassifyVerdict(t *testing.T) {
	for _, tc := range []struct {
		name               string
		untraced, on, off  dist
		want, wantMeasured string
	}{
		{"met", dist{1000, 500, 1000}, dist{900, 440, 950}, dist{910, 450, 955}, "met",
			"on 0.900, off 0.910 of untraced; off minus on round by round 0.010 (0.005–0.020)"},
		// One round's 0.1 does not decide: the median of the rounds does.
		{"one bad round", dist{1000, 1000, 1000}, dist{800, 900, 900}, dist{900, 910, 905}, "met",
			"on 0.900, off 0.905 of untraced; off minus on round by round 0.010 (0.005–0.100)"},
		{"missed", dist{1000, 1000, 1000}, dist{900, 880, 950}, dist{930, 910, 990}, "**missed by 0.010**",
			"on 0.900, off 0.930 of untraced; off minus on round by round 0.030 (0.030–0.040)"},
		{"no untraced", nil, dist{900}, dist{910}, "**not measured: no round has untraced and both tracer arms**", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &report{plan: fullPlan(), rr: map[string]dist{armUntraced: tc.untraced, armTracer: tc.on, armNoClassify: tc.off}}
			v := r.classifyVerdict()
			if v.outcome != tc.want || (tc.wantMeasured != "" && v.measured != tc.wantMeasured) {
				t.Errorf("outcome %q, measured %q; want %q, %q", v.outcome, v.measured, tc.want, tc.wantMeasured)
			}
		})
	}
}

// TestClassifierSection: the classifier programs get their own table, one row per program and
// load, beside the empty program of their hook in the same windows.
func TestClassifierSection(t *testing.T) {
	r := fakeReport(dist{850})
	lc := func(ns dist, windows []int, runs uint64) *loadCost {
		return &loadCost{nsPerRun: ns, windows: windows, runs: runs}
	}
	r.costs = append(r.costs,
		progCost{owner: "ebpfnet", name: "enet_cg_skbout", nsPerRun: dist{40, 44}, runs: 300, byLoad: map[string]*loadCost{
			"rr": lc(dist{30, 36}, []int{0, 1}, 200), "churn, first messages": lc(dist{120}, []int{1}, 100)}},
		progCost{owner: "floor", name: "floor_cg_skbout", nsPerRun: dist{15, 15}, runs: 300, byLoad: map[string]*loadCost{
			"rr": lc(dist{15, 12}, []int{0, 1}, 200), "churn, first messages": lc(dist{20, 30}, []int{0, 1}, 100)}},
		progCost{owner: "ebpfnet", name: "enet_cg_skbin", nsPerRun: dist{50}, runs: 10, byLoad: map[string]*loadCost{}},
	)
	var b strings.Builder
	r.costSection(func(f string, a ...any) { b.WriteString(fmt.Sprintf(f, a...) + "\n") })
	_, table, ok := strings.Cut(b.String(), "### Protocol classification (cgroup_skb)")
	if !ok {
		t.Fatalf("no classification table:\n%s", b.String())
	}
	for _, row := range []string{
		"| enet_cg_skbout | rr | 33 (30–36) | 200 | 14 (12–15) | 2.50x (2.00x–3.00x) |",
		"| enet_cg_skbout | churn | n/a | 0 | n/a | – |",
		// Window 1 only: the classifier did not run in window 0 of this load.
		"| enet_cg_skbout | churn, first messages | 120 (120–120) | 100 | 25 (20–30) | 4.00x (4.00x–4.00x) |",
		"| enet_cg_skbin | rr | n/a | 0 | n/a | – |",
	} {
		if !strings.Contains(table, row+"\n") {
			t.Errorf("no row %q in:\n%s", row, table)
		}
	}
	if strings.Index(table, "enet_cg_skbout") > strings.Index(table, "| enet_cg_skbin") {
		t.Error("skbin's rows come before skbout's")
	}
	for _, l := range costLoads {
		if !strings.Contains(table, "- **"+l.Name+"**: "+l.What+".") {
			t.Errorf("the table's text does not say what load %q is", l.Name)
		}
	}
}

// TestRoundArms: every round runs each arm once, and the two tracer arms take turns at running
// first, so the order of the rounds cancels between them.
func TestRoundArms(t *testing.T) {
	first := map[string]int{}
	for i := range 6 {
		a := roundArms(i)
		if got := slices.Sorted(slices.Values(a)); !slices.Equal(got, slices.Sorted(slices.Values(arms))) {
			t.Fatalf("round %d runs %q", i, a)
		}
		if slices.Index(a, armTracer) < slices.Index(a, armNoClassify) {
			first[armTracer]++
		} else {
			first[armNoClassify]++
		}
	}
	if first[armTracer] != 3 || first[armNoClassify] != 3 {
		t.Errorf("of 6 rounds, the tracer runs first in %d, the tracer without classification in %d", first[armTracer], first[armNoClassify])
	}
}

// TestHealthSection: the TCP health phase renders one row per arm, the on/off ratios round by
// round, and a Targets row judged on the median of the rounds' CPU ratios; a phase that stopped
// says where, and judges nothing it did not measure.
func TestHealthSection(t *testing.T) {
	r := fakeReport(dist{850})
	r.notes = ""
	md, err := r.markdown()
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(md, "### TCP health sampling at 100000 real sockets")
	if !ok {
		t.Fatalf("no TCP health section:\n%s", md)
	}
	for _, want := range []string{
		"| TCP health on (default) | 6 | 240.0 (220.0–260.0) | 230.0 (210.0–250.0) | 23.0 (21.0–25.0) | 100000 |\n",
		"| TCP health off (close only) | 6 | 210.0 (210.0–210.0) | 200.0 (200.0–200.0) | 20.0 (20.0–20.0) | 100000 |\n",
		"poll CPU 1.15x (1.05x–1.25x), poll wall 1.14x (1.05x–1.24x), table walk 1.15x (1.05x–1.25x).",
		"take turns over 3 rounds", "then 2 polls are measured", "all 100000 sockets open",
	} {
		if !strings.Contains(sec, want) {
			t.Errorf("TCP health section lacks %q:\n%s", want, sec)
		}
	}
	for _, tc := range []struct {
		name              string
		h                 *healthRun
		measured, outcome string
	}{
		{"met", fakeHealth(dist{230, 250, 210}, dist{200, 200, 200}),
			"on 230.0 ms, off 200.0 ms CPU per poll (medians of 6 and 6 polls); on/off round by round 1.15x (1.05x–1.25x); table walk in the kernel 23.0 against 20.0 ms", "met"},
		{"missed", fakeHealth(dist{300, 250, 290}, dist{200, 200, 200}),
			"on 290.0 ms, off 200.0 ms CPU per poll (medians of 6 and 6 polls); on/off round by round 1.45x (1.25x–1.50x); table walk in the kernel 29.0 against 20.0 ms",
			fmt.Sprintf("**missed by %.0f points**", 45-100*maxHealthCPU)},
		{"stopped", &healthRun{n: 100_000, failure: "TCP health on (default), round 1: receiver reported 5 open sockets of the 100000 held"}, "–",
			"**not measured: TCP health on (default), round 1: receiver reported 5 open sockets of the 100000 held**"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &report{plan: fullPlan(), health: tc.h}
			v := r.healthVerdict()
			if v.key != "scale-health" || v.measured != tc.measured || v.outcome != tc.outcome {
				t.Errorf("verdict %q: measured %q, outcome %q; want %q, %q", v.key, v.measured, v.outcome, tc.measured, tc.outcome)
			}
			if !strings.Contains(v.target, fmt.Sprintf("at most %.0f%% poll CPU at 100k real sockets", 100*maxHealthCPU)) {
				t.Errorf("target %q", v.target)
			}
		})
	}
}
