// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"fmt"
	"testing"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

var sink []conns.Conn

// BenchmarkConvert turns n kernel table entries into domain connections, as one poll of a
// table of n entries does (the table read itself is not included).
func BenchmarkConvert(b *testing.B) {
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
			keys := make([]netflowConnTuple, n)
			vals := make([]netflowConnValue, n)
			for i := range keys {
				keys[i].SaddrL = 0x0100000affff0000 // ::ffff:10.0.0.1, native order on little endian
				keys[i].DaddrL = 0x0200000affff0000
				keys[i].Sport, keys[i].Dport = uint16(i), 443
				keys[i].Pid, keys[i].Netns = 100, 4026531840
				keys[i].Metadata = uint32(netflowConnMetadataCONN_TCP)
				vals[i].Stats.SentBytes, vals[i].Stats.Start, vals[i].Stats.Timestamp = uint64(i), 1, 2
			}
			clk := now()
			b.ReportAllocs()
			b.ResetTimer()
			var active []conns.Conn
			for b.Loop() {
				// Appended as Poll does: into last poll's slice, so growth is paid once.
				active = active[:0]
				for i := range keys {
					active = append(active, connFromBPF(&keys[i], &vals[i], clk))
				}
				sink = active
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/conn")
		})
	}
}
