// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/ringbuf"
	"go.uber.org/zap"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
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

// drainDNS reads every DNS response the kernel put in dns_answers since the
// last poll (bpf/protocols/dns_capture.h). The BPF side never wakes a reader:
// a deadline in the past makes the reader take what is there and stop.
func (t *Tracer) drainDNS() []conns.DNSResponse {
	var (
		out []conns.DNSResponse
		rec ringbuf.Record
	)
	t.dnsReader.SetDeadline(time.Unix(1, 0))
	for {
		err := t.dnsReader.ReadInto(&rec)
		if err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.log.Warn("dns ring buffer read", zap.Error(err))
			}
			return out
		}
		if r, ok := decodeDNS(rec.RawSample); ok {
			out = append(out, r)
		} else {
			t.dnsUndecoded++
		}
	}
}

// dnsRecordHead is the size of struct dns_record before msg.
const dnsRecordHead = int(unsafe.Offsetof(netflowDnsRecord{}.Msg))

// decodeDNS copies one dns_record out of the ring: the record holds only the
// bytes the message used (DNS_RECORD_HEAD + len).
func decodeDNS(raw []byte) (conns.DNSResponse, bool) {
	if len(raw) < dnsRecordHead {
		return conns.DNSResponse{}, false
	}
	n := int(binary.NativeEndian.Uint16(raw[6:8]))
	if n > len(raw)-dnsRecordHead || n > len(netflowDnsRecord{}.Msg) {
		return conns.DNSResponse{}, false
	}
	return conns.DNSResponse{
		Netns: binary.NativeEndian.Uint32(raw[0:4]),
		Size:  int(binary.NativeEndian.Uint16(raw[4:6])),
		Msg:   bytes.Clone(raw[dnsRecordHead : dnsRecordHead+n]),
	}, true
}
