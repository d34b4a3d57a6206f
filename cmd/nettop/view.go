// SPDX-License-Identifier: Apache-2.0

package main

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/hostconns"
)

// column is one column of the table, on screen and in --once.
type column struct {
	title string
	width int // on screen; -once sizes columns to their content
	// flex: the width the column grows to when the screen has room left.
	flex  int
	prio  int  // narrow screens drop the highest numbers first
	right bool // numbers are right-aligned
	group bool // shown only when rows are groups
	cell  func(r *hostconns.Row) string
	// short is the cell in fewer characters (1.2M), where the exact one
	// does not fit on screen.
	short func(r *hostconns.Row) string
	cmp   func(a, b *hostconns.Row) int
}

// columns are the table's columns, left to right. At 80 columns the first
// two priorities fit (who, with whom, which way, how much, how fast), at 120
// the protocol stack, RTT and retransmits too; the detail lines under the
// table show every field of the selected row.
var columns = []column{
	{title: "PID", width: 7, prio: 1, right: true, cell: func(r *hostconns.Row) string { return strconv.FormatUint(uint64(r.PID), 10) },
		cmp: func(a, b *hostconns.Row) int { return cmp.Compare(a.PID, b.PID) }},
	{title: "PROCESS", width: 9, flex: 16, prio: 1, cell: func(r *hostconns.Row) string { return dash(r.Process) },
		cmp: func(a, b *hostconns.Row) int { return strings.Compare(a.Process, b.Process) }},
	{title: "CONTAINER", width: 12, prio: 6, cell: func(r *hostconns.Row) string { return dash(shortID(r.ContainerID)) },
		cmp: func(a, b *hostconns.Row) int { return strings.Compare(a.ContainerID, b.ContainerID) }},
	{title: "LOCAL", width: 21, flex: 47, prio: 5, cell: func(r *hostconns.Row) string { return endpoint(r.LocalAddress, r.LocalPort) },
		cmp: func(a, b *hostconns.Row) int {
			return cmp.Or(a.LocalAddress.Compare(b.LocalAddress), cmp.Compare(a.LocalPort, b.LocalPort))
		}},
	{title: "PEER", width: 21, flex: 47, prio: 1, cell: peer,
		cmp: func(a, b *hostconns.Row) int {
			return cmp.Or(strings.Compare(a.PeerName, b.PeerName), a.PeerAddress.Compare(b.PeerAddress), cmp.Compare(a.PeerPort, b.PeerPort))
		}},
	{title: "SPORT", width: 5, prio: 3, right: true, group: true, cell: func(r *hostconns.Row) string { return strconv.Itoa(int(r.ServerPort)) },
		cmp: func(a, b *hostconns.Row) int { return cmp.Compare(a.ServerPort, b.ServerPort) }},
	{title: "DIR", width: 3, prio: 2, cell: func(r *hostconns.Row) string { return dirShort(r.Direction) },
		cmp: func(a, b *hostconns.Row) int { return strings.Compare(a.Direction, b.Direction) }},
	{title: "NET", width: 4, prio: 2, cell: proto,
		cmp: func(a, b *hostconns.Row) int { return strings.Compare(proto(a), proto(b)) }},
	{title: "STACK", width: 10, prio: 3, cell: func(r *hostconns.Row) string { return dash(r.Stack()) },
		cmp: func(a, b *hostconns.Row) int { return strings.Compare(a.Stack(), b.Stack()) }},
	{title: "CONNS", width: 5, prio: 3, right: true, group: true, cell: func(r *hostconns.Row) string { return strconv.Itoa(r.Connections) },
		cmp: func(a, b *hostconns.Row) int { return cmp.Compare(a.Connections, b.Connections) }},
	{title: "TX", width: 9, prio: 1, right: true, cell: func(r *hostconns.Row) string { return strconv.FormatUint(r.SentBytes, 10) },
		short: func(r *hostconns.Row) string { return human(float64(r.SentBytes)) },
		cmp:   func(a, b *hostconns.Row) int { return cmp.Compare(a.SentBytes, b.SentBytes) }},
	{title: "RX", width: 9, prio: 1, right: true, cell: func(r *hostconns.Row) string { return strconv.FormatUint(r.ReceivedBytes, 10) },
		short: func(r *hostconns.Row) string { return human(float64(r.ReceivedBytes)) },
		cmp:   func(a, b *hostconns.Row) int { return cmp.Compare(a.ReceivedBytes, b.ReceivedBytes) }},
	{title: "TX/s", width: 5, prio: 2, right: true, cell: func(r *hostconns.Row) string { return human(r.SentBytesRate) },
		cmp: func(a, b *hostconns.Row) int { return cmp.Compare(a.SentBytesRate, b.SentBytesRate) }},
	{title: "RX/s", width: 5, prio: 2, right: true, cell: func(r *hostconns.Row) string { return human(r.RecvBytesRate) },
		cmp: func(a, b *hostconns.Row) int { return cmp.Compare(a.RecvBytesRate, b.RecvBytesRate) }},
	{title: "PKT TX", width: 7, prio: 7, right: true, cell: func(r *hostconns.Row) string { return strconv.FormatUint(r.SentPackets, 10) },
		short: func(r *hostconns.Row) string { return human(float64(r.SentPackets)) },
		cmp:   func(a, b *hostconns.Row) int { return cmp.Compare(a.SentPackets, b.SentPackets) }},
	{title: "PKT RX", width: 7, prio: 7, right: true, cell: func(r *hostconns.Row) string { return strconv.FormatUint(r.ReceivedPackets, 10) },
		short: func(r *hostconns.Row) string { return human(float64(r.ReceivedPackets)) },
		cmp:   func(a, b *hostconns.Row) int { return cmp.Compare(a.ReceivedPackets, b.ReceivedPackets) }},
	{title: "RTT", width: 7, prio: 4, right: true, cell: func(r *hostconns.Row) string { return rtt(r.RTTMicros) },
		cmp: func(a, b *hostconns.Row) int { return cmp.Compare(a.RTTMicros, b.RTTMicros) }},
	{title: "RETR", width: 5, prio: 4, right: true, cell: func(r *hostconns.Row) string { return strconv.FormatUint(r.Retransmits+r.SynRetransmits, 10) },
		cmp: func(a, b *hostconns.Row) int {
			return cmp.Compare(a.Retransmits+a.SynRetransmits, b.Retransmits+b.SynRetransmits)
		}},
}

