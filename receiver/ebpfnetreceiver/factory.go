// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"context"
	"errors"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/metadata"
)

var errConfigNotEbpfnet = errors.New("config is not an ebpfnet receiver config")

// NewFactory returns the factory of the ebpfnet receiver. Its metrics and
// logs receivers of one component ID share one tracer.
func NewFactory() receiver.Factory {
	reg := newRegistry(newTracerSource, newProcResolver)
	reg.newNAT = newConntrackNAT
	return newFactory(reg)
}

func newFactory(reg *registry) receiver.Factory {
	return receiver.NewFactory(
		metadata.Type,
		func() component.Config { return createDefaultConfig() },
		receiver.WithMetrics(func(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Metrics) (receiver.Metrics, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, errConfigNotEbpfnet
			}
			return reg.newMetrics(set, c, next)
		}, metadata.MetricsStability),
		receiver.WithLogs(func(_ context.Context, set receiver.Settings, cfg component.Config, next consumer.Logs) (receiver.Logs, error) {
			c, ok := cfg.(*Config)
			if !ok {
				return nil, errConfigNotEbpfnet
			}
			return reg.newLogs(set, c, next)
		}, metadata.LogsStability),
	)
}
