// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/hostconns/hostconnstest"
)

// tmux is a tmux server of the test's own (its socket in a temporary
// directory) holding one session, killed when the test ends.
type tmux struct {
	t    *testing.T
	sock string
}

func newTmux(t *testing.T, width, height int) *tmux {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux: %v (scripts/ci/deps.sh installs it)", err)
	}
	tm := &tmux{t: t, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	tm.run("new-session", "-d", "-s", "nettop", "-x", fmt.Sprint(width), "-y", fmt.Sprint(height), "sh")
	t.Cleanup(func() { exec.Command("tmux", "-S", tm.sock, "kill-server").Run() })
	return tm
}

func (tm *tmux) run(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", tm.sock}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %v: %v: %s", args, err, out)
	}
	return string(out)
}

// keys sends keys by tmux name (Enter, C-u, Left); text sends its argument
// literally.
func (tm *tmux) keys(keys ...string) {
	tm.run(append([]string{"send-keys", "-t", "nettop"}, keys...)...)
}
func (tm *tmux) text(s string) { tm.run("send-keys", "-t", "nettop", "-l", s) }

// screen is the pane's text, one string per line, trailing blanks cut.
func (tm *tmux) screen() []string {
	lines := strings.Split(strings.TrimRight(tm.run("capture-pane", "-p", "-t", "nettop"), "\n"), "\n")
	for i := range lines {
		lines[i] = strings.TrimRight(lines[i], " ")
	}
	return lines
}

// waitFor captures the pane until ok accepts it, and fails after 15 s with
// what it showed and why ok refused it.
func (tm *tmux) waitFor(what string, ok func(lines []string) error) []string {
	tm.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		lines := tm.screen()
		err := ok(lines)
		if err == nil {
			return lines
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("%s: %v; the screen:\n%s", what, err, strings.Join(lines, "\n"))
		}
		time.Sleep(150 * time.Millisecond)
	}
}

// table reads the rows of the screen: each row's cells by column title,
// taken from the header line (the cells nettop writes have no spaces).
func table(lines []string) []map[string]string {
	h := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), "PID ") })
	if h < 0 {
		return nil
	}
	titles := strings.Fields(lines[h])
	var rows []map[string]string
	for _, l := range lines[h+1:] {
		f := strings.Fields(l)
		if len(f) != len(titles) {
			break // the blank lines under the rows, then the detail lines
		}
		row := map[string]string{}
		for i, t := range titles {
			row[t] = f[i]
		}
		rows = append(rows, row)
	}
	return rows
}

// txrx is a screen's rows as "TX/RX" pairs, in screen order.
func txrx(lines []string) []string {
	var out []string
	for _, r := range table(lines) {
		out = append(out, r["TX"]+"/"+r["RX"])
	}
	return out
}

// wantRows accepts a screen whose rows are exactly want ("TX/RX", in order).
func wantRows(want ...string) func([]string) error {
	return func(lines []string) error {
		if got := txrx(lines); !slices.Equal(got, want) {
			return fmt.Errorf("rows TX/RX %v, want %v", got, want)
		}
		return nil
	}
}

func contains(s string) func([]string) error {
	return func(lines []string) error {
		if !strings.Contains(strings.Join(lines, "\n"), s) {
			return fmt.Errorf("no %q on screen", s)
		}
		return nil
	}
}

