// SPDX-License-Identifier: Apache-2.0

package aggregate

import (
	"math"
	"slices"
	"time"
)

// Bucket boundaries, in seconds.
var (
	// DurationBounds spans connections from a millisecond RPC to an hour-long stream.
	DurationBounds = []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600}
	// RTTBounds spans loopback (tens of microseconds) to intercontinental links.
	RTTBounds = []float64{0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}
)

func boundsOf(m Metric) []float64 {
	if m == TCPRTT || m == TCPRTTVariation {
		return RTTBounds
	}
	return DurationBounds
}

// histogram is a cumulative explicit-bucket histogram.
type histogram struct {
	bounds   []float64
	counts   []uint64
	count    uint64
	sum      float64
	min, max float64
}

func newHistogram(bounds []float64) *histogram {
	return &histogram{bounds: bounds, counts: make([]uint64, len(bounds)+1), min: math.Inf(1), max: math.Inf(-1)}
}

// observe adds v; a bucket holds values in (previous bound, bound], as the
// OpenTelemetry explicit-bucket histogram defines.
func (h *histogram) observe(v float64) {
	i, _ := slices.BinarySearch(h.bounds, v)
	h.counts[i]++
	h.count++
	h.sum += v
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

func (h *histogram) point(attrs Attrs, start time.Time) HistogramPoint {
	return HistogramPoint{
		Attrs:        attrs,
		Start:        start,
		Count:        h.count,
		Sum:          h.sum,
		Min:          h.min,
		Max:          h.max,
		Bounds:       h.bounds,
		BucketCounts: slices.Clone(h.counts),
	}
}
