// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"context"
	"errors"

	"go.uber.org/zap"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/nat"
)

// natTranslator sets the NAT translation of a poll's connections
// (conns.Conn.NAT) before they are aggregated.
type natTranslator interface {
	// annotate sets the translation of the poll's connections and follows
	// the network namespaces they are in. It is called once per poll.
	annotate(snap *conns.Snapshot)
	stats() natStats
	close() error
}

// natStats are a translator's cumulative counts, exported as the
// receiver's telemetry (ebpfnet_nat_*).
type natStats struct {
	Events, Lost, Resyncs, NetnsRefused, Evictions uint64
}

// natFactory creates the translator when the tracer starts; nil when the
// translation is off.
type natFactory func(cfg *Config, logger *zap.Logger) natTranslator

// newConntrackNAT follows conntrack. It returns nil, having said why in one
// log line, when nat::enabled is false or the kernel has no conntrack: the
// receiver runs on without the ebpfnet.nat.* attributes.
func newConntrackNAT(cfg *Config, logger *zap.Logger) natTranslator {
	if !cfg.NAT.Enabled {
		return nil
	}
	// A closed connection is reported at the poll after its close: its
	// entry must outlive the DESTROY by a few collection intervals.
	grace := max(nat.DefaultGrace, 3*cfg.CollectionInterval)
	t := nat.NewTable(nat.Options{MaxEntries: cfg.NAT.MaxEntries, Grace: grace})
	w, err := newWatcher(t, logger)
	if err != nil {
		if errors.Is(err, nat.ErrNoConntrack) {
			logger.Info("NAT translation off: this kernel has no conntrack", zap.Error(err))
		} else {
			logger.Warn("NAT translation off: cannot read conntrack", zap.Error(err))
		}
		return nil
	}
	return &conntrackNAT{w: w, t: t, a: nat.NewAnnotator(t)}
}

// newWatcher is nat.NewWatcher; a test makes it fail as a kernel without
// conntrack does.
var newWatcher = nat.NewWatcher

type conntrackNAT struct {
	w *nat.Watcher
	t *nat.Table
	a *nat.Annotator
}

func (n *conntrackNAT) annotate(snap *conns.Snapshot) {
	// Namespaces first: one new since the last poll (named, or of a
	// connection of this poll) is dumped before the lookups, so its
	// connections match at once; destroyed entries past their grace go.
	n.w.Refresh()
	for _, cs := range [][]conns.Conn{snap.Active, snap.Closed} {
		for i := range cs {
			n.w.Follow(cs[i].Netns, cs[i].PID)
		}
	}
	n.a.Annotate(snap.Active, snap.Closed)
}

func (n *conntrackNAT) stats() natStats {
	ws, ts := n.w.Stats(), n.t.Stats()
	return natStats{Events: ws.Events, Lost: ws.Lost, Resyncs: ws.Resyncs, NetnsRefused: ws.NetnsRefused, Evictions: ts.Evictions}
}

func (n *conntrackNAT) close() error { return n.w.Close() }

// recordNATStats adds what the translator's counts grew by since the last
// poll to the receiver's telemetry.
func (c *core) recordNATStats(ctx context.Context) {
	if c.nat == nil {
		return
	}
	cur, prev := c.nat.stats(), c.lastNAT
	c.lastNAT = cur
	addGrowth(ctx,
		growth{c.telemetry.EbpfnetNatEvents, cur.Events, prev.Events},
		growth{c.telemetry.EbpfnetNatEventsLost, cur.Lost, prev.Lost},
		growth{c.telemetry.EbpfnetNatResyncs, cur.Resyncs, prev.Resyncs},
		growth{c.telemetry.EbpfnetNatNetnsRefused, cur.NetnsRefused, prev.NetnsRefused},
		growth{c.telemetry.EbpfnetNatTableEvictions, cur.Evictions, prev.Evictions})
}
