// SPDX-License-Identifier: Apache-2.0

//go:build linux

package ebpfnetreceiver

import (
	"go.uber.org/zap"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/tracer"
)

// newTracerSource loads and attaches the kernel tracer. Its errors already
// say what is missing (BTF, a capability, a kernel hook).
func newTracerSource(cfg *Config, logger *zap.Logger) (conns.Source, error) {
	t, err := tracer.New(tracer.Config{
		MaxConnections:    uint32(cfg.MaxTrackedConnections), // Validate bounds it to uint32
		UDPIdleTimeout:    cfg.UDPIdleTimeout,
		ClassifyProtocols: cfg.ProtocolClassification,
		CaptureDNS:        cfg.DNSNames.Enabled,
		// The poll reads RTT and retransmits of open connections only for
		// the metrics that report them.
		CloseOnlyTCPHealth: !cfg.sampleTCPHealth(),
		Hooks:              cfg.Hooks,
		Logger:             logger,
	})
	if err != nil {
		return nil, err
	}
	return tracerSource{t}, nil
}

// tracerSource is the tracer, with its hook choice in the receiver's terms.
type tracerSource struct{ *tracer.Tracer }

var _ hookReporter = tracerSource{}

func (t tracerSource) HookChoices() []hookChoice {
	var out []hookChoice
	for _, h := range t.Hooks() {
		out = append(out, hookChoice{Data: h.Data, Hook: h.Hook})
	}
	return out
}
