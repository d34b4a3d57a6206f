// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"fmt"
	"net/netip"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/aggregate"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadata"
)

// This file is all the pdata of the failure logs: one log record per failed
// TCP connection. The resource attributes and the connection's attributes are
// the metrics' own (buildResource, the aggregate attribute table); the one
// attribute only the logs have is declared here, since mdatagen v0.161.0
// declares log attributes only for its events, which cannot carry a body or a
// severity.

// attrSynAttempts is the handshake segments the local end sent: SYNs of a
// connect, SYN-ACKs of an accept, the first one included.
const attrSynAttempts = "ebpfnet.tcp.syn_attempts"

// failureLogOnlyAttrs are the attributes above, for the docs test.
var failureLogOnlyAttrs = []string{attrSynAttempts}

// failureLogAttrs are the attributes of the metrics a record carries: every
// fact of the connection but server.port (the local and peer ports say it),
// the peer's name when DNS gave one (server.address, as of the close:
// dnsnames.Namer.Apply), and why it failed.
const failureLogAttrs = aggregate.AttrTransport | aggregate.AttrNetworkType | aggregate.AttrConnectionDirection |
	aggregate.AttrLocalAddress | aggregate.AttrLocalPort | aggregate.AttrPeerAddress | aggregate.AttrPeerPort |
	aggregate.AttrProtocolName | aggregate.AttrProtocolVersion | aggregate.AttrRPCSystem | aggregate.AttrTLSVersion |
	aggregate.AttrErrorType | aggregate.AttrServerAddress

// failureSeverity is the severity of every record: a failure the peer or the
// network caused is worth a look, not an error of the collector.
const (
	failureSeverity     = plog.SeverityNumberWarn
	failureSeverityText = "WARN"
)

// tokenBucket bounds the records to a rate with bursts of as many, refilled
// by poll time (not the wall clock), so tests that pin time are exact.
type tokenBucket struct {
	rate   float64 // tokens a second, and the bucket's size
	tokens float64
	last   time.Time // poll time of the last refill; zero before the first
}

func newTokenBucket(perSecond int) tokenBucket {
	return tokenBucket{rate: float64(perSecond), tokens: float64(perSecond)}
}

// refill adds what the time since the last refill earns, up to the size.
func (b *tokenBucket) refill(now time.Time) {
	if !b.last.IsZero() && now.After(b.last) {
		b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	if b.last.IsZero() || now.After(b.last) {
		b.last = now
	}
}

// take spends a token if there is one.
func (b *tokenBucket) take() bool {
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// failureLogger writes the records of one poll's failed connections. It is
// used by one poller at a time (the metrics scrape, or the logs receiver's
// own loop), never concurrently.
type failureLogger struct {
	lb      *metadata.LogsBuilder
	rac     metadata.ResourceAttributesConfig
	bucket  tokenBucket
	resolve func(pid, netns uint32, cgroupID uint64) aggregate.Resource
}

// failureBatch is what one poll produced: the records, how many, and how many
// failures the rate bound left without one.
type failureBatch struct {
	logs    plog.Logs
	records int
	dropped int
}

type procKey struct{ pid, netns uint32 }

// build writes one record per failed TCP connection of snap.Closed (a failed
// connection is there exactly once), grouped in one ResourceLogs per process
// and network namespace in the order they first failed.
func (f *failureLogger) build(snap conns.Snapshot) failureBatch {
	f.bucket.refill(snap.Time)
	var (
		order  []procKey
		groups map[procKey][]int
		out    failureBatch
	)
	for i := range snap.Closed {
		c := &snap.Closed[i]
		if c.Transport != conns.TransportTCP || c.TCP.Failure() == conns.FailureNone {
			continue
		}
		if !f.bucket.take() {
			out.dropped++
			continue
		}
		if groups == nil {
			groups = map[procKey][]int{}
		}
		k := procKey{c.PID, c.Netns}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	observed := pcommon.NewTimestampFromTime(snap.Time)
	for _, k := range order {
		idx := groups[k]
		res := f.resolve(k.pid, k.netns, snap.Closed[idx[0]].CgroupID)
		res.PID, res.Netns = k.pid, k.netns
		res.NameFromComm(snap.Closed[idx[0]].Comm)
		for _, i := range idx {
			lr := plog.NewLogRecord()
			writeFailure(lr, &snap.Closed[i], observed)
			f.lb.AppendLogRecord(lr)
			out.records++
		}
		f.lb.EmitForResource(metadata.WithLogsResource(buildResource(metadata.NewResourceBuilder(f.rac), res)))
	}
	out.logs = f.lb.Emit()
	return out
}

// writeFailure fills lr with the failure of c: when it closed, what it was,
// why it failed.
func writeFailure(lr plog.LogRecord, c *conns.Conn, observed pcommon.Timestamp) {
	lr.SetTimestamp(pcommon.NewTimestampFromTime(c.Start.Add(c.Duration)))
	lr.SetObservedTimestamp(observed)
	lr.SetSeverityNumber(failureSeverity)
	lr.SetSeverityText(failureSeverityText)
	lr.Body().SetStr(failureBody(c))
	attrs := lr.Attributes()
	putAttrs(attrs, aggregate.AttrsOf(c), failureLogAttrs)
	if c.TCP.SawHandshake() {
		attrs.PutInt(attrSynAttempts, int64(c.TCP.SynRetransmits)+1)
	}
}

// failureBody says in a line what failed: "tcp connect to 198.18.0.2:9
// failed: refused" for a handshake that did not complete, "tcp connection
// to|from|with <peer> failed: reset" for a connection that did.
func failureBody(c *conns.Conn) string {
	peer := netip.AddrPortFrom(c.Peer.Addr().Unmap(), c.Peer.Port())
	what := "connect to"
	switch {
	case c.Direction == conns.DirectionIncoming:
		what = "connection from"
	case !c.TCP.Established():
		// a connect, or a handshake of unknown direction: the local end
		// connected, since an accepted socket exists only once established.
	case c.Direction == conns.DirectionOutgoing:
		what = "connection to"
	default:
		what = "connection with"
	}
	return fmt.Sprintf("tcp %s %s failed: %s", what, peer, c.TCP.Failure())
}
