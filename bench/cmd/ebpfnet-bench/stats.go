// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"slices"
)

// dist is a set of samples, reported as median with min-max.
type dist []float64

func (d dist) median() float64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (d dist) min() float64 { return slices.Min(append(dist{}, d...)) }
func (d dist) max() float64 { return slices.Max(append(dist{}, d...)) }

// format prints "median (min-max)" with f formatting each number.
func (d dist) format(f func(float64) string) string {
	if len(d) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%s (%s–%s)", f(d.median()), f(d.min()), f(d.max()))
}

func f0(v float64) string { return fmt.Sprintf("%.0f", v) }
func f1(v float64) string { return fmt.Sprintf("%.1f", v) }
func f3(v float64) string { return fmt.Sprintf("%.3f", v) }
