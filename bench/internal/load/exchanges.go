// SPDX-License-Identifier: Apache-2.0

package load

import (
	"fmt"
	"slices"
	"strings"
)

// Exchange is a connection's first message each way: the client sends Request, the server reads
// it whole and answers Response, which the client reads whole.
type Exchange struct {
	Name              string
	Request, Response []byte
}

// Exchanges are first messages of protocols the tracer classifies, as their clients and servers
// send them: what makes a new connection run the classifiers' whole path (bpf/protocols/), where
// zero bytes leave it at the first check. Each is a complete message of its protocol.
var Exchanges = []Exchange{
	{Name: "http",
		Request:  []byte("GET /bench HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: ebpfnet-bench\r\nAccept: */*\r\n\r\n"),
		Response: []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok")},
	{Name: "redis", Request: []byte("*1\r\n$4\r\nPING\r\n"), Response: []byte("+PONG\r\n")},
	{Name: "tls", Request: tlsClientHello(), Response: tlsServerHello()},
}

// ExchangesNamed returns the Exchanges of the comma-separated names, in that order.
func ExchangesNamed(names string) ([]Exchange, error) {
	var out []Exchange
	for _, n := range strings.Split(names, ",") {
		i := slices.IndexFunc(Exchanges, func(e Exchange) bool { return e.Name == n })
		if i < 0 {
			var known []string
			for _, e := range Exchanges {
				known = append(known, e.Name)
			}
			return nil, fmt.Errorf("first message %q: want one of %s", n, strings.Join(known, ", "))
		}
		out = append(out, Exchanges[i])
	}
	return out, nil
}

// TLS record and handshake framing (RFC 8446 section 5.1 and 4), big-endian lengths.
const (
	tlsHandshake  = 0x16
	hsClientHello = 1
	hsServerHello = 2
)

func u16(v int) []byte { return []byte{byte(v >> 8), byte(v)} }

// vec16 is a vector with a 2-byte length.
func vec16(b ...[]byte) []byte {
	body := slices.Concat(b...)
	return append(u16(len(body)), body...)
}

// tlsRecord wraps a handshake message of type typ in a handshake record of legacy version ver.
func tlsRecord(ver int, typ byte, body []byte) []byte {
	hs := append([]byte{typ, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	return slices.Concat([]byte{tlsHandshake}, u16(ver), u16(len(hs)), hs)
}

func tlsExt(typ int, data []byte) []byte { return slices.Concat(u16(typ), vec16(data)) }

// random32 is a fixed "random": the bytes do not matter, their place does.
func random32(seed byte) []byte {
	b := make([]byte, 32)
	for i := range b {
		b[i] = seed + byte(i)
	}
	return b
}

// tlsClientHello is a TLS 1.3 ClientHello as a browser sends it, cut to what classifiers read:
// legacy version 1.2, a session id, TLS 1.3 and 1.2 suites, SNI, ALPN http/1.1 and
// supported_versions 1.3, 1.2.
func tlsClientHello() []byte {
	sni := vec16([]byte{0}, vec16([]byte("localhost")))
	alpn := vec16([]byte{8}, []byte("http/1.1"))
	versions := []byte{4, 0x03, 0x04, 0x03, 0x03}
	body := slices.Concat(u16(0x0303), random32(1), []byte{32}, random32(100),
		vec16(u16(0x1301), u16(0x1302), u16(0xc02f)), []byte{1, 0},
		vec16(tlsExt(0x0000, sni), tlsExt(0x0010, alpn), tlsExt(0x002b, versions)))
	return tlsRecord(0x0301, hsClientHello, body)
}

// tlsServerHello is the answering ServerHello of TLS 1.3: legacy version 1.2, the session id
// echoed, TLS_AES_128_GCM_SHA256, and supported_versions 1.3 (where 1.3 is said).
func tlsServerHello() []byte {
	body := slices.Concat(u16(0x0303), random32(50), []byte{32}, random32(100), u16(0x1301), []byte{0},
		vec16(tlsExt(0x002b, u16(0x0304))))
	return tlsRecord(0x0303, hsServerHello, body)
}
