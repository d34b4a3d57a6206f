// SPDX-License-Identifier: Apache-2.0

package distrotest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// The servers that run inside the test process (gRPC, the Kafka broker, the
// MongoDB responder, the control echo) and the Go clients of the protocol
// test. Both ends of their connections are this process.

// exchangeTimeout bounds one client exchange.
const exchangeTimeout = 30 * time.Second

// listenLoopback listens on a free TCP port of 127.0.0.1, closed when the
// test ends.
func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func portOf(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }

// startGRPC serves the standard gRPC health service (no generated code of
// our own needed) over cleartext HTTP/2.
func startGRPC(t *testing.T) int {
	t.Helper()
	l := listenLoopback(t)
	s := grpc.NewServer()
	healthpb.RegisterHealthServer(s, health.NewServer())
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return portOf(l)
}

// grpcHealthCheck calls Health/Check once on a connection of its own.
func grpcHealthCheck(t *testing.T, port int) {
	t.Helper()
	conn, err := grpc.NewClient("127.0.0.1:"+strconv.Itoa(port), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), exchangeTimeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("grpc health check: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("grpc health check: status %v, want SERVING", resp.GetStatus())
	}
}

// startKafka runs franz-go's in-memory Kafka broker (one broker) with topic
// "e2e".
func startKafka(t *testing.T) int {
	t.Helper()
	port := pickPort(t, false)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(port), kfake.SeedTopics(1, "e2e"))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return port
}

// kafkaProduceConsume produces one record with a franz-go client and
// consumes it back.
func kafkaProduceConsume(t *testing.T, port int) {
	t.Helper()
	cl, err := kgo.NewClient(
		kgo.SeedBrokers("127.0.0.1:"+strconv.Itoa(port)),
		kgo.DefaultProduceTopic("e2e"),
		kgo.ConsumeTopics("e2e"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), exchangeTimeout)
	defer cancel()
	value := []byte("ebpfnet-e2e-record")
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: value}).FirstErr(); err != nil {
		t.Fatalf("kafka produce: %v", err)
	}
	for {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("kafka consume: no record within %v", exchangeTimeout)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("kafka fetch %s/%d: %v", topic, p, err) })
		found := false
		fs.EachRecord(func(r *kgo.Record) { found = found || bytes.Equal(r.Value, value) })
		if found {
			return
		}
	}
}

