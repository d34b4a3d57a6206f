// SPDX-License-Identifier: Apache-2.0

// Command nettop is top for the host's connections: a live terminal view of
// what the ebpfnet receiver's tracer sees, with no Collector to configure.
// It runs the receiver's own tracer (receiver/ebpfnetreceiver/hostconns),
// so its numbers are the receiver's. It needs root, or CAP_BPF, CAP_PERFMON
// and CAP_NET_ADMIN.
//
//	nettop                      full-screen view, refreshed every 2s
//	nettop -once                one snapshot as a table
//	nettop -json                one snapshot as JSON lines, one object per row
//	nettop -json -count 0       a snapshot every interval until interrupted
//
// A snapshot is taken one interval after start: connections are counted from
// when the tracer starts, and rates need an interval.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/hostconns"
)

// options are the command line.
type options struct {
	interval    time.Duration
	once, json  bool
	count       int
	grouped     bool
	filter      filter
	sortCol     int
	asc         bool
	noProtocols bool
}

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	var usage usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &usage):
		os.Exit(2) // the flag package printed the error and the usage
	default:
		fmt.Fprintln(os.Stderr, "nettop:", err)
		os.Exit(1)
	}
}

// usageError is a command line the flag package refused and reported.
type usageError struct{ error }

func run(args []string, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	tr, err := hostconns.Open(hostconns.Options{NoProtocolClassification: opts.noProtocols})
	if err != nil {
		// The tracer's errors name what is missing; a missing capability
		// reads "missing capability CAP_BPF, ...: run as root or grant ...",
		// the collector's own words.
		return err
	}
	defer func() {
		if err := tr.Close(); err != nil {
			fmt.Fprintln(stderr, "nettop: close tracer:", err)
		}
	}()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if opts.once || opts.json {
		return printSnapshots(ctx, tr, opts, stdout, stderr)
	}
	return runTUI(ctx, tr, opts)
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("nettop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var filterText, sortName string
	fs.DurationVar(&o.interval, "interval", 2*time.Second, "time between refreshes, and before the first snapshot")
	fs.BoolVar(&o.once, "once", false, "print one snapshot as a table and exit")
	fs.BoolVar(&o.json, "json", false, "print one snapshot as JSON lines (one object per row) and exit")
	fs.IntVar(&o.count, "count", 1, "snapshots -once and -json print (0: until interrupted)")
	fs.BoolVar(&o.grouped, "aggregate", false, "one row per aggregation key of the receiver's metrics instead of per connection")
	fs.StringVar(&filterText, "filter", "", `rows to show: "proc:NAME|PID port:N cidr:10.0.0.0/8 proto:tcp|udp|http|tls|..." and bare words`)
	fs.StringVar(&sortName, "sort", columns[defaultSort].title, "column to sort by ("+columnTitles()+")")
	fs.BoolVar(&o.asc, "asc", false, "sort ascending")
	fs.BoolVar(&o.noProtocols, "no-protocols", false, "do not load the protocol classifiers")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: nettop [flags]   (as root, or with CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return options{}, err
		}
		return options{}, usageError{err}
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments %q (see -h)", fs.Args())
	}
	if o.interval < 100*time.Millisecond {
		return options{}, fmt.Errorf("-interval %v: want at least 100ms", o.interval)
	}
	if o.count < 0 {
		return options{}, fmt.Errorf("-count %d: want 0 or more", o.count)
	}
	var err error
	if o.filter, err = parseFilter(filterText); err != nil {
		return options{}, fmt.Errorf("-filter: %w", err)
	}
	if o.sortCol = columnIndex(sortName); o.sortCol < 0 {
		return options{}, fmt.Errorf("-sort %q: want one of %s", sortName, columnTitles())
	}
	return o, nil
}

func columnTitles() string {
	var t []string
	for _, c := range columns {
		t = append(t, c.title)
	}
	return strings.Join(t, ", ")
}

// rows is what a snapshot shows under opts: grouped or not, filtered, sorted.
func rows(s *hostconns.Snapshot, grouped bool, f *filter, sortCol int, asc bool) []hostconns.Row {
	rs := s.Rows
	if grouped {
		rs = hostconns.Group(rs)
	}
	rs = f.apply(rs)
	sortRows(rs, sortCol, asc)
	return rs
}

// printSnapshots prints opts.count snapshots, one every interval.
func printSnapshots(ctx context.Context, tr *hostconns.Tracer, opts options, stdout, stderr io.Writer) error {
	fmt.Fprintf(stderr, "nettop: tracing; a snapshot every %v\n", opts.interval)
	tick := time.NewTicker(opts.interval)
	defer tick.Stop()
	for n := 0; opts.count == 0 || n < opts.count; n++ {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		snap, err := tr.Poll(ctx)
		if err != nil {
			return err
		}
		rs := rows(&snap, opts.grouped, &opts.filter, opts.sortCol, opts.asc)
		if opts.json {
			err = writeJSON(stdout, snap.Time, rs)
		} else {
			err = writeTable(stdout, &snap, rs, opts.grouped)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// jsonRow is one line of -json: the row's fields and the snapshot's time.
type jsonRow struct {
	Time time.Time `json:"time"`
	hostconns.Row
}

func writeJSON(w io.Writer, at time.Time, rs []hostconns.Row) error {
	enc := json.NewEncoder(w)
	for _, r := range rs {
		if err := enc.Encode(jsonRow{Time: at, Row: r}); err != nil {
			return err
		}
	}
	return nil
}

// writeTable prints every column, sized to its content, then the totals.
func writeTable(w io.Writer, s *hostconns.Snapshot, rs []hostconns.Row, grouped bool) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	var cols []int
	for i, c := range columns {
		if grouped || !c.group {
			cols = append(cols, i)
		}
	}
	for j, i := range cols {
		fmt.Fprint(tw, sep(j), columns[i].title)
	}
	fmt.Fprintln(tw)
	for k := range rs {
		for j, i := range cols {
			fmt.Fprint(tw, sep(j), columns[i].cell(&rs[k]))
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, totals(s, rs))
	return err
}

func sep(j int) string {
	if j == 0 {
		return ""
	}
	return "\t"
}

// totals is the footer: what the rows add up to and what the tracer lost.
func totals(s *hostconns.Snapshot, rs []hostconns.Row) string {
	var n, closed int
	var tx, rx uint64
	var txr, rxr float64
	for i := range rs {
		n += rs[i].Connections
		if rs[i].Closed {
			closed += rs[i].Connections
		}
		tx, rx = tx+rs[i].SentBytes, rx+rs[i].ReceivedBytes
		txr, rxr = txr+rs[i].SentBytesRate, rxr+rs[i].RecvBytesRate
	}
	out := fmt.Sprintf("%d conns (%d closed)  tx %d B %s/s  rx %d B %s/s  lost %d", n, closed, tx, human(txr), rx, human(rxr), s.Lost)
	for _, c := range s.Counters {
		if c.Loss && c.Value > 0 {
			out += fmt.Sprintf(" %s=%d", c.Name, c.Value)
		}
	}
	return out
}
