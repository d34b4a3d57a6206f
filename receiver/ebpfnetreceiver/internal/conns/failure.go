// SPDX-License-Identifier: Apache-2.0

package conns

// Failure is why a TCP connection failed, in the values of error.type that
// the semantic-convention proposal for TCP connection metrics names
// (open-telemetry/semantic-conventions#3682), plus canceled.
type Failure uint8

const (
	FailureNone Failure = iota
	// FailureRefused: the peer answered the SYN with a reset, or an ICMP port
	// unreachable came back (ECONNREFUSED).
	FailureRefused
	// FailureReset: the peer reset the connection (ECONNRESET; EPIPE, a reset
	// after the peer's FIN).
	FailureReset
	// FailureTimedOut: SYNs, data or keepalives went unanswered until the
	// kernel gave up (ETIMEDOUT).
	FailureTimedOut
	// FailureHostUnreachable: an ICMP host unreachable (EHOSTUNREACH,
	// EHOSTDOWN), at once during the handshake or as the cause of a timeout.
	FailureHostUnreachable
	// FailureNetUnreachable: an ICMP network unreachable (ENETUNREACH,
	// ENETDOWN).
	FailureNetUnreachable
	// FailureCanceled: the application closed the socket while it was still
	// connecting, with no error from the network.
	FailureCanceled
	// FailureOther: any other error (ECONNABORTED from ss -K, EPROTO, ...).
	FailureOther
	numFailures
)

var failureNames = [numFailures]string{
	FailureNone:            "",
	FailureRefused:         "refused",
	FailureReset:           "reset",
	FailureTimedOut:        "timed_out",
	FailureHostUnreachable: "host_unreachable",
	FailureNetUnreachable:  "net_unreachable",
	FailureCanceled:        "canceled",
	FailureOther:           "_OTHER",
}

// String returns the error.type value ("" for FailureNone).
func (f Failure) String() string {
	if f >= numFailures {
		return failureNames[FailureOther]
	}
	return failureNames[f]
}

// Linux errno values a TCP socket ends with (include/uapi/asm-generic/errno*.h,
// the same on every architecture Linux runs BPF on).
const (
	errnoEPIPE        = 32
	errnoENETDOWN     = 100
	errnoENETUNREACH  = 101
	errnoECONNRESET   = 104
	errnoETIMEDOUT    = 110
	errnoECONNREFUSED = 111
	errnoEHOSTDOWN    = 112
	errnoEHOSTUNREACH = 113
)

// TCP states (include/net/tcp_states.h), the bits of TCPStats.StateTransitions.
const (
	tcpEstablished = 1
	tcpSynSent     = 2
	tcpSynRecv     = 3
)

// Established reports whether the connection completed its handshake while
// the tracer watched it, or was already past it when the tracer first saw it.
func (s TCPStats) Established() bool {
	return s.StateTransitions&(1<<tcpEstablished) != 0 || !s.SawHandshake()
}

// SawHandshake reports whether the tracer watched the connection's handshake
// (it entered SYN_SENT or SYN_RECV), so that SynRetransmits counts all of it.
func (s TCPStats) SawHandshake() bool {
	return s.StateTransitions&(1<<tcpSynSent|1<<tcpSynRecv) != 0
}

// Failure tells why a closed TCP connection failed, or FailureNone when it
// did not: a connection that closed without an error failed only when it was
// still connecting (canceled).
func (s TCPStats) Failure() Failure {
	switch s.FailureReason {
	case 0:
		if s.StateTransitions&(1<<tcpSynSent) != 0 && !s.Established() {
			return FailureCanceled
		}
		return FailureNone
	case errnoECONNREFUSED:
		return FailureRefused
	case errnoECONNRESET, errnoEPIPE:
		return FailureReset
	case errnoETIMEDOUT:
		return FailureTimedOut
	case errnoEHOSTUNREACH, errnoEHOSTDOWN:
		return FailureHostUnreachable
	case errnoENETUNREACH, errnoENETDOWN:
		return FailureNetUnreachable
	}
	return FailureOther
}