// amqpPublishGet declares a queue, publishes one message to it and gets it
// back, over AMQP 0-9-1.
func amqpPublishGet(t *testing.T, port int) {
	t.Helper()
	conn, err := amqp.Dial(fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port))
	if err != nil {
		t.Fatalf("amqp dial: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("amqp channel: %v", err)
	}
	q, err := ch.QueueDeclare("ebpfnet-e2e", false, true, false, false, nil)
	if err != nil {
		t.Fatalf("amqp queue declare: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), exchangeTimeout)
	defer cancel()
	body := []byte("ebpfnet-e2e-message")
	if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: body}); err != nil {
		t.Fatalf("amqp publish: %v", err)
	}
	for {
		m, ok, err := ch.Get(q.Name, true)
		if err != nil {
			t.Fatalf("amqp get: %v", err)
		}
		if ok {
			if !bytes.Equal(m.Body, body) {
				t.Fatalf("amqp get: %q, want %q", m.Body, body)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("amqp get: no message within %v", exchangeTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := ch.Close(); err != nil {
		t.Fatalf("amqp channel close: %v", err)
	}
}

// MongoDB wire protocol opcodes.
const (
	mongoOpReply = 1
	mongoOpQuery = 2004
	mongoOpMsg   = 2013
)

// startMongo runs a MongoDB wire-protocol responder: a standalone server as
// far as a driver can tell, answering the driver's handshake (OP_QUERY
// hello, the legacy first message), hello/isMaster and every other command
// (OP_MSG) with valid BSON. Debian has no MongoDB server.
func startMongo(t *testing.T) int {
	t.Helper()
	l := listenLoopback(t)
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range open {
			c.Close()
		}
	})
	go func() {
		for id := int32(1); ; id++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			go func() {
				defer c.Close()
				_ = serveMongo(c, id)
			}()
		}
	}()
	return portOf(l)
}

// serveMongo answers one connection's requests until it closes.
func serveMongo(c net.Conn, connID int32) error {
	for {
		var hdr [16]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return err
		}
		length := int32(binary.LittleEndian.Uint32(hdr[0:]))
		reqID := int32(binary.LittleEndian.Uint32(hdr[4:]))
		op := int32(binary.LittleEndian.Uint32(hdr[12:]))
		if length < 16 || length > 48<<20 {
			return fmt.Errorf("message length %d", length)
		}
		body := make([]byte, length-16)
		if _, err := io.ReadFull(c, body); err != nil {
			return err
		}
		var cmd bson.D
		var reply []byte
		switch op {
		case mongoOpQuery:
			// flags, full collection name (cstring), skip, return, query.
			i := bytes.IndexByte(body[4:], 0)
			if i < 0 || 4+i+1+8 > len(body) {
				return errors.New("short OP_QUERY")
			}
			if err := bson.Unmarshal(body[4+i+1+8:], &cmd); err != nil {
				return fmt.Errorf("OP_QUERY document: %w", err)
			}
			doc, err := bson.Marshal(mongoAnswer(cmd, connID))
			if err != nil {
				return err
			}
			reply = binary.LittleEndian.AppendUint32(nil, 0)   // responseFlags
			reply = binary.LittleEndian.AppendUint64(reply, 0) // cursorID
			reply = binary.LittleEndian.AppendUint32(reply, 0) // startingFrom
			reply = binary.LittleEndian.AppendUint32(reply, 1) // numberReturned
			reply = append(reply, doc...)
			op = mongoOpReply
		case mongoOpMsg:
			// flagBits, then sections; the command is the kind 0 one.
			for s := body[4:]; len(s) > 5; {
				kind, size := s[0], int(binary.LittleEndian.Uint32(s[1:]))
				if size < 5 || 1+size > len(s) {
					return errors.New("bad OP_MSG section")
				}
				if kind == 0 {
					if err := bson.Unmarshal(s[1:1+size], &cmd); err != nil {
						return fmt.Errorf("OP_MSG document: %w", err)
					}
				}
				s = s[1+size:]
			}
			doc, err := bson.Marshal(mongoAnswer(cmd, connID))
			if err != nil {
				return err
			}
			reply = append(binary.LittleEndian.AppendUint32(nil, 0), 0) // flagBits, section kind 0
			reply = append(reply, doc...)
		default:
			return fmt.Errorf("opcode %d", op)
		}
		out := binary.LittleEndian.AppendUint32(nil, uint32(16+len(reply)))
		out = binary.LittleEndian.AppendUint32(out, uint32(reqID)+1<<30) // our own request id
		out = binary.LittleEndian.AppendUint32(out, uint32(reqID))       // responseTo
		out = binary.LittleEndian.AppendUint32(out, uint32(op))
		if _, err := c.Write(append(out, reply...)); err != nil {
			return err
		}
	}
}

// mongoAnswer is the reply document to a command: a writable standalone
// (wire versions of MongoDB 6.0) to hello/isMaster, {ok: 1} to the rest.
// It sends no topologyVersion, so the driver polls rather than streams.
func mongoAnswer(cmd bson.D, connID int32) bson.D {
	name := ""
	if len(cmd) > 0 {
		name = cmd[0].Key
	}
	switch name {
	case "hello", "isMaster", "ismaster":
		return bson.D{
			{Key: "helloOk", Value: true},
			{Key: "isWritablePrimary", Value: true},
			{Key: "ismaster", Value: true},
			{Key: "maxBsonObjectSize", Value: int32(16 << 20)},
			{Key: "maxMessageSizeBytes", Value: int32(48000000)},
			{Key: "maxWriteBatchSize", Value: int32(100000)},
			{Key: "localTime", Value: bson.NewDateTimeFromTime(time.Now())},
			{Key: "logicalSessionTimeoutMinutes", Value: int32(30)},
			{Key: "connectionId", Value: connID},
			{Key: "minWireVersion", Value: int32(0)},
			{Key: "maxWireVersion", Value: int32(17)},
			{Key: "readOnly", Value: false},
			{Key: "ok", Value: 1.0},
		}
	default:
		return bson.D{{Key: "ok", Value: 1.0}}
	}
}

