// SPDX-License-Identifier: Apache-2.0

// Command capture records the first messages of real clients and servers into the corpus: each
// exchange runs through a loopback proxy that writes every read of each direction, in order, as
// NN-c.bin (client to server) or NN-s.bin (server to client) under <corpus>/<protocol>/<case>/.
// It needs the tools it drives (curl, openssl, psql and a PostgreSQL server) and runs from the
// module root: go run ./receiver/ebpfnetreceiver/internal/tracer/classifytest/testdata/corpus/capture DIR
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

var corpus string

// maxReads is how many reads of a connection are kept: the first messages are all we need.
const maxReads = 6

// proxy listens on loopback, forwards each connection to upstream and records it as case dir.
func proxy(dir, upstream string) (addr string, done func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	var wg sync.WaitGroup
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", upstream)
		if err != nil {
			log.Fatal(err)
		}
		var mu sync.Mutex
		n := 0
		rec := func(dirc string, b []byte) {
			mu.Lock()
			defer mu.Unlock()
			if n >= maxReads {
				return
			}
			p := filepath.Join(corpus, dir, fmt.Sprintf("%02d-%s.bin", n, dirc))
			n++
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				log.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				log.Fatal(err)
			}
		}
		pipe := func(dst, src net.Conn, dirc string) {
			defer wg.Done()
			buf := make([]byte, 65536)
			for {
				k, err := src.Read(buf)
				if k > 0 {
					rec(dirc, append([]byte(nil), buf[:k]...))
					if _, err := dst.Write(buf[:k]); err != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
		}
		wg.Add(2)
		go pipe(u, c, "c")
		go pipe(c, u, "s")
	}()
	return ln.Addr().String(), func() {
		wg.Wait()
		ln.Close()
	}
}

func run(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Stdout = io.Discard
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		log.Printf("%s %v: %v", name, args, err)
	}
}

func httpServer(h2c bool, tlsCfg *tls.Config) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "hello")
	})}
	if h2c {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	if tlsCfg != nil {
		srv.TLSConfig = tlsCfg
		go srv.ServeTLS(ln, "", "")
	} else {
		go srv.Serve(ln)
	}
	return ln.Addr().String()
}

func selfSigned() tls.Certificate {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	t := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, t, t, &k.PublicKey, k)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}
}

func main() {
	corpus = os.Args[1]
	if len(os.Args) > 2 && os.Args[2] == "-spec" {
		writeSpec()
		return
	}
	plain := httpServer(false, nil)

	// HTTP/1.1 and HTTP/1.0 with curl, HTTP/1.1 with Go's client.
	a, done := proxy("http/curl-1.1", plain)
	run("curl", "-s", "--http1.1", "http://"+a+"/index.html")
	done()
	a, done = proxy("http/curl-1.0", plain)
	run("curl", "-s", "--http1.0", "http://"+a+"/")
	done()
	a, done = proxy("http/go-post-1.1", plain)
	if r, err := http.Post("http://"+a+"/api/v1/items?x=1", "application/json", nil); err == nil {
		r.Body.Close()
	}
	http.DefaultClient.CloseIdleConnections()
	done()

	// h2c with prior knowledge: curl and Go's server.
	h2 := httpServer(true, nil)
	a, done = proxy("http2/curl-h2c", h2)
	run("curl", "-s", "--http2-prior-knowledge", "http://"+a+"/")
	done()

	// gRPC: grpc-go client and server, the health service.
	gl, _ := net.Listen("tcp", "127.0.0.1:0")
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(gl)
	a, done = proxy("http2/grpc-go", gl.Addr().String())
	cc, err := grpc.NewClient(a, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		log.Print(err)
	}
	cancel()
	cc.Close()
	done()
	gs.Stop()

	// TLS: Go's server (TLS 1.3 by default, X25519MLKEM768 offered by Go's client), curl, openssl.
	cert := selfSigned()
	for _, c := range []struct {
		name  string
		max   uint16
		alpn  []string
		srvNP []string
	}{
		{"go-tls13-h2only", tls.VersionTLS13, []string{"h2"}, []string{"h2", "http/1.1"}},
		{"go-tls13-noalpn", tls.VersionTLS13, nil, []string{"h2", "http/1.1"}},
		{"go-tls12-h2", tls.VersionTLS12, []string{"h2", "http/1.1"}, []string{"h2", "http/1.1"}},
		{"go-tls12-http11", tls.VersionTLS12, []string{"http/1.1"}, []string{"http/1.1"}},
	} {
		ln, _ := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: c.srvNP})
		go func() {
			s, err := ln.Accept()
			if err == nil {
				_ = s.(*tls.Conn).Handshake()
				s.Close()
			}
		}()
		a, done = proxy("tls/"+c.name, ln.Addr().String())
		tc, err := tls.Dial("tcp", a, &tls.Config{InsecureSkipVerify: true, MaxVersion: c.max, NextProtos: c.alpn})
		if err == nil {
			tc.Close()
		} else {
			log.Print(err)
		}
		done()
		ln.Close()
	}
	tlsSrv := httpServer(false, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
	for _, c := range [][]string{{"curl-tls13", "--tlsv1.3"}, {"curl-tls12-h2", "--tlsv1.2", "--tls-max", "1.2"}, {"curl-tls12-http11", "--tlsv1.2", "--tls-max", "1.2", "--http1.1"}} {
		a, done = proxy("tls/"+c[0], tlsSrv)
		run("curl", append([]string{"-sk", "https://" + a + "/"}, c[1:]...)...)
		done()
	}

	// PostgreSQL: psql against a server at $CAPTURE_PG (host:port, trust auth), without TLS, with
	// an SSLRequest (the server has no TLS: it answers N) and with a GSSENCRequest.
	if pg := os.Getenv("CAPTURE_PG"); pg != "" {
		host, port, _ := net.SplitHostPort(pg)
		_ = host
		for _, c := range [][2]string{{"psql-startup", "sslmode=disable gssencmode=disable"}, {"psql-sslrequest", "sslmode=prefer gssencmode=disable"}, {"psql-gssencrequest", "sslmode=disable gssencmode=require"}} {
			a, done := proxy("postgres/"+c[0], pg)
			_, pp, _ := net.SplitHostPort(a)
			_ = port
			run("psql", "host=127.0.0.1 port="+pp+" user=postgres dbname=postgres connect_timeout=3 "+c[1], "-c", "select 1")
			done()
		}
	}
	log.Print("done")
}
