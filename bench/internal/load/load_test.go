// SPDX-License-Identifier: Apache-2.0

package load

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// TestChurnPaced: every connection due in the window is opened, used and closed, from the
// addresses it was given.
func TestChurnPaced(t *testing.T) {
	r, err := Churn(ChurnConfig{Rate: 400, Dur: time.Second, Port: 23456, FirstAddr: 3, Addrs: 2, Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	if r.Completed != 400 || r.Failed != 0 {
		t.Fatalf("completed %d, failed %d; want 400, 0", r.Completed, r.Failed)
	}
	if r.Rate < 300 || r.Rate > 401 {
		t.Errorf("rate %.0f/s for 400/s", r.Rate)
	}
}

// TestChurnWindow: a generator that cannot keep pace stops opening connections when the window
// ends, so its rate is what it reached in the window.
func TestChurnWindow(t *testing.T) {
	start := time.Now()
	r, err := Churn(ChurnConfig{Rate: 1e7, Dur: 300 * time.Millisecond, Port: 23457, FirstAddr: 1, Addrs: 1, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %s for a 300 ms window", el)
	}
	if r.Completed == 0 || r.Completed >= 3e6 || r.Failed != 0 {
		t.Errorf("completed %d, failed %d", r.Completed, r.Failed)
	}
}

// TestHoldRounds: the bytes Quiesce returns are the first byte each way plus whole rounds, and
// Hold fails rather than hold fewer connections than asked.
func TestHoldRounds(t *testing.T) {
	h, err := Hold(HoldConfig{N: 10, Port: 23458, Addrs: 2, Every: 50 * time.Millisecond, Size: 7})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	time.Sleep(300 * time.Millisecond)
	sent, err := h.Quiesce()
	if err != nil {
		t.Fatal(err)
	}
	rounds := (sent - 2*10) / (2 * 7 * 10)
	if rounds < 2 || sent != 2*10+rounds*2*7*10 {
		t.Errorf("sent %d: not 20 + whole rounds of 140 (at least 2)", sent)
	}
	if again, _ := h.Quiesce(); again != sent {
		t.Errorf("sent %d after quiescing, %d before", again, sent)
	}
}

// TestExchangesChurn: each connection carries its listener's first messages whole (the server
// reads the request to its last byte before answering, the client the response), so a tracer
// classifying it sees the protocol's real first bytes each way.
func TestExchangesChurn(t *testing.T) {
	exs, err := ExchangesNamed("http,redis,tls")
	if err != nil {
		t.Fatal(err)
	}
	r, err := Churn(ChurnConfig{Rate: 300, Dur: time.Second, Port: 23459, FirstAddr: 5, Addrs: 3, Workers: 4, Exchanges: exs})
	if err != nil {
		t.Fatal(err)
	}
	if r.Completed != 300 || r.Failed != 0 {
		t.Fatalf("completed %d, failed %d; want 300, 0", r.Completed, r.Failed)
	}
	if _, err := ExchangesNamed("http,gopher"); err == nil {
		t.Error("an unknown first message is accepted")
	}
}

// TestTLSClientHello: Go's own TLS server parses the ClientHello and reads from it what a
// classifier would: the server name, ALPN and the versions offered.
func TestTLSClientHello(t *testing.T) {
	exs, err := ExchangesNamed("tls")
	if err != nil {
		t.Fatal(err)
	}
	cli, srv := net.Pipe()
	defer cli.Close()
	got := make(chan *tls.ClientHelloInfo, 1)
	go func() {
		_ = tls.Server(srv, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			got <- h
			return nil, errors.New("stop after the hello")
		}}).Handshake()
		srv.Close()
	}()
	go func() { _, _ = cli.Write(exs[0].Request) }()
	go func() { _, _ = io.Copy(io.Discard, cli) }()
	select {
	case h := <-got:
		if h.ServerName != "localhost" || !slices.Equal(h.SupportedProtos, []string{"http/1.1"}) ||
			!slices.Equal(h.SupportedVersions, []uint16{tls.VersionTLS13, tls.VersionTLS12}) {
			t.Errorf("parsed hello: server name %q, ALPN %q, versions %x", h.ServerName, h.SupportedProtos, h.SupportedVersions)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the TLS server did not parse the ClientHello")
	}
}

// TestTLSServerHello: the ServerHello's record, handshake and extension lengths agree with its
// bytes, and it says TLS 1.3 in supported_versions, the last extension.
func TestTLSServerHello(t *testing.T) {
	b := tlsServerHello()
	if b[0] != tlsHandshake || int(b[3])<<8|int(b[4]) != len(b)-5 {
		t.Fatalf("record header % x for %d bytes", b[:5], len(b))
	}
	hs := b[5:]
	if hs[0] != hsServerHello || int(hs[1])<<16|int(hs[2])<<8|int(hs[3]) != len(hs)-4 {
		t.Fatalf("handshake header % x for %d bytes", hs[:4], len(hs))
	}
	// version 2, random 32, session id 1+32, suite 2, compression 1: then the extensions.
	ext := hs[4+2+32+1+32+2+1:]
	if int(ext[0])<<8|int(ext[1]) != len(ext)-2 || !slices.Equal(ext[2:], []byte{0x00, 0x2b, 0, 2, 0x03, 0x04}) {
		t.Errorf("extensions % x", ext)
	}
}
