// SPDX-License-Identifier: Apache-2.0

package classifytest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/privtest"
)

const (
	settled   = uint8(classifyStackFlagsSTACK_SETTLED)
	waits     = uint8(classifyStackFlagsSTACK_TLS_WAIT | classifyStackFlagsSTACK_H2WAIT | classifyStackFlagsSTACK_HTTP_WAIT)
	alpnBits  = uint8(classifyStackFlagsSTACK_ALPN_H2 | classifyStackFlagsSTACK_ALPN_HTTP11)
	short     = uint32(classifyClassifyResultCLASSIFY_SHORT)
	maxPacket = 8 // CLASSIFY_MAX_PACKETS
)

var (
	harnessOnce sync.Once
	harness     *Harness
	harnessErr  error
	// runMu serialises runs: they share the io map.
	runMu sync.Mutex
)

func load(t testing.TB) *Harness {
	t.Helper()
	privtest.Require(t)
	harnessOnce.Do(func() { harness, harnessErr = Load() })
	if errors.Is(harnessErr, ebpf.ErrNotSupported) || errors.Is(harnessErr, os.ErrPermission) {
		privtest.SkipOrFail(t, harnessErr)
	}
	if harnessErr != nil {
		t.Fatalf("%v", harnessErr)
	}
	return harness
}

func run(t testing.TB, h *Harness, st Stack, b []byte, egress, tcp, first bool) (Stack, uint32) {
	t.Helper()
	runMu.Lock()
	defer runMu.Unlock()
	out, r, err := h.Run(st, b, egress, tcp, first)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return out, r
}

// replay feeds a recorded connection to classify_packet as the hook would at one end (client or
// server): each read one packet, first set on each direction's first, at most maxPacket calls, and
// at the limit the hook's own settling. It returns the final stack and whether any run said short.
func replay(t testing.TB, h *Harness, c corpusCase, atClient bool) (Stack, bool) {
	t.Helper()
	var st Stack
	seen := map[bool]bool{}
	anyShort := false
	n := 0
	for _, m := range c.msgs {
		if st.Flags&settled != 0 {
			break
		}
		egress := m.fromClient == atClient
		first := !seen[egress] || !c.tcp()
		seen[egress] = true
		prev := st
		var r uint32
		st, r = run(t, h, st, m.data, egress, c.tcp(), first)
		checkStep(t, c.String(), prev, st)
		anyShort = anyShort || r&short != 0
		n++
		if n >= maxPacket && st.Flags&settled == 0 {
			st.Flags = (st.Flags &^ (waits | alpnBits)) | settled // the hook clears STACK_PENDING
		}
	}
	return st, anyShort
}

// checkStep asserts what holds for every call: values inside their enums, no layer changed once set.
func checkStep(t testing.TB, what string, prev, st Stack) {
	t.Helper()
	if st.Api > uint8(classifyProtoApiAPI_GRPC) || st.Application > uint8(classifyProtoApplicationAPP_HTTP11) ||
		st.Encryption > uint8(classifyProtoEncryptionENC_TLS13) {
		t.Fatalf("%s: value outside the enums: %+v", what, st)
	}
	if (prev.Api != 0 && st.Api != prev.Api) || (prev.Application != 0 && st.Application != prev.Application) ||
		(prev.Encryption != 0 && st.Encryption != prev.Encryption) {
		t.Fatalf("%s: a layer changed once set: %+v -> %+v", what, prev, st)
	}
	if prev.Flags&settled != 0 && st != prev {
		t.Fatalf("%s: a settled stack changed: %+v -> %+v", what, prev, st)
	}
	if st.Flags&settled != 0 && st.Flags&(waits|alpnBits) != 0 {
		t.Fatalf("%s: settled with flags pending: %+v", what, st)
	}
}

type layers struct{ api, app, enc uint8 }

func (l layers) String() string { return fmt.Sprintf("api=%d app=%d enc=%d", l.api, l.app, l.enc) }

func layersOf(st Stack) layers { return layers{st.Api, st.Application, st.Encryption} }

const (
	appHTTP   = uint8(classifyProtoApplicationAPP_HTTP)
	appHTTP10 = uint8(classifyProtoApplicationAPP_HTTP10)
	appHTTP11 = uint8(classifyProtoApplicationAPP_HTTP11)
	appHTTP2  = uint8(classifyProtoApplicationAPP_HTTP2)
	apiGRPC   = uint8(classifyProtoApiAPI_GRPC)
	tls12     = uint8(classifyProtoEncryptionENC_TLS12)
	tls13     = uint8(classifyProtoEncryptionENC_TLS13)
)