// defaultSort is the column the rows are sorted by unless told otherwise:
// the busiest senders first, as top puts the busiest processes first.
var defaultSort = columnIndex("TX/s")

// columnIndex returns the index of the column titled name (any case), or -1.
func columnIndex(name string) int {
	return slices.IndexFunc(columns, func(c column) bool { return strings.EqualFold(c.title, name) })
}

// visible returns the indexes of the columns shown in width cells, in table
// order: by priority, all the columns of a priority or none (TX without RX
// would mislead), and a later priority's when they fit in what is left.
func visible(width int, grouped bool) []int {
	last := 0
	for _, c := range columns {
		last = max(last, c.prio)
	}
	var shown []int
	for prio := 1; prio <= last; prio++ {
		with := slices.Clone(shown)
		for i, c := range columns {
			if c.prio == prio && (grouped || !c.group) {
				with = append(with, i)
			}
		}
		if used(with) <= width {
			shown = with
		}
	}
	slices.Sort(shown)
	return shown
}

// used is the width of the columns cols, one space between each.
func used(cols []int) int {
	n := 0
	for _, i := range cols {
		n += columns[i].width + 1
	}
	return n - 1
}

// sortRows orders rows by column col, descending unless asc; ties go by
// process, then endpoints, so the order is stable between refreshes.
func sortRows(rows []hostconns.Row, col int, asc bool) {
	slices.SortStableFunc(rows, func(a, b hostconns.Row) int {
		c := columns[col].cmp(&a, &b)
		if !asc {
			c = -c
		}
		return cmp.Or(c, cmp.Compare(a.PID, b.PID), a.LocalAddress.Compare(b.LocalAddress), cmp.Compare(a.LocalPort, b.LocalPort),
			a.PeerAddress.Compare(b.PeerAddress), cmp.Compare(a.PeerPort, b.PeerPort), strings.Compare(a.Direction, b.Direction))
	})
}

