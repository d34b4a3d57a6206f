// SPDX-License-Identifier: Apache-2.0

package ebpfnetreceiver

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/receiver"
	"go.uber.org/zap"
)

// newLogs is the logs receiver of set.ID: it writes one log record per failed
// TCP connection, from the polls of the metrics receiver of the same ID when
// there is one, else from a poll loop of its own.
func (r *registry) newLogs(set receiver.Settings, cfg *Config, next consumer.Logs) (receiver.Logs, error) {
	c, err := r.attach(set, cfg)
	if err != nil {
		return nil, err
	}
	if err := c.attachLogs(set, next); err != nil {
		r.detach(c)
		return nil, err
	}
	return &logsReceiver{core: c}, nil
}

// logsReceiver holds the tracer while it runs; it polls only when no metrics
// receiver of its ID does.
type logsReceiver struct {
	core *core

	mu       sync.Mutex
	acquired bool
	cancel   context.CancelFunc
	done     chan struct{}
	shutdown bool
	once     sync.Once
	err      error
}

// Start acquires the tracer (loading it if the metrics receiver of the ID has
// not) and, alone, starts polling it every collection_interval. With
// failure_logs::max_per_second 0 it does nothing.
func (r *logsReceiver) Start(_ context.Context, _ component.Host) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.acquired || r.shutdown {
		return nil
	}
	if r.core.cfg.FailureLogs.MaxPerSecond == 0 {
		r.core.set.Logger.Info("failure logs disabled (failure_logs::max_per_second is 0): the logs receiver loads no tracer")
		return nil
	}
	if _, err := r.core.acquire(); err != nil {
		return err
	}
	r.acquired = true
	if r.core.hasMetrics {
		return nil // the metrics scrape polls and hands over the failures
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go r.loop(ctx)
	return nil
}

// loop polls after initial_delay, then every collection_interval, each poll
// bounded by timeout, until Shutdown.
func (r *logsReceiver) loop(ctx context.Context) {
	defer close(r.done)
	cc := r.core.cfg.ControllerConfig
	wait := time.NewTimer(cc.InitialDelay)
	defer wait.Stop()
	select {
	case <-ctx.Done():
		return
	case <-wait.C:
	}
	tick := time.NewTicker(cc.CollectionInterval)
	defer tick.Stop()
	for {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if cc.Timeout > 0 {
			pctx, cancel = context.WithTimeout(ctx, cc.Timeout)
		}
		err := r.core.pollForLogs(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			r.core.set.Logger.Warn("failure logs: poll", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Shutdown stops the loop, lets go of the tracer (the last receiver of the ID
// closes it) and forgets the ID's core once every receiver of it is shut
// down. Later calls return the first call's result.
func (r *logsReceiver) Shutdown(context.Context) error {
	r.once.Do(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.shutdown = true
		if r.cancel != nil {
			r.cancel()
			<-r.done
		}
		if r.acquired {
			r.err = r.core.release()
			r.acquired = false
		}
		r.core.reg.detach(r.core)
	})
	return r.err
}