// TestTUIInTmux drives the full-screen view in tmux while known loopback
// traffic runs: the connections show with their exact byte counts, the sort
// and filter keys change which rows show and in which order, the aggregate
// key sums the connections the receiver's metrics sum, the view fits 80x24,
// and q exits leaving the shell's screen, not the view's, also after the
// window was resized under the view.
func TestTUIInTmux(t *testing.T) {
	hostconnstest.Require(t)
	bin := nettopBinary(t)
	lnA, lnB := listen(t), listen(t)
	tm := newTmux(t, 120, 30)
	tm.text(bin + " -interval 500ms; echo NETTOP-EXIT=$?")
	tm.keys("Enter")
	// The view shows once the tracer is attached.
	tm.waitFor("nettop starts", contains("q quit"))

	const a1, a1r, b, br = 123457, 54321, 7000, 300000
	exchange(t, lnA, a1, a1r)
	exchange(t, lnB, b, br)

	// This process's connections: the two ends of each.
	tm.keys("/")
	tm.text(fmt.Sprintf("proc:%d", os.Getpid()))
	tm.keys("Enter")
	lines := tm.waitFor("the connections with their exact bytes", func(lines []string) error {
		got := txrx(lines)
		slices.Sort(got)
		if want := []string{"123457/54321", "300000/7000", "54321/123457", "7000/300000"}; !slices.Equal(got, want) {
			return fmt.Errorf("rows TX/RX %v, want %v", got, want)
		}
		return nil
	})
	for _, r := range table(lines) {
		if r["TX"] == "123457" && (r["PEER"] != fmt.Sprintf("127.0.0.1:%d", port(lnA)) || r["DIR"] != "out" || r["NET"] != "tcp4") {
			t.Errorf("the first client's row: %v, want peer 127.0.0.1:%d, out, tcp4", r, port(lnA))
		}
	}

	// Sort by TX, descending, then ascending.
	for range len(columns) {
		if strings.Contains(tm.screen()[0], "sort TX desc") {
			break
		}
		tm.keys(">")
		time.Sleep(100 * time.Millisecond)
	}
	tm.waitFor("sorted by TX, descending", wantRows("300000/7000", "123457/54321", "54321/123457", "7000/300000"))
	tm.keys("r")
	tm.waitFor("sorted by TX, ascending", wantRows("7000/300000", "54321/123457", "123457/54321", "300000/7000"))

	// Only port A: B's rows go.
	tm.keys("/", "C-u")
	tm.text(fmt.Sprintf("proc:%d port:%d", os.Getpid(), port(lnA)))
	tm.keys("Enter")
	tm.waitFor("filtered on port A", wantRows("54321/123457", "123457/54321"))

	// A second client of A: per connection 4 rows, aggregated the receiver's
	// 2 series, each summing its direction's two connections.
	const a2, a2r = 1000, 2000
	exchange(t, lnA, a2, a2r)
	tm.waitFor("the second client", wantRows("1000/2000", "2000/1000", "54321/123457", "123457/54321"))
	tm.keys("a")
	lines = tm.waitFor("aggregated", wantRows("56321/124457", "124457/56321"))
	for _, r := range table(lines) {
		if r["CONNS"] != "2" || r["SPORT"] != fmt.Sprint(port(lnA)) {
			t.Errorf("aggregated row %v: want CONNS 2, SPORT %d", r, port(lnA))
		}
	}

	// 80x24: the main columns and the keys still fit, nothing wraps.
	tm.run("resize-window", "-t", "nettop", "-x", "80", "-y", "24")
	lines = tm.waitFor("80x24", func(lines []string) error {
		if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], "q quit") {
			return fmt.Errorf("the keys are not on the last line")
		}
		return wantRows("56321/124457", "124457/56321")(lines)
	})
	for i, l := range lines {
		if w := len([]rune(l)); w > 80 {
			t.Errorf("line %d is %d characters wide: %q", i, w, l)
		}
	}
	if hdr := strings.Fields(lines[1]); !slices.Equal(hdr, []string{"PID", "PROCESS", "PEER", "DIR", "NET", "TX", "RX", "TX/s", "RX/s"}) {
		t.Errorf("80 columns show %v", hdr)
	}

	// Wider again, then q: tmux copies the alternate screen back into the
	// shell's when a window that grew while the view was on leaves it (a
	// row of the view was left in front of the prompt before the view's
	// last frame was made blank).
	tm.run("resize-window", "-t", "nettop", "-x", "120", "-y", "30")
	tm.waitFor("120x30 again", contains("CONNS"))
	tm.keys("q")
	lines = tm.waitFor("nettop exits", contains("NETTOP-EXIT=0"))
	if alt := strings.TrimSpace(tm.run("display-message", "-p", "-t", "nettop", "#{alternate_on}")); alt != "0" {
		t.Errorf("the pane is still on the alternate screen (alternate_on=%s)", alt)
	}
	for _, l := range lines {
		if strings.Contains(l, "q quit") || strings.Contains(l, "PID ") || strings.Contains(l, "123457") {
			t.Errorf("the view left %q on the screen:\n%s", l, strings.Join(lines, "\n"))
		}
	}
}
