// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"go.uber.org/zap"
)

// The closed-connection ring (the closed map) and its wake-up watermark are
// sized in C (CLOSED_RING_BYTES, wakeup_watermark): room for over a second of
// closes at 20,000 connections per second, so a reader delayed by a busy CPU
// or a GC pause rarely makes the BPF side fall back to the table
// (RingReserveFailed: delayed to the next poll, not lost).

// readLoop moves ring records into t.pending until the reader is closed.
func (t *Tracer) readLoop() {
	defer close(t.done)
	var rec ringbuf.Record
	for {
		err := t.reader.ReadInto(&rec)
		switch {
		case err == nil:
			var r netflowConnRecord
			t.pendingMu.Lock()
			if decodeRecord(rec.RawSample, &r) == nil {
				t.pending = append(t.pending, r)
			} else {
				t.lost++
			}
			t.pendingMu.Unlock()
		case errors.Is(err, ringbuf.ErrFlushed):
			t.flushed <- struct{}{}
		case errors.Is(err, ringbuf.ErrClosed):
			return
		default:
			t.log.Warn("ring buffer read", zap.Error(err))
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// drainRing returns every record submitted before the call.
func (t *Tracer) drainRing(ctx context.Context) ([]netflowConnRecord, error) {
	if err := t.reader.Flush(); err != nil {
		return nil, fmt.Errorf("flush ring buffer: %w", err)
	}
	select {
	case <-t.flushed:
	case <-t.done:
		return nil, errors.New("ring buffer reader stopped")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	t.pendingMu.Lock()
	recs := t.pending
	t.pending = nil
	t.pendingMu.Unlock()
	return recs, nil
}
