// SPDX-License-Identifier: Apache-2.0

package main

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/hostconns"
)

func TestFilter(t *testing.T) {
	web := hostconns.Row{PID: 10, Process: "nginx", LocalAddress: netip.MustParseAddr("10.1.2.3"), LocalPort: 443, ServerPort: 443,
		PeerAddress: netip.MustParseAddr("192.168.1.9"), PeerPort: 50000, Direction: "incoming", Transport: "tcp", NetworkType: "ipv4",
		TLSVersion: "1.3", ProtocolName: "http", ProtocolVersion: "2"}
	dns := hostconns.Row{PID: 20, Process: "systemd-resolved1", LocalAddress: netip.MustParseAddr("fd00::1"), LocalPort: 40000, ServerPort: 53,
		PeerAddress: netip.MustParseAddr("fd00::53"), PeerPort: 53, Direction: "outgoing", Transport: "udp", NetworkType: "ipv6", ProtocolName: "dns"}
	tests := map[string][]uint32{
		"":                          {10, 20},
		"proc:NGINX":                {10},
		"proc:20":                   {20},
		"proc:1":                    nil, // a pid, not the 1 in the name systemd-resolved1
		"port:53":                   {20},
		"port:443 port:53":          {10, 20},
		"proc:nginx port:53":        nil,
		"cidr:10.0.0.0/8":           {10},
		"cidr:192.168.1.9":          {10},
		"cidr:fd00::/64":            {20},
		"proto:udp":                 {20},
		"proto:tls":                 {10},
		"proto:http2":               {10},
		"proto:http":                {10},
		"proto:ipv6":                {20},
		"proto:tcp4":                {10},
		"resolved":                  {20},
		"fd00::53":                  {20},
		"proc:nginx proto:http2 in": {10},
	}
	for text, want := range tests {
		f, err := parseFilter(text)
		if err != nil {
			t.Fatalf("%q: %v", text, err)
		}
		var got []uint32
		for _, r := range f.apply([]hostconns.Row{web, dns}) {
			got = append(got, r.PID)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%q kept %v, want %v", text, got, want)
		}
	}
	for _, bad := range []string{"port:http", "port:70000", "cidr:10.0.0.0/33", "cidr:host"} {
		if _, err := parseFilter(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestLayout: at 80 columns the identity, traffic and rate columns fit in
// exactly 80; wider screens add columns by priority and give the room left
// to the flexible ones.
func TestLayout(t *testing.T) {
	titles := func(width int, grouped bool) (out []string, total int) {
		cols := layout(width, grouped)
		for _, c := range cols {
			out = append(out, columns[c.col].title)
			total += c.width + 1
		}
		return out, total - 1
	}
	got, w := titles(80, false)
	if want := []string{"PID", "PROCESS", "PEER", "DIR", "NET", "TX", "RX", "TX/s", "RX/s"}; !slices.Equal(got, want) || w != 80 {
		t.Errorf("80 columns: %v (%d wide), want %v", got, w, want)
	}
	got, w = titles(120, true)
	if want := []string{"PID", "PROCESS", "PEER", "SPORT", "DIR", "NET", "STACK", "CONNS", "TX", "RX", "TX/s", "RX/s", "RTT", "RETR"}; !slices.Equal(got, want) || w != 120 {
		t.Errorf("120 columns, aggregated: %v (%d wide), want %v", got, w, want)
	}
	got, w = titles(120, false)
	if want := []string{"PID", "PROCESS", "CONTAINER", "PEER", "DIR", "NET", "STACK", "TX", "RX", "TX/s", "RX/s", "RTT", "RETR"}; !slices.Equal(got, want) || w != 120 {
		t.Errorf("120 columns: %v (%d wide), want %v", got, w, want)
	}
	if got, _ := titles(400, false); len(got) != len(columns)-2 {
		t.Errorf("400 columns: %v, want all but CONNS and SPORT", got)
	}
}

func TestFormats(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 999: "999", 1000: "1.0K", 12345: "12.3K", 123456: "123K", 9.9e6: "9.9M", 2.5e9: "2.5G"} {
		if got := human(v); got != want {
			t.Errorf("human(%v) = %q, want %q", v, got, want)
		}
	}
	for us, want := range map[uint64]string{0: "-", 87: "87us", 1250: "1.25ms", 312000: "312ms"} {
		if got := rtt(us); got != want {
			t.Errorf("rtt(%d) = %q, want %q", us, got, want)
		}
	}
	for _, c := range []struct {
		a    string
		port uint16
		want string
	}{{"10.0.0.1", 80, "10.0.0.1:80"}, {"fd00::1", 443, "[fd00::1]:443"}, {"fd00::1", 0, "fd00::1"}, {"", 53, "*:53"}} {
		var a netip.Addr
		if c.a != "" {
			a = netip.MustParseAddr(c.a)
		}
		if got := endpoint(a, c.port); got != c.want {
			t.Errorf("endpoint(%s, %d) = %q, want %q", c.a, c.port, got, c.want)
		}
	}
	big := hostconns.Row{SentBytes: 12345678901}
	if got := cellText(&columns[columnIndex("TX")], &big, 9); got != "    12.3G" {
		t.Errorf("a TX too wide for its column: %q", got)
	}
}
