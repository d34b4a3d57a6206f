// SPDX-License-Identifier: Apache-2.0

package conns

import "testing"

// TestFailure: what each errno and each path through the TCP states means,
// and that a connection that completed its handshake and closed cleanly is
// never a failure.
func TestFailure(t *testing.T) {
	const (
		closed      = 1 << 7 // TCP_CLOSE
		synSent     = 1 << tcpSynSent
		synRecv     = 1 << tcpSynRecv
		established = 1 << tcpEstablished
		finWait1    = 1 << 4
		closeWait   = 1 << 8
	)
	tests := []struct {
		name        string
		transitions uint16
		errno       uint16
		want        Failure
	}{
		{"clean close of an outgoing connection", synSent | established | finWait1 | closed, 0, FailureNone},
		{"clean close of an accepted connection", synRecv | established | closeWait | closed, 0, FailureNone},
		{"clean close of a connection older than the tracer", established | closed, 0, FailureNone},
		{"closed while connecting", synSent | closed, 0, FailureCanceled},
		{"connect answered by a reset", synSent | closed, 111, FailureRefused},
		{"reset after the handshake", synSent | established | closed, 104, FailureReset},
		{"reset after the peer's FIN", synSent | established | closeWait | closed, 32, FailureReset},
		{"accepted, then reset", synRecv | established | closed, 104, FailureReset},
		{"SYNs unanswered", synSent | closed, 110, FailureTimedOut},
		{"data unanswered", synSent | established | closed, 110, FailureTimedOut},
		{"ICMP host unreachable", synSent | closed, 113, FailureHostUnreachable},
		{"host down", synSent | closed, 112, FailureHostUnreachable},
		{"ICMP net unreachable", synSent | closed, 101, FailureNetUnreachable},
		{"net down", synSent | closed, 100, FailureNetUnreachable},
		{"ss -K", synSent | established | closed, 103, FailureOther},
		{"an errno nobody expects", synSent | established | closed, 71, FailureOther},
	}
	for _, tc := range tests {
		got := TCPStats{StateTransitions: tc.transitions, FailureReason: tc.errno}.Failure()
		if got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	for f := FailureNone; f <= numFailures; f++ {
		if f != FailureNone && f.String() == "" {
			t.Errorf("failure %d has no name", f)
		}
	}
	if numFailures.String() != "_OTHER" {
		t.Errorf("an unknown failure code reads %q", numFailures.String())
	}
}