// mongoPing connects with the official driver, pings and runs a command, and
// disconnects.
func mongoPing(t *testing.T, port int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), exchangeTimeout)
	defer cancel()
	cl, err := mongo.Connect(options.Client().ApplyURI(fmt.Sprintf("mongodb://127.0.0.1:%d/?directConnection=true&serverSelectionTimeoutMS=10000", port)))
	if err != nil {
		t.Fatalf("mongo connect: %v", err)
	}
	defer func() {
		if err := cl.Disconnect(context.Background()); err != nil {
			t.Errorf("mongo disconnect: %v", err)
		}
	}()
	if err := cl.Ping(ctx, nil); err != nil {
		t.Fatalf("mongo ping: %v", err)
	}
	var res bson.M
	if err := cl.Database("e2e").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&res); err != nil {
		t.Fatalf("mongo buildInfo: %v", err)
	}
	if res["ok"] != 1.0 {
		t.Fatalf("mongo buildInfo: %v, want ok 1", res)
	}
}

// h2OverTLS13 makes one HTTP/2 request over TLS 1.3 offering exactly one
// ALPN protocol, h2. curl (7.88) always offers "h2,http/1.1" for HTTP/2, and
// since TLS 1.3 encrypts the server's choice, only a client that offers h2
// alone says in the clear that the connection is HTTP/2.
func h2OverTLS13(t *testing.T, port int) {
	t.Helper()
	d := &tls.Dialer{Config: &tls.Config{
		MinVersion:         tls.VersionTLS13,
		MaxVersion:         tls.VersionTLS13,
		NextProtos:         []string{"h2"},
		InsecureSkipVerify: true, // the test's own self-signed certificate
	}}
	ctx, cancel := context.WithTimeout(context.Background(), exchangeTimeout)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("tls dial: %v", err)
	}
	defer c.Close()
	st := c.(*tls.Conn).ConnectionState()
	if st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != "h2" {
		t.Fatalf("negotiated %s, ALPN %q; want TLS 1.3, h2", tls.VersionName(st.Version), st.NegotiatedProtocol)
	}
	cc, err := (&http2.Transport{}).NewClientConn(c)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://127.0.0.1:"+strconv.Itoa(port)+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatalf("h2 request: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(body) != "ok\n" {
		t.Fatalf("h2 response: %s %q %v", resp.Status, body, err)
	}
	_ = cc.Close()
}

// startEcho runs a TCP echo server on a port also free for UDP: the server
// of the control cases.
func startEcho(t *testing.T) int {
	t.Helper()
	port := pickPort(t, true)
	l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return port
}

// controlBytes is the control case's payload: n random bytes (a fixed seed,
// so a failure repeats), or, with text set, plain English text that names no
// protocol.
func controlBytes(n int, text bool) []byte {
	if text {
		line := []byte("the quick brown fox jumps over the lazy dog, twice a day\n")
		return bytes.Repeat(line, n/len(line)+1)[:n]
	}
	r := rand.New(rand.NewPCG(15, 15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// echoTCP sends msg and reads it back.
func echoTCP(t *testing.T, port int, msg []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp4", "127.0.0.1:"+strconv.Itoa(port), exchangeTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(exchangeTimeout))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: %v, equal %v", err, bytes.Equal(got, msg))
	}
}

// startEchoUDP runs a UDP echo server on port (free for UDP: the control
// cases share their port number across TCP and UDP).
func startEchoUDP(t *testing.T, port int) {
	t.Helper()
	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, peer, err := u.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = u.WriteToUDP(buf[:n], peer)
		}
	}()
}

// echoUDP sends msg in one datagram and reads it back.
func echoUDP(t *testing.T, port int, msg []byte) {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(exchangeTimeout))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg)+1)
	n, err := c.Read(got)
	if err != nil || !bytes.Equal(got[:n], msg) {
		t.Fatalf("udp echo: %v, equal %v", err, bytes.Equal(got[:n], msg))
	}
}