// rowID names a row across refreshes, so the selection stays on it.
func rowID(r *hostconns.Row) string {
	return fmt.Sprintf("%d/%d/%s/%s/%s/%s", r.PID, r.Netns, endpoint(r.LocalAddress, r.LocalPort), endpoint(r.PeerAddress, r.PeerPort), r.Transport, r.Direction)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortID is a container id as docker ps prints it: 12 characters.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// endpoint is addr:port, [addr]:port for IPv6, "*" for an unknown address
// and addr alone for port 0 (a group's ephemeral side).
func endpoint(a netip.Addr, port uint16) string {
	host := "*"
	if a.IsValid() {
		host = a.String()
		if a.Is6() && port != 0 {
			host = "[" + host + "]"
		}
	}
	if port == 0 {
		return host
	}
	return host + ":" + strconv.Itoa(int(port))
}

// peer is the peer's DNS name with its port where the name is known, else
// its address.
func peer(r *hostconns.Row) string {
	if r.PeerName != "" {
		if r.PeerPort == 0 {
			return r.PeerName
		}
		return r.PeerName + ":" + strconv.Itoa(int(r.PeerPort))
	}
	return endpoint(r.PeerAddress, r.PeerPort)
}

func dirShort(d string) string {
	switch d {
	case "incoming":
		return "in"
	case "outgoing":
		return "out"
	}
	return "?"
}

// proto is the transport and family: tcp4, udp6.
func proto(r *hostconns.Row) string {
	return r.Transport + strings.TrimPrefix(r.NetworkType, "ipv")
}

// human writes a rate in at most 6 characters with a binary-free SI suffix
// (K = 1000), as rates are read at a glance; counts are exact.
func human(v float64) string {
	switch {
	case v < 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v < 1e6:
		return trimUnit(v/1e3) + "K"
	case v < 1e9:
		return trimUnit(v/1e6) + "M"
	}
	return trimUnit(v/1e9) + "G"
}

func trimUnit(v float64) string {
	if v < 100 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// rtt is a round-trip time from microseconds: 87us, 1.25ms, 312ms, "-" when
// there is no sample.
func rtt(us uint64) string {
	switch {
	case us == 0:
		return "-"
	case us < 1000:
		return strconv.FormatUint(us, 10) + "us"
	case us < 100_000:
		return strconv.FormatFloat(float64(us)/1000, 'f', 2, 64) + "ms"
	}
	return strconv.FormatUint(us/1000, 10) + "ms"
}

// filter keeps the rows that match every kind of term given and, within a
// kind, any of its terms: "proc:nginx port:80 port:443" is nginx on port 80
// or 443.
type filter struct {
	text   string
	procs  []string       // process name (substring) or pid
	ports  []uint16       // local, peer or server port
	cidrs  []netip.Prefix // local or peer address
	protos []string       // transport, family or a layer of the stack
	words  []string       // anything shown (substring)
}

// parseFilter reads a filter: space-separated proc:, port:, cidr:, proto:
// terms and bare words.
func parseFilter(s string) (filter, error) {
	f := filter{text: strings.TrimSpace(s)}
	for _, term := range strings.Fields(s) {
		key, val, ok := strings.Cut(term, ":")
		if !ok || val == "" {
			f.words = append(f.words, strings.ToLower(term))
			continue
		}
		switch strings.ToLower(key) {
		case "proc", "process", "pid":
			f.procs = append(f.procs, strings.ToLower(val))
		case "port":
			p, err := strconv.ParseUint(val, 10, 16)
			if err != nil {
				return filter{}, fmt.Errorf("port %q: want a number from 0 to 65535", val)
			}
			f.ports = append(f.ports, uint16(p))
		case "cidr", "net", "addr":
			p, err := parsePrefix(val)
			if err != nil {
				return filter{}, err
			}
			f.cidrs = append(f.cidrs, p)
		case "proto", "protocol":
			f.protos = append(f.protos, strings.ToLower(val))
		default:
			// An IPv6 address has colons too: a bare word.
			f.words = append(f.words, strings.ToLower(term))
		}
	}
	return f, nil
}

// parsePrefix reads a CIDR, or an address as the prefix of itself.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("cidr %q: want a CIDR such as 10.0.0.0/8 or an address", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (f *filter) empty() bool { return f.text == "" }

func (f *filter) match(r *hostconns.Row) bool {
	return anyOf(f.procs, func(p string) bool {
		// A number is a pid, never part of a name (python3.11 is not pid 11).
		if _, err := strconv.ParseUint(p, 10, 32); err == nil {
			return strconv.FormatUint(uint64(r.PID), 10) == p
		}
		return strings.Contains(strings.ToLower(r.Process), p)
	}) && anyOf(f.ports, func(p uint16) bool {
		return r.LocalPort == p || r.PeerPort == p || r.ServerPort == p
	}) && anyOf(f.cidrs, func(p netip.Prefix) bool {
		return p.Contains(r.LocalAddress) || p.Contains(r.PeerAddress)
	}) && anyOf(f.protos, func(p string) bool {
		return p == r.Transport || p == proto(r) || p == r.NetworkType || slices.Contains(strings.Split(r.Stack(), "/"), p) ||
			p == r.ProtocolName || (p == "tls" && r.TLSVersion != "")
	}) && allOf(f.words, func(w string) bool {
		return strings.Contains(strings.ToLower(strings.Join([]string{
			strconv.FormatUint(uint64(r.PID), 10), r.Process, r.ContainerID, endpoint(r.LocalAddress, r.LocalPort),
			peer(r), endpoint(r.PeerAddress, r.PeerPort), r.Direction, proto(r), r.Stack()}, " ")), w)
	})
}

// apply returns the rows f keeps.
func (f *filter) apply(rows []hostconns.Row) []hostconns.Row {
	if f.empty() {
		return rows
	}
	var out []hostconns.Row
	for i := range rows {
		if f.match(&rows[i]) {
			out = append(out, rows[i])
		}
	}
	return out
}

func anyOf[T any](xs []T, ok func(T) bool) bool {
	return len(xs) == 0 || slices.ContainsFunc(xs, ok)
}

func allOf[T any](xs []T, ok func(T) bool) bool {
	for _, x := range xs {
		if !ok(x) {
			return false
		}
	}
	return true
}
