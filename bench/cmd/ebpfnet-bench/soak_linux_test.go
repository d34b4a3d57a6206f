// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"testing"
	"time"
)

// TestSoakVerdict: the last window's mean is held to the first window's, 10% either way, and
// any lost connection fails the soak.
func TestSoakVerdict(t *testing.T) {
	// First window (40 s): samples at 20 s and 41 s; last window: 200 s and 240 s.
	good := func(lastRSS int64, lastConns int) soakVerdict {
		s := func(at time.Duration, rss int64, conns int) soakSample {
			return soakSample{at: at, rssKB: rss, conns: conns, socks: 4000}
		}
		return soakVerdict{rate: 4000, window: 40 * time.Second, interval: 20 * time.Second,
			samples: []soakSample{s(20*time.Second+300*time.Millisecond, 100_000, 4000), s(41*time.Second, 120_000, 4200),
				s(60*time.Second, 500_000, 9000), s(200*time.Second, 110_000, 4100), s(240*time.Second, lastRSS, lastConns)},
			churn: churnResult{Completed: 1000, Rate: 3900}, closed: 2000, holdN: 2000, open: 4000, sentExact: 42, sentSeen: 42}
	}
	for _, tc := range []struct {
		name string
		v    soakVerdict
		pass bool
	}{
		{"level", good(131_000, 4100), true},
		{"RSS over 10% above the baseline mean", good(132_300, 4100), false},
		{"RSS over 10% below", good(87_700, 4100), false},
		{"conns grew", good(110_000, 4930), false},
		{"a close lost", func() soakVerdict { v := good(110_000, 4100); v.closed--; return v }(), false},
		{"a long-lived connection not reported", func() soakVerdict { v := good(110_000, 4100); v.open--; return v }(), false},
		{"bytes off", func() soakVerdict { v := good(110_000, 4100); v.sentSeen++; return v }(), false},
		{"generator short", func() soakVerdict { v := good(110_000, 4100); v.churn.Rate = 3500; return v }(), false},
		{"no baseline sample", func() soakVerdict { v := good(110_000, 4100); v.samples = v.samples[2:]; return v }(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.v.pass(); got != tc.pass {
				t.Errorf("pass() = %v, want %v:\n%s", got, tc.pass, tc.v.render())
			}
		})
	}
}
