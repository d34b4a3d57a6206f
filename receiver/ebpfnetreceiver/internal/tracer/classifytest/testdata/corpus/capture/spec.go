// SPDX-License-Identifier: Apache-2.0

package main

import (
	"encoding/binary"
	"log"
	"os"
	"path/filepath"
)

// The messages of protocols whose clients and servers are not on this machine, built from their
// specifications byte by byte as their usual clients and servers send them (see ../README.md).

func be16(v int) []byte { return binary.BigEndian.AppendUint16(nil, uint16(v)) }
func be32(v int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(v)) }
func le32(v int) []byte { return binary.LittleEndian.AppendUint32(nil, uint32(v)) }

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func write(dir string, msgs ...[]byte) {
	// each message: its first byte says the direction ('c' or 's'), the rest is the payload
	for i, m := range msgs {
		p := filepath.Join(corpus, dir, string(rune('0'+i/10))+string(rune('0'+i%10))+"-"+string(m[0])+".bin")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(p, m[1:], 0o644); err != nil {
			log.Fatal(err)
		}
	}
}

func c(b ...[]byte) []byte { return cat(append([][]byte{[]byte("c")}, b...)...) }
func s(b ...[]byte) []byte { return cat(append([][]byte{[]byte("s")}, b...)...) }

// kafka: a request is int32 size then the header and body.
func kafka(key, ver, corr int, clientID string, flexible bool, body []byte) []byte {
	h := cat(be16(key), be16(ver), be32(corr), be16(len(clientID)), []byte(clientID))
	if flexible {
		h = append(h, 0) // header tagged fields
	}
	m := cat(h, body)
	return cat(be32(len(m)), m)
}

// bson builds a document from already encoded elements.
func bson(elems ...[]byte) []byte {
	b := cat(elems...)
	return cat(le32(len(b)+5), b, []byte{0})
}
func bInt32(k string, v int) []byte { return cat([]byte{0x10}, []byte(k), []byte{0}, le32(v)) }
func bBool(k string, v bool) []byte {
	x := byte(0)
	if v {
		x = 1
	}
	return cat([]byte{0x08}, []byte(k), []byte{0, x})
}
func bDouble1(k string) []byte {
	return cat([]byte{0x01}, []byte(k), []byte{0}, []byte{0, 0, 0, 0, 0, 0, 0xf0, 0x3f})
}
func bStr(k, v string) []byte {
	return cat([]byte{0x02}, []byte(k), []byte{0}, le32(len(v)+1), []byte(v), []byte{0})
}
func bDoc(k string, d []byte) []byte { return cat([]byte{0x03}, []byte(k), []byte{0}, d) }
func mongoMsg(id, resp int, doc []byte) []byte {
	body := cat(le32(0), []byte{0}, doc)
	return cat(le32(16+len(body)), le32(id), le32(resp), le32(2013), body)
}

