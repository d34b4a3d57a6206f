// SPDX-License-Identifier: Apache-2.0

package classifytest

import (
	"strings"
	"testing"
)

const (
	tlsWait  = uint8(classifyStackFlagsSTACK_TLS_WAIT)
	h2Wait   = uint8(classifyStackFlagsSTACK_H2WAIT)
	httpWait = uint8(classifyStackFlagsSTACK_HTTP_WAIT)
	alpnH2   = uint8(classifyStackFlagsSTACK_ALPN_H2)
	alpn11   = uint8(classifyStackFlagsSTACK_ALPN_HTTP11)
	seenEg   = uint8(classifyStackFlagsSTACK_SEEN_EGRESS)
	seenIn   = uint8(classifyStackFlagsSTACK_SEEN_INGRESS)
)

func corpusMsg(t *testing.T, name string, i int) []byte {
	t.Helper()
	for _, c := range loadCorpus(t) {
		if c.String() == name {
			return c.msgs[i].data
		}
	}
	t.Fatalf("no corpus case %s", name)
	return nil
}

type step struct {
	data               []byte
	egress, tcp, first bool
	want               Stack
	wantShort          bool
}

func runSteps(t *testing.T, name string, steps []step) {
	t.Helper()
	h := load(t)
	var st Stack
	for i, s := range steps {
		prev := st
		var r uint32
		st, r = run(t, h, st, s.data, s.egress, s.tcp, s.first)
		checkStep(t, name, prev, st)
		if st != s.want || (r&short != 0) != s.wantShort {
			t.Fatalf("%s step %d: got %+v short %v, want %+v short %v", name, i, st, r&short != 0, s.want, s.wantShort)
		}
	}
}