// want is the stack each recorded connection must end with, at both ends.
var want = map[string]layers{
	"amqp/rabbitmq":               {app: uint8(classifyProtoApplicationAPP_AMQP)},
	"dns-tcp/dig-a":               {app: uint8(classifyProtoApplicationAPP_DNS)},
	"dns-udp/dig-a":               {app: uint8(classifyProtoApplicationAPP_DNS)},
	"dns-udp/go-resolver-aaaa":    {app: uint8(classifyProtoApplicationAPP_DNS)},
	"http/curl-1.0":               {app: appHTTP10},
	"http/curl-1.1":               {app: appHTTP11},
	"http/go-post-1.1":            {app: appHTTP11},
	"http2/curl-h2c":              {app: appHTTP2},
	"http2/grpc-go":               {app: appHTTP2, api: apiGRPC},
	"kafka/franz-go-apiversions":  {app: uint8(classifyProtoApplicationAPP_KAFKA)},
	"kafka/java-metadata":         {app: uint8(classifyProtoApplicationAPP_KAFKA)},
	"kafka/java-produce-v9":       {app: uint8(classifyProtoApplicationAPP_KAFKA)},
	"mongo/go-driver-hello":       {app: uint8(classifyProtoApplicationAPP_MONGO)},
	"mongo/opquery-ismaster":      {app: uint8(classifyProtoApplicationAPP_MONGO)},
	"mysql/mariadb-10.11":         {app: uint8(classifyProtoApplicationAPP_MYSQL)},
	"mysql/mysql-8.0":             {app: uint8(classifyProtoApplicationAPP_MYSQL)},
	"postgres/cancelrequest":      {app: uint8(classifyProtoApplicationAPP_POSTGRES)},
	"postgres/gssencrequest":      {app: uint8(classifyProtoApplicationAPP_POSTGRES)},
	"postgres/psql-sslrequest":    {app: uint8(classifyProtoApplicationAPP_POSTGRES)},
	"postgres/psql-startup":       {app: uint8(classifyProtoApplicationAPP_POSTGRES)},
	"redis/benchmark-ping-inline": {app: uint8(classifyProtoApplicationAPP_REDIS)},
	"redis/benchmark-set":         {app: uint8(classifyProtoApplicationAPP_REDIS)},
	"redis/cli-command-docs":      {app: uint8(classifyProtoApplicationAPP_REDIS)},
	"redis/hello-lower":           {app: uint8(classifyProtoApplicationAPP_REDIS)},
	"tls/curl-tls12-h2":           {enc: tls12, app: appHTTP2},
	"tls/curl-tls12-http11":       {enc: tls12, app: appHTTP11},
	"tls/curl-tls13":              {enc: tls13}, // offers h2 and http/1.1: the choice is encrypted
	"tls/go-tls12-h2":             {enc: tls12, app: appHTTP2},
	"tls/go-tls12-http11":         {enc: tls12, app: appHTTP11},
	"tls/go-tls13-h2only":         {enc: tls13, app: appHTTP2},
	"tls/go-tls13-noalpn":         {enc: tls13},
}

// family is what any message of a protocol may be reported as, alone or in a sequence.
func family(proto string, l layers) bool {
	if l == (layers{}) {
		return true
	}
	switch proto {
	case "http":
		return l.api == 0 && l.enc == 0 && (l.app == appHTTP || l.app == appHTTP10 || l.app == appHTTP11)
	case "http2":
		return l.enc == 0 && l.app == appHTTP2
	case "tls":
		return l.api == 0 && l.enc != 0 && (l.app == 0 || l.app == appHTTP2 || l.app == appHTTP11)
	case "dns-udp", "dns-tcp":
		return l == layers{app: uint8(classifyProtoApplicationAPP_DNS)}
	}
	w, ok := map[string]uint8{"amqp": uint8(classifyProtoApplicationAPP_AMQP), "kafka": uint8(classifyProtoApplicationAPP_KAFKA),
		"mongo": uint8(classifyProtoApplicationAPP_MONGO), "mysql": uint8(classifyProtoApplicationAPP_MYSQL),
		"postgres": uint8(classifyProtoApplicationAPP_POSTGRES), "redis": uint8(classifyProtoApplicationAPP_REDIS)}[proto]
	return ok && l == layers{app: w}
}

