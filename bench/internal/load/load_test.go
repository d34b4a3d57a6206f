// SPDX-License-Identifier: Apache-2.0

package load

import (
	"testing"
	"time"
)

// TestChurnPaced: every connection due in the window is opened, used and closed, from the
// addresses it was given.
func TestChurnPaced(t *testing.T) {
	r, err := Churn(ChurnConfig{Rate: 400, Dur: time.Second, Port: 23456, FirstAddr: 3, Addrs: 2, Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	if r.Completed != 400 || r.Failed != 0 {
		t.Fatalf("completed %d, failed %d; want 400, 0", r.Completed, r.Failed)
	}
	if r.Rate < 300 || r.Rate > 401 {
		t.Errorf("rate %.0f/s for 400/s", r.Rate)
	}
}

// TestChurnWindow: a generator that cannot keep pace stops opening connections when the window
// ends, so its rate is what it reached in the window.
func TestChurnWindow(t *testing.T) {
	start := time.Now()
	r, err := Churn(ChurnConfig{Rate: 1e7, Dur: 300 * time.Millisecond, Port: 23457, FirstAddr: 1, Addrs: 1, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %s for a 300 ms window", el)
	}
	if r.Completed == 0 || r.Completed >= 3e6 || r.Failed != 0 {
		t.Errorf("completed %d, failed %d", r.Completed, r.Failed)
	}
}

// TestHoldRounds: the bytes Quiesce returns are the first byte each way plus whole rounds, and
// Hold fails rather than hold fewer connections than asked.
func TestHoldRounds(t *testing.T) {
	h, err := Hold(HoldConfig{N: 10, Port: 23458, Addrs: 2, Every: 50 * time.Millisecond, Size: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	time.Sleep(300 * time.Millisecond)
	sent, err := h.Quiesce()
	if err != nil {
		t.Fatal(err)
	}
	rounds := (sent - 2*10) / (2 * 7 * 10)
	if rounds < 2 || sent != 2*10+rounds*2*7*10 {
		t.Errorf("sent %d: not 20 + whole rounds of 140 (at least 2)", sent)
	}
	if again, _ := h.Quiesce(); again != sent {
		t.Errorf("sent %d after quiescing, %d before", again, sent)
	}
}