// TestSequences: the multi-step decisions, state by state.
func TestSequences(t *testing.T) {
	tls13 := "tls/go-tls13-h2only"
	runSteps(t, "TLS 1.3, one ALPN offer h2, at the client", []step{
		{corpusMsg(t, tls13, 0), true, true, true, Stack{Flags: seenEg | tlsWait | alpnH2}, false},
		{corpusMsg(t, tls13, 1), false, true, true, Stack{Application: appHTTP2, Encryption: tls13Enc, Flags: seenEg | seenIn | settled}, false},
	})
	runSteps(t, "TLS 1.3, one ALPN offer h2, at the server", []step{
		{corpusMsg(t, tls13, 0), false, true, true, Stack{Flags: seenIn | tlsWait | alpnH2}, false},
		{corpusMsg(t, tls13, 1), true, true, true, Stack{Application: appHTTP2, Encryption: tls13Enc, Flags: seenEg | seenIn | settled}, false},
	})
	runSteps(t, "TLS 1.3, curl offers h2 and http/1.1", []step{
		{corpusMsg(t, "tls/curl-tls13", 0), true, true, true, Stack{Flags: seenEg | tlsWait}, false},
		{corpusMsg(t, "tls/curl-tls13", 1), false, true, true, Stack{Encryption: tls13Enc, Flags: seenEg | seenIn | settled}, false},
	})
	runSteps(t, "TLS 1.2, curl with --http1.1 offers only http/1.1, the server's ALPN says it", []step{
		{corpusMsg(t, "tls/curl-tls12-http11", 0), true, true, true, Stack{Flags: seenEg | tlsWait | alpn11}, false},
		{corpusMsg(t, "tls/curl-tls12-http11", 1), false, true, true, Stack{Application: appHTTP11, Encryption: tls12, Flags: seenEg | seenIn | settled}, false},
	})
	// A ServerHello cut before supported_versions: 1.3 would be reported as its legacy 1.2, so no version.
	sh := corpusMsg(t, tls13, 1)
	runSteps(t, "TLS ServerHello cut in its extensions", []step{
		{corpusMsg(t, tls13, 0), true, true, true, Stack{Flags: seenEg | tlsWait | alpnH2}, false},
		{sh[:5+4+2+32+1+32+2+1+2+4], false, true, true, Stack{Flags: seenEg | seenIn | settled}, true},
	})

	grpc := "http2/grpc-go"
	runSteps(t, "gRPC at the client: preface, server SETTINGS, then the request HEADERS", []step{
		{corpusMsg(t, grpc, 0), true, true, true, Stack{Application: appHTTP2, Flags: seenEg | h2Wait}, false},
		{corpusMsg(t, grpc, 1), false, true, true, Stack{Application: appHTTP2, Flags: seenEg | seenIn | h2Wait}, false},
		{corpusMsg(t, grpc, 2), false, true, false, Stack{Application: appHTTP2, Flags: seenEg | seenIn | h2Wait}, false},
		{corpusMsg(t, grpc, 3), true, true, false, Stack{Api: apiGRPC, Application: appHTTP2, Flags: seenEg | seenIn | settled}, false},
	})
	runSteps(t, "gRPC decided from the response HEADERS alone", []step{
		{corpusMsg(t, grpc, 0), false, true, true, Stack{Application: appHTTP2, Flags: seenIn | h2Wait}, false},
		{corpusMsg(t, grpc, 5), true, true, true, Stack{Api: apiGRPC, Application: appHTTP2, Flags: seenEg | seenIn | settled}, false},
	})
	runSteps(t, "h2c with curl: its GET HEADERS carry no content-type", []step{
		{corpusMsg(t, "http2/curl-h2c", 0), true, true, true, Stack{Application: appHTTP2, Flags: seenEg | settled}, false},
	})

	long := []byte("GET /" + strings.Repeat("a", 600) + " HTTP/1.0\r\n\r\n")
	runSteps(t, "HTTP request line past the packet: the response gives the version", []step{
		{long, true, true, true, Stack{Flags: seenEg | httpWait}, true},
		{[]byte("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"), false, true, true, Stack{Application: appHTTP10, Flags: seenEg | seenIn | settled}, false},
	})
	runSteps(t, "HTTP request line past the packet, a response that says nothing", []step{
		{long, true, true, true, Stack{Flags: seenEg | httpWait}, true},
		{[]byte("garbage"), false, true, true, Stack{Application: appHTTP, Flags: seenEg | seenIn | settled}, false},
	})

	pg := "postgres/psql-sslrequest"
	runSteps(t, "psql: SSLRequest decides at once", []step{
		{corpusMsg(t, pg, 0), true, true, true, Stack{Application: uint8(classifyProtoApplicationAPP_POSTGRES), Flags: seenEg | settled}, false},
	})
	runSteps(t, "nothing known in either direction settles", []step{
		{[]byte(texts[0]), true, true, true, Stack{Flags: seenEg}, false},
		{[]byte(texts[1]), false, true, true, Stack{Flags: seenEg | seenIn | settled}, false},
	})
	dns := corpusMsg(t, "dns-udp/dig-a", 0)
	runSteps(t, "UDP: the first datagram of a direction is examined once", []step{
		{[]byte(texts[2]), true, false, true, Stack{Flags: seenEg}, false},
		{dns, true, false, true, Stack{Flags: seenEg}, false},
		{dns, false, false, true, Stack{Application: uint8(classifyProtoApplicationAPP_DNS), Flags: seenEg | seenIn | settled}, false},
	})
	runSteps(t, "a packet that is not a direction's first with nothing pending does nothing", []step{
		{corpusMsg(t, "http/curl-1.1", 0), true, true, false, Stack{}, false},
	})
}

const tls13Enc = tls13

// classifierProtos: the corpus protocols each classifier alone may match.
var classifierProtos = map[Classifier][]string{
	"http_req": {"http"}, "http_resp": {"http"}, "h2_preface": {"http2"}, "tls": {"tls"}, "kafka": {"kafka"},
	"amqp_hdr": {"amqp"}, "amqp_start": {"amqp"}, "redis": {"redis"}, "postgres": {"postgres"}, "mysql": {"mysql"},
	"mongo": {"mongo"}, "dns_udp": {"dns-udp"}, "dns_tcp": {"dns-tcp"},
}

// TestClassifiersAlone: each classifier's entry point, with no dispatcher in front, matches the first
// messages of its protocol and no message of any other protocol.
func TestClassifiersAlone(t *testing.T) {
	h := load(t)
	matched := map[Classifier]int{}
	for _, c := range loadCorpus(t) {
		for i, m := range c.msgs {
			for cl, protos := range classifierProtos {
				runMu.Lock()
				st, r, err := h.RunOne(cl, Stack{}, m.data)
				runMu.Unlock()
				if err != nil {
					t.Fatal(err)
				}
				if r&uint32(classifyClResultCL_MATCH) == 0 {
					continue
				}
				ok := false
				for _, p := range protos {
					ok = ok || p == c.proto
				}
				if !ok {
					t.Errorf("%s alone matched %s message %d (stack %+v)", cl, c, i, st)
				}
				matched[cl]++
			}
		}
	}
	for cl := range classifierProtos {
		if matched[cl] == 0 {
			t.Errorf("%s matched nothing of its own corpus", cl)
		}
	}
}
