// SPDX-License-Identifier: Apache-2.0

package tracer

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/conns"
)

// These tests check the path of a classification, from the kernel's hook to
// conns.Conn.Stack, on real sockets: both ends of a connection, open (the
// poll's iterator) and closed (the close record), TCP and UDP. Which bytes
// are which protocol is the classifiers' own tests' work (classifytest), and
// real servers the distribution's (distrotest).

// endsOf returns the two ends of the exchange on port among cs, by local port
// (the server's is port).
func endsOf(cs map[conns.ID]conns.Conn, port uint16) (client, server []conns.Conn) {
	for _, c := range cs {
		switch {
		case c.Local.Port() == port && c.PID == pid():
			server = append(server, c)
		case c.Peer.Port() == port && c.PID == pid():
			client = append(client, c)
		}
	}
	return client, server
}

// checkStack fails unless every connection of the exchange has want.
func checkStack(t *testing.T, what string, ends []conns.Conn, want conns.ProtocolStack) {
	t.Helper()
	if len(ends) != 1 {
		t.Errorf("%s: %d connections, want 1: %+v", what, len(ends), ends)
		return
	}
	if got := ends[0].Stack; got != want {
		t.Errorf("%s: stack %+v, want %+v", what, got, want)
	}
}

// TestClassifiedBothEnds: an HTTP/1.1 exchange through net/http is
// classified at both ends, on the open connection and in its close record;
// random bytes leave both ends unknown.
func TestClassifiedBothEnds(t *testing.T) {
	tr := startTracer(t, Config{})
	c := newCollector(t, tr)
	http11 := conns.ProtocolStack{Application: conns.AppHTTP11}

	t.Run("http", func(t *testing.T) {
		ln := listen(t, "tcp4", "127.0.0.1:0")
		port := uint16(ln.Addr().(*net.TCPAddr).Port)
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "hello")
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() { _ = srv.Close() })
		tp := &http.Transport{}
		resp, err := (&http.Client{Transport: tp}).Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()

		// Open: both ends, through the iterator.
		waitFor(t, 5*time.Second, func() bool {
			c.poll()
			cl, sv := endsOf(c.active, port)
			return len(cl) == 1 && len(sv) == 1 && cl[0].Stack == http11 && sv[0].Stack == http11
		}, "open ends: %v", func() any { cl, sv := endsOf(c.active, port); return [][]conns.Conn{cl, sv} })

		// Closed: the close records carry it.
		tp.CloseIdleConnections()
		_ = srv.Close()
		c.waitClosed(2, 5*time.Second, func(x conns.Conn) bool {
			return x.Local.Port() == port || x.Peer.Port() == port
		})
		cl, sv := endsOf(c.closed, port)
		checkStack(t, "closed client", cl, http11)
		checkStack(t, "closed server", sv, http11)
	})

	t.Run("random", func(t *testing.T) {
		cli, srv := dialPair(t, "tcp4", "127.0.0.1:0")
		port := uint16(srv.LocalAddr().(*net.TCPAddr).Port)
		r := rand.New(rand.NewPCG(1, 2))
		req, resp := make([]byte, 300), make([]byte, 200)
		for i := range req {
			req[i] = byte(r.Uint32())
		}
		for i := range resp {
			resp[i] = byte(r.Uint32())
		}
		exchange(t, cli, srv, req, resp)
		cli.Close()
		srv.Close()
		c.waitClosed(2, 5*time.Second, func(x conns.Conn) bool {
			return x.Local.Port() == port || x.Peer.Port() == port
		})
		cl, sv := endsOf(c.closed, port)
		checkStack(t, "client", cl, conns.ProtocolStack{})
		checkStack(t, "server", sv, conns.ProtocolStack{})
	})

	t.Run("dns-udp", func(t *testing.T) {
		srv, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		port := uint16(srv.LocalAddr().(*net.UDPAddr).Port)
		cli, err := net.DialUDP("udp4", nil, srv.LocalAddr().(*net.UDPAddr))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.Close() })
		query := dnsQuery(0x1234, "example.test")
		if _, err := cli.Write(query); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 512)
		n, peer, err := srv.ReadFromUDP(buf)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.WriteToUDP(dnsAnswer(buf[:n]), peer); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Read(buf); err != nil {
			t.Fatal(err)
		}
		dns := conns.ProtocolStack{Application: conns.AppDNS}
		waitFor(t, 5*time.Second, func() bool {
			c.poll()
			cl, sv := endsOf(c.active, port)
			return len(cl) == 1 && len(sv) == 1 && cl[0].Stack == dns && sv[0].Stack == dns
		}, "open ends: %v", func() any { cl, sv := endsOf(c.active, port); return [][]conns.Conn{cl, sv} })
	})
}