func dnsName(labels ...string) []byte {
	var b []byte
	for _, l := range labels {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func writeSpec() {
	// Kafka: franz-go's first request, ApiVersions v4 (flexible: header v2, compact strings), and
	// its response (header v0); a Java producer's Metadata v12 and a Produce v9.
	write("kafka/franz-go-apiversions",
		c(kafka(18, 4, 0, "kgo", true, cat([]byte{4}, []byte("kgo"), []byte{8}, []byte("unknown"), []byte{0}))),
		s(cat(be32(4+2+1+3*7+4+1), be32(0), be16(0), []byte{4}, be16(0), be16(0), be16(11), []byte{0}, be16(1), be16(0), be16(17), []byte{0}, be16(18), be16(0), be16(4), []byte{0}, be32(0), []byte{0})))
	write("kafka/java-metadata",
		c(kafka(3, 12, 1, "producer-1", true, cat([]byte{2}, make([]byte, 16), []byte{6}, []byte("orders"), []byte{0}, []byte{1}, []byte{0}, []byte{0}))))
	write("kafka/java-produce-v9",
		c(kafka(0, 9, 7, "producer-1", true, cat([]byte{0}, be16(1), be32(30000), []byte{2, 7}, []byte("orders"), []byte{2}, be32(0), []byte{0, 0}, []byte{0}))))

	// AMQP 0-9-1: the client's protocol header, the server's Connection.Start.
	props := cat([]byte{7}, []byte("product"), []byte("S"), be32(8), []byte("RabbitMQ"), []byte{7}, []byte("version"), []byte("S"), be32(6), []byte("3.12.1"))
	start := cat(be16(10), be16(10), []byte{0, 9}, be32(len(props)), props, be32(14), []byte("PLAIN AMQPLAIN"), be32(5), []byte("en_US"))
	write("amqp/rabbitmq", c([]byte("AMQP\x00\x00\x09\x01")), s(cat([]byte{1}, be16(0), be32(len(start)), start, []byte{0xce})))

	// Redis: redis-cli's first command (COMMAND DOCS), redis-benchmark's PING_INLINE and SET, a HELLO.
	write("redis/cli-command-docs", c([]byte("*2\r\n$7\r\nCOMMAND\r\n$4\r\nDOCS\r\n")), s([]byte("*0\r\n")))
	write("redis/benchmark-ping-inline", c([]byte("PING\r\n")), s([]byte("+PONG\r\n")))
	write("redis/benchmark-set", c([]byte("*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n")), s([]byte("+OK\r\n")))
	write("redis/hello-lower", c([]byte("*2\r\n$5\r\nhello\r\n$1\r\n3\r\n")))

	// PostgreSQL GSSENCRequest: libpq sends it only with a Kerberos credential cache.
	write("postgres/gssencrequest", c(be32(8), be32(80877104)), s([]byte("N")),
		c(cat(be32(8+5+9+9+9+1), be32(196608), []byte("user\x00postgres\x00database\x00postgres\x00\x00"))[:8+5+9+9+9+1]))
	write("postgres/cancelrequest", c(be32(16), be32(80877102), be32(4242), be32(0x11223344)))

	// MySQL / MariaDB: the server greeting (Initial Handshake v10), then the client's response.
	greeting := func(version string, capsLo, capsHi int, plugin string) []byte {
		b := cat([]byte{10}, []byte(version), []byte{0}, le32(17), []byte("abcdefgh"), []byte{0},
			binary.LittleEndian.AppendUint16(nil, uint16(capsLo)), []byte{0x2d}, binary.LittleEndian.AppendUint16(nil, 2),
			binary.LittleEndian.AppendUint16(nil, uint16(capsHi)), []byte{21}, make([]byte, 10), []byte("ijklmnopqrst"), []byte{0},
			[]byte(plugin), []byte{0})
		return cat([]byte{byte(len(b)), byte(len(b) >> 8), byte(len(b) >> 16), 0}, b)
	}
	resp := func() []byte {
		b := cat(le32(0x000fa685), le32(16<<20), []byte{0x2d}, make([]byte, 23), []byte("root\x00"), []byte{0}, []byte("mysql_native_password\x00"))
		return cat([]byte{byte(len(b)), 0, 0, 1}, b)
	}
	write("mysql/mariadb-10.11", s(greeting("5.5.5-10.11.6-MariaDB-0+deb12u1", 0xf7fe, 0x81ff, "mysql_native_password")), c(resp()))
	write("mysql/mysql-8.0", s(greeting("8.0.36", 0xffff, 0xdfff, "caching_sha2_password")), c(resp()))

	// MongoDB: the Go driver's OP_MSG hello and its reply; a legacy OP_QUERY isMaster and OP_REPLY.
	hello := bson(bInt32("hello", 1), bBool("helloOk", true), bDoc("client", bson(bDoc("driver", bson(bStr("name", "mongo-go-driver"), bStr("version", "2.2.0"))), bDoc("os", bson(bStr("type", "linux"))))), bStr("$db", "admin"))
	reply := bson(bBool("isWritablePrimary", true), bInt32("maxWireVersion", 21), bDouble1("ok"))
	write("mongo/go-driver-hello", c(mongoMsg(1, 0, hello)), s(mongoMsg(2, 1, reply)))
	q := cat(le32(0), []byte("admin.$cmd\x00"), le32(0), le32(-1), bson(bInt32("isMaster", 1)))
	r := cat(le32(8), make([]byte, 8), le32(0), le32(1), bson(bBool("ismaster", true), bDouble1("ok")))
	write("mongo/opquery-ismaster", c(cat(le32(16+len(q)), le32(7), le32(0), le32(2004), q)), s(cat(le32(16+len(r)), le32(8), le32(7), le32(1), r)))

	// DNS: dig's query (RD and AD, EDNS with a cookie) and the answer, over UDP and over TCP.
	opt := cat([]byte{0}, be16(41), be16(1232), be32(0), be16(12), be16(10), be16(8), []byte("cookie12"))
	query := cat(be16(0x5c3a), be16(0x0120), be16(1), be16(0), be16(0), be16(1), dnsName("www", "example", "com"), be16(1), be16(1), opt)
	answer := cat(be16(0x5c3a), be16(0x8180), be16(1), be16(1), be16(0), be16(1), dnsName("www", "example", "com"), be16(1), be16(1),
		be16(0xc00c), be16(1), be16(1), be32(300), be16(4), []byte{192, 0, 2, 1}, opt)
	write("dns-udp/dig-a", c(query), s(answer))
	write("dns-tcp/dig-a", c(be16(len(query)), query), s(be16(len(answer)), answer))
	aaaa := cat(be16(0x0001), be16(0x0100), be16(1), be16(0), be16(0), be16(1), dnsName("localhost"), be16(28), be16(1), []byte{0}, be16(41), be16(1232), be32(0), be16(0))
	write("dns-udp/go-resolver-aaaa", c(aaaa))
}
