// SPDX-License-Identifier: Apache-2.0

package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// fakeReport has figures for every target; bpftrace is the bpftrace arm's request/response rate
// per round, against an untraced 1000 and a tracer at 900.
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
		rr:   map[string]dist{armUntraced: fill(1000), armFloor: fill(950), armTracer: fill(900), armBpftrace: bpftrace},
		bulk: map[string]dist{armUntraced: fill(2e9), armFloor: fill(2e9), armTracer: fill(2e9),
			armBpftrace: fill(2e9)},
		costs: []progCost{
			{owner: "floor", name: "floor_tp_send", nsPerRun: dist{70}, runs: 100},
			{owner: "ebpfnet", name: "enet_tp_send", nsPerRun: dist{300}, runs: 100},
			{owner: "floor", name: "floor_tp_recv", nsPerRun: dist{70}, runs: 100},
			{owner: "ebpfnet", name: "enet_tp_recv", nsPerRun: dist{100}, runs: 100},
		},
		churnSteps: []churnStep{{target: 5000, achieved: 5000, completed: 100, closedSeen: 200}},
		scaleRows:  []scaleRow{{kind: "synthetic", n: 100_000, cpuMS: dist{40}, rssMB: 100, hwmMB: 120}, {kind: "synthetic", n: 1_000_000, cpuMS: dist{400}, rssMB: 500, hwmMB: 550}},
	}
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