// exchange writes req from cli to srv and resp back, reading each fully.
func exchange(t *testing.T, cli, srv net.Conn, req, resp []byte) {
	t.Helper()
	for _, step := range []struct {
		w, r net.Conn
		b    []byte
	}{{cli, srv, req}, {srv, cli, resp}} {
		if _, err := step.w.Write(step.b); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(step.r, make([]byte, len(step.b))); err != nil {
			t.Fatal(err)
		}
	}
}

// dnsQuery is a standard query for name's A record, as a stub resolver sends it.
func dnsQuery(id uint16, name string) []byte {
	b := binary.BigEndian.AppendUint16(nil, id)
	b = append(b, 0x01, 0x00)             // RD
	b = append(b, 0, 1, 0, 0, 0, 0, 0, 0) // QDCOUNT 1
	for _, l := range strings.Split(name, ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0, 0, 1, 0, 1) // root, A, IN
}

// dnsAnswer answers a query with one A record, 127.0.0.1.
func dnsAnswer(q []byte) []byte {
	a := append([]byte(nil), q...)
	a[2], a[3] = 0x81, 0x80 // QR, RD, RA
	a[7] = 1                // ANCOUNT 1
	a = append(a, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1)
	return a
}

// TestClassificationOffLoadsNothing: protocol_classification off loads no
// classifier program, and connections carry no stack.
func TestClassificationOffLoadsNothing(t *testing.T) {
	tr := startTracerAs(t, Config{ClassifyProtocols: false})
	for _, h := range tr.Hooks() {
		if h.Data == dataProtocol {
			t.Errorf("hook %+v attached with classification off", h)
		}
	}
	for _, name := range kernelProgramNames(t, tr) {
		if strings.HasPrefix(name, "enet_cg_skb") {
			t.Errorf("program %s is loaded with classification off", name)
		}
	}
	c := newCollector(t, tr)
	cli, srv := dialPair(t, "tcp4", "127.0.0.1:0")
	port := uint16(srv.LocalAddr().(*net.TCPAddr).Port)
	exchange(t, cli, srv, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	cli.Close()
	srv.Close()
	c.waitClosed(2, 5*time.Second, func(x conns.Conn) bool { return x.Local.Port() == port || x.Peer.Port() == port })
	cl, sv := endsOf(c.closed, port)
	checkStack(t, "client", cl, conns.ProtocolStack{})
	checkStack(t, "server", sv, conns.ProtocolStack{})
}

// kernelProgramNames lists the names the kernel gives the programs tr has
// loaded: the kernel's list, restricted to tr's programs, since the tests of
// other packages (go test ./... runs packages in parallel) may run tracers of
// their own meanwhile.
func kernelProgramNames(t *testing.T, tr *Tracer) []string {
	t.Helper()
	ours, _ := ourIDs(t, tr)
	var names []string
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return names
		}
		id = next
		if !ours[uint32(id)] {
			continue
		}
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // unloaded meanwhile
		}
		if info, err := p.Info(); err == nil {
			names = append(names, info.Name)
		}
		p.Close()
	}
}

// TestClassifyMissedStart: a connection whose streams started before the
// tracer did is left unknown, not guessed from the middle of its streams,
// though what follows looks like HTTP.
func TestClassifyMissedStart(t *testing.T) {
	cli, srv := dialPair(t, "tcp4", "127.0.0.1:0")
	port := uint16(srv.LocalAddr().(*net.TCPAddr).Port)
	exchange(t, cli, srv, []byte("hello"), []byte("world"))
	tr := startTracer(t, Config{})
	c := newCollector(t, tr)
	for range 3 {
		exchange(t, cli, srv, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), []byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	}
	want := map[netip.AddrPort][2]uint64{}
	for _, e := range []net.Conn{cli, srv} {
		ap := netip.MustParseAddrPort(e.LocalAddr().String())
		if e == cli {
			want[ap] = [2]uint64{3 * 27, 3 * 38}
		} else {
			want[ap] = [2]uint64{3 * 38, 3 * 27}
		}
	}
	// The counts say the tracer saw these bytes; the stack says it did not guess.
	c.waitCounts(5*time.Second, func(x conns.Conn) bool { return x.Local.Port() == port || x.Peer.Port() == port }, want)
	cl, sv := endsOf(c.active, port)
	checkStack(t, "client", cl, conns.ProtocolStack{})
	checkStack(t, "server", sv, conns.ProtocolStack{})
}