// TestCorpus: every recorded connection ends with its exact stack, settled, at both ends.
func TestCorpus(t *testing.T) {
	h := load(t)
	for _, c := range loadCorpus(t) {
		w, ok := want[c.String()]
		if !ok {
			t.Errorf("%s: no expected stack", c)
			continue
		}
		for _, atClient := range []bool{true, false} {
			st, _ := replay(t, h, c, atClient)
			if got := layersOf(st); got != w || st.Flags&settled == 0 {
				t.Errorf("%s (client end %v): got %v flags %#x, want %v settled", c, atClient, got, st.Flags, w)
			}
		}
	}
}

// TestConfusion: every message of every recorded connection, alone as a direction's first message,
// in both directions and on both transports, is unknown or its own protocol, never another.
func TestConfusion(t *testing.T) {
	h := load(t)
	for _, c := range loadCorpus(t) {
		for i, m := range c.msgs {
			for _, egress := range []bool{true, false} {
				for _, tcp := range []bool{true, false} {
					st, _ := run(t, h, Stack{}, m.data, egress, tcp, true)
					checkStep(t, c.String(), Stack{}, st)
					if l := layersOf(st); !family(c.proto, l) {
						t.Errorf("%s message %d (egress %v tcp %v): reported as %v", c, i, egress, tcp, l)
					}
				}
			}
		}
	}
}

var texts = []string{
	"The quick brown fox jumps over the lazy dog. Classification must not see a protocol in prose,\n" +
		"however long the paragraph goes on, with numbers like 200 and 404 and words like GET or POST.\n",
	"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore\r\n" +
		"et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris.\r\n",
	`{"id": 42, "name": "orders", "items": [{"sku": "A-1", "qty": 3}, {"sku": "B-2", "qty": 1}], "ok": true}`,
	"id,name,price\n1,apple,0.50\n2,banana,0.25\n3,cherry,3.00\n",
	"#!/bin/sh\nset -eu\nfor f in *.log; do\n\tgzip -9 \"$f\"\ndone\necho done\n",
	"HTTP is a protocol; PRI is a word; AMQP is a queue; *this* is markdown.\n",
	"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
	"220 mail.example.com ESMTP Postfix\r\n",
	"EHLO client.example.com\r\n",
}

// TestUnknown: random bytes (seeded) and plain text stay unknown, on both transports and directions.
func TestUnknown(t *testing.T) {
	h := load(t)
	rng := rand.New(rand.NewPCG(15, 2026))
	check := func(what string, b []byte) {
		for _, egress := range []bool{true, false} {
			for _, tcp := range []bool{true, false} {
				st, _ := run(t, h, Stack{}, b, egress, tcp, true)
				checkStep(t, what, Stack{}, st)
				if l := layersOf(st); l != (layers{}) || st.Flags&waits != 0 {
					t.Errorf("%s (egress %v tcp %v, % x...): reported as %v flags %#x", what, egress, tcp, b[:min(len(b), 16)], l, st.Flags)
				}
			}
		}
	}
	n := 5000
	if testing.Short() {
		n = 500
	}
	for i := 0; i < n; i++ {
		b := make([]byte, 1+rng.IntN(600))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		check(fmt.Sprintf("random %d", i), b)
	}
	for i, s := range texts {
		check(fmt.Sprintf("text %d", i), []byte(s))
		check(fmt.Sprintf("text %d repeated", i), []byte(strings.Repeat(s, 8)))
	}
}

// TestTruncated: every prefix of every message, alone as a direction's first message, is never
// reported as another protocol, and a prefix of a message that its whole classifies, when it
// decides nothing, says CLASSIFY_SHORT.
func TestTruncated(t *testing.T) {
	h := load(t)
	for _, c := range loadCorpus(t) {
		for i, m := range c.msgs {
			for _, egress := range []bool{true, false} {
				full, _ := run(t, h, Stack{}, m.data, egress, c.tcp(), true)
				decided := layersOf(full) != (layers{}) || full.Flags&waits != 0
				for n := 1; n < len(m.data) && n <= 600; n++ {
					st, r := run(t, h, Stack{}, m.data[:n], egress, c.tcp(), true)
					checkStep(t, c.String(), Stack{}, st)
					if l := layersOf(st); !family(c.proto, l) {
						t.Errorf("%s message %d prefix %d: reported as %v", c, i, n, l)
					}
					if decided && layersOf(st) == (layers{}) && st.Flags&waits == 0 && r&short == 0 {
						t.Errorf("%s message %d prefix %d/%d (egress %v): undecided without CLASSIFY_SHORT", c, i, n, len(m.data), egress)
					}
				}
			}
		}
	}
}
