// SPDX-License-Identifier: Apache-2.0

package distrotest

import (
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/privtest"
)

// The protocol attributes, all or none of which a connection's metrics
// carry (metadata.yaml).
const (
	attrProtoName    = "network.protocol.name"
	attrProtoVersion = "network.protocol.version"
	attrRPCSystem    = "rpc.system"
	attrTLSVersion   = "tls.protocol.version"
)

var protocolAttrs = []string{attrProtoName, attrProtoVersion, attrRPCSystem, attrTLSVersion}

// The tools the protocol test runs, by the Debian package that has them
// (scripts/ci/deps.sh installs them).
var protocolTools = map[string]string{
	"nginx":              "nginx-light",
	"curl":               "curl",
	"redis-server":       "redis-server",
	"redis-cli":          "redis-tools",
	"redis-benchmark":    "redis-tools",
	"psql":               "postgresql-client",
	"mariadb-install-db": "mariadb-server",
	"mariadbd":           "mariadb-server",
	"mariadb":            "mariadb-client",
	"epmd":               "erlang-base (rabbitmq-server)",
	rabbitmqServer:       "rabbitmq-server",
	"dnsmasq":            "dnsmasq-base",
	"dig":                "bind9-dnsutils",
	"setpriv":            "util-linux",
}

// protoCase is one kind of exchange: the client that makes it, the port and
// transport its server listens on, and the protocol attributes both ends of
// each of its connections must carry, exactly (a key absent from want must be
// absent from the metrics).
type protoCase struct {
	name      string
	transport string
	port      int
	want      map[string]string
	run       func(t *testing.T)
}

// TestProtocolsClassified runs real servers and clients of every protocol
// the classifiers know, and a control exchange of random bytes, each on its
// own loopback port, while the distribution runs; then it finds both ends of
// every connection of each exchange in the OTLP output (by the server's
// port: the client end's network.peer.port, the server end's
// network.local.port) and checks each carries exactly the protocol
// attributes of its case. The servers start, and their readiness is
// checked without a connection, before the collector starts, so every
// connection the collector sees is one of the exchanges.
func TestProtocolsClassified(t *testing.T) {
	privtest.Require(t)
	var missing []string
	for tool, pkg := range protocolTools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, fmt.Sprintf("%s (Debian package %s)", tool, pkg))
		}
	}
	if _, err := postgresBin(); err != nil {
		missing = append(missing, err.Error())
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		privtest.SkipOrFail(t, fmt.Errorf("the protocol test's servers and clients are not installed (scripts/ci/deps.sh installs them): %s", strings.Join(missing, ", ")))
	}
	start := time.Now()
	bin, _ := binaries(t)

	var cases []protoCase
	// Registered first, so it runs last, after every server's cleanup: by
	// then nothing listens on their ports.
	t.Cleanup(func() {
		for _, c := range cases {
			if l, err := listening(c.transport, c.port); err != nil || l {
				t.Errorf("%s: %s port %d still bound after the servers stopped (%v)", c.name, c.transport, c.port, err)
			}
		}
	})

	// Servers. RabbitMQ takes longest: it starts first and is waited for last.
	ready := func(what string) { t.Logf("%s ready at %v", what, time.Since(start).Round(time.Millisecond)) }
	rabbit := startRabbitMQ(t)
	web := map[string]nginxListener{
		"http11":          {port: pickPort(t, false)},
		"http10":          {port: pickPort(t, false)},
		"h2c":             {port: pickPort(t, false), http2: true},
		"tls12-h2":        {port: pickPort(t, false), tls: "TLSv1.2", http2: true},
		"tls12-http11":    {port: pickPort(t, false), tls: "TLSv1.2", http2: true},
		"tls13-h2-curl":   {port: pickPort(t, false), tls: "TLSv1.3", http2: true},
		"tls13-http11":    {port: pickPort(t, false), tls: "TLSv1.3", http2: true},
		"tls13-h2-single": {port: pickPort(t, false), tls: "TLSv1.3", http2: true},
	}
	startNginx(t, slices.Collect(maps.Values(web)))
	ready("nginx")
	redisPort := startRedis(t)
	ready("redis-server")
	pgPort := startPostgres(t)
	ready("postgres")
	myPort := startMariaDB(t)
	ready("mariadbd")
	dnsPort := startDnsmasq(t)
	ready("dnsmasq")
	grpcPort := startGRPC(t)
	kafkaPort := startKafka(t)
	mongoPort := startMongo(t)
	echoPort := startEcho(t)
	startEchoUDP(t, echoPort)
	rabbit.wait(t)
	ready("rabbitmq-server")

	url := func(c, scheme string) string {
		return fmt.Sprintf("%s://127.0.0.1:%d/", scheme, web[c].port)
	}
	curlWants := func(version string) func(t *testing.T, args ...string) {
		return func(t *testing.T, args ...string) {
			t.Helper()
			out := runTool(t, append([]string{"curl", "-sS", "--fail", "--max-time", "30", "-k", "-w", " %{http_version}"}, args...)...)
			if out != "ok\n "+version {
				t.Fatalf("curl %v: %q, want body ok and HTTP version %s", args, out, version)
			}
		}
	}
	http := func(version string) map[string]string {
		return map[string]string{attrProtoName: "http", attrProtoVersion: version}
	}
	withTLS := func(m map[string]string, version string) map[string]string {
		m = maps.Clone(m)
		m[attrTLSVersion] = version
		return m
	}
	psql := func(t *testing.T, sslmode string) {
		out := runTool(t, "psql", fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=%s", pgPort, sslmode), "-Atc", "select 40+2")
		if strings.TrimSpace(out) != "42" {
			t.Fatalf("psql sslmode=%s: %q, want 42", sslmode, out)
		}
	}
	dig := func(t *testing.T, extra ...string) {
		out := runTool(t, append([]string{"dig", "@127.0.0.1", "-p", strconv.Itoa(dnsPort), "example.test", "A", "+short", "+tries=1", "+time=5"}, extra...)...)
		if strings.TrimSpace(out) != "127.0.0.1" {
			t.Fatalf("dig %v: %q, want 127.0.0.1", extra, out)
		}
	}

	cases = []protoCase{
		{"http/1.1", "tcp", web["http11"].port, http("1.1"), func(t *testing.T) {
			curlWants("1.1")(t, "--http1.1", url("http11", "http"))
		}},
		{"http/1.0", "tcp", web["http10"].port, http("1.0"), func(t *testing.T) {
			// nginx answers a 1.0 request with a 1.1 status line; the
			// request line says 1.0.
			curlWants("1.1")(t, "--http1.0", url("http10", "http"))
		}},
		{"h2c", "tcp", web["h2c"].port, http("2"), func(t *testing.T) {
			curlWants("2")(t, "--http2-prior-knowledge", url("h2c", "http"))
		}},
		{"h2 over tls 1.2", "tcp", web["tls12-h2"].port, withTLS(http("2"), "1.2"), func(t *testing.T) {
			curlWants("2")(t, "--http2", "--tls-max", "1.2", url("tls12-h2", "https"))
		}},
		{"http/1.1 over tls 1.2", "tcp", web["tls12-http11"].port, withTLS(http("1.1"), "1.2"), func(t *testing.T) {
			curlWants("1.1")(t, "--http1.1", "--tls-max", "1.2", url("tls12-http11", "https"))
		}},
		// TLS 1.3 encrypts the server's ALPN choice, and curl offers
		// "h2,http/1.1": only the TLS version is in the clear.
		{"tls 1.3, alpn h2,http/1.1 (curl)", "tcp", web["tls13-h2-curl"].port, map[string]string{attrTLSVersion: "1.3"}, func(t *testing.T) {
			curlWants("2")(t, "--http2", "--tlsv1.3", url("tls13-h2-curl", "https"))
		}},
		// curl --http1.1 offers http/1.1 alone: the ClientHello names it.
		{"http/1.1 over tls 1.3", "tcp", web["tls13-http11"].port, withTLS(http("1.1"), "1.3"), func(t *testing.T) {
			curlWants("1.1")(t, "--http1.1", "--tlsv1.3", url("tls13-http11", "https"))
		}},
		{"h2 over tls 1.3, alpn h2 alone (Go)", "tcp", web["tls13-h2-single"].port, withTLS(http("2"), "1.3"), func(t *testing.T) {
			h2OverTLS13(t, web["tls13-h2-single"].port)
		}},
		{"redis", "tcp", redisPort, map[string]string{attrProtoName: "redis"}, func(t *testing.T) {
			rc := []string{"redis-cli", "-h", "127.0.0.1", "-p", strconv.Itoa(redisPort)}
			if out := strings.TrimSpace(runTool(t, append(rc, "set", "ebpfnet", "e2e")...)); out != "OK" {
				t.Fatalf("redis-cli set: %q", out)
			}
			if out := strings.TrimSpace(runTool(t, append(rc, "get", "ebpfnet")...)); out != "e2e" {
				t.Fatalf("redis-cli get: %q", out)
			}
			runTool(t, "redis-benchmark", "-h", "127.0.0.1", "-p", strconv.Itoa(redisPort), "-n", "200", "-c", "2", "-q", "-t", "set,get")
		}},
		// sslmode=prefer opens with an SSLRequest (the server says no),
		// disable with the startup message.
		{"postgresql", "tcp", pgPort, map[string]string{attrProtoName: "postgresql"}, func(t *testing.T) {
			psql(t, "disable")
			psql(t, "prefer")
		}},
		{"mysql (mariadb)", "tcp", myPort, map[string]string{attrProtoName: "mysql"}, func(t *testing.T) {
			out := runTool(t, "mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", strconv.Itoa(myPort), "-u", "root", "--skip-ssl", "-N", "-B", "-e", "select 40+2")
			if strings.TrimSpace(out) != "42" {
				t.Fatalf("mariadb: %q, want 42", out)
			}
		}},
		{"amqp", "tcp", rabbit.port, map[string]string{attrProtoName: "amqp"}, func(t *testing.T) {
			amqpPublishGet(t, rabbit.port)
		}},
		{"kafka", "tcp", kafkaPort, map[string]string{attrProtoName: "kafka"}, func(t *testing.T) {
			kafkaProduceConsume(t, kafkaPort)
		}},
		{"mongodb", "tcp", mongoPort, map[string]string{attrProtoName: "mongodb"}, func(t *testing.T) {
			mongoPing(t, mongoPort)
		}},
		{"grpc", "tcp", grpcPort, map[string]string{attrProtoName: "http", attrProtoVersion: "2", attrRPCSystem: "grpc"}, func(t *testing.T) {
			grpcHealthCheck(t, grpcPort)
		}},
		{"dns over udp", "udp", dnsPort, map[string]string{attrProtoName: "dns"}, func(t *testing.T) { dig(t) }},
		{"dns over tcp", "tcp", dnsPort, map[string]string{attrProtoName: "dns"}, func(t *testing.T) { dig(t, "+tcp") }},
		// Controls: what no classifier may claim.
		{"control: random bytes and text over tcp", "tcp", echoPort, map[string]string{}, func(t *testing.T) {
			echoTCP(t, echoPort, controlBytes(4096, false))
			echoTCP(t, echoPort, controlBytes(4096, true))
		}},
		{"control: random bytes and text over udp", "udp", echoPort, map[string]string{}, func(t *testing.T) {
			echoUDP(t, echoPort, controlBytes(512, false))
			echoUDP(t, echoPort, controlBytes(512, true))
		}},
	}

	// The collector, then the exchanges.
	sink := newOTLPSink(t)
	telemetryPort := pickPort(t, false)
	col := startCollector(t, bin, writeConfig(t, protocolConfig(sink.srv.URL, telemetryPort)))
	waitStarted(t, col)
	ran := make(map[string]bool)
	for _, c := range cases {
		ran[c.name] = t.Run("exchange/"+c.name, c.run)
	}
	t.Logf("exchanges done after %v", time.Since(start).Round(time.Millisecond))

	// Both ends of every connection, until all match or 30 s pass.
	var report map[string][]string
	deadline := time.Now().Add(30 * time.Second)
	for {
		ios, err := sink.connectionSeries()
		if err != nil {
			t.Fatalf("OTLP server: %v", err)
		}
		report = make(map[string][]string)
		for _, c := range cases {
			if ran[c.name] {
				if errs := checkCase(c, ios); len(errs) > 0 {
					report[c.name] = errs
				}
			}
		}
		if len(report) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for _, c := range cases {
		t.Run("classified/"+c.name, func(t *testing.T) {
			if !ran[c.name] {
				t.Fatal("its exchange failed (see exchange/" + c.name + "), so there is nothing to check")
			}
			for _, e := range report[c.name] {
				t.Error(e)
			}
		})
	}
	t.Run("telemetry", func(t *testing.T) { checkClassifyTelemetry(t, telemetryPort, cases, sink) })
	t.Logf("total %v", time.Since(start).Round(time.Millisecond))
}

// protocolConfig polls every second and sends every connection's own series
// (local and peer ports kept) over OTLP/HTTP to otlpURL, with the
// collector's own metrics on a Prometheus endpoint at telemetryPort.
func protocolConfig(otlpURL string, telemetryPort int) string {
	return fmt.Sprintf(`
receivers:
  ebpfnet:
    collection_interval: 1s
    protocol_classification: true
    metrics:
      %s:
        attributes: [ebpfnet.connection.direction, network.io.direction, network.transport, network.type,
          network.local.address, network.local.port, network.peer.address, network.peer.port, server.port,
          %s]
exporters:
  otlp_http:
    endpoint: %s
service:
  pipelines:
    metrics:
      receivers: [ebpfnet]
      exporters: [otlp_http]
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: %d
`, ioMetric, strings.Join(protocolAttrs, ", "), otlpURL, telemetryPort)
}

// connSeries is the newest point of one series of ebpfnet.connection.io:
// with the local and peer ports kept, one connection end and one direction.
type connSeries struct {
	pid   int64
	attrs map[string]any
	value int64
}

func (s *otlpSink) connectionSeries() ([]connSeries, error) {
	pts, err := s.latestSums(ioMetric, nil, nil)
	if err != nil {
		return nil, err
	}
	out := make([]connSeries, 0, len(pts))
	for _, p := range pts {
		pid, _ := p.resource["process.pid"].(int64)
		out = append(out, connSeries{pid: pid, attrs: p.attrs, value: p.value})
	}
	return out, nil
}

// endKey names one connection end: its process and its two ports.
func endKey(s connSeries) string {
	return fmt.Sprintf("pid %d, local port %v, peer port %v", s.pid, s.attrs["network.local.port"], s.attrs["network.peer.port"])
}

// checkCase returns what is wrong with the connections of c: there must be
// at least one client end (peer port = c.port) and one server end (local
// port = c.port) on c's transport, and every series of each carries exactly
// c.want. A series of no bytes without any protocol attribute is the
// documented state of a connection before its first payload (a poll between
// connect and first byte), not a wrong classification, and is ignored.
func checkCase(c protoCase, series []connSeries) []string {
	var errs []string
	clients, servers := map[string]bool{}, map[string]bool{}
	for _, s := range series {
		if s.attrs["network.transport"] != c.transport {
			continue
		}
		var ends map[string]bool
		side := ""
		switch {
		case s.attrs["network.peer.port"] == int64(c.port):
			ends, side = clients, "client"
		case s.attrs["network.local.port"] == int64(c.port):
			ends, side = servers, "server"
		default:
			continue
		}
		got := map[string]string{}
		for _, k := range protocolAttrs {
			if v, ok := s.attrs[k]; ok {
				got[k] = fmt.Sprint(v)
			}
		}
		if len(got) == 0 && s.value == 0 {
			continue
		}
		ends[endKey(s)] = true
		if !maps.Equal(got, c.want) {
			errs = append(errs, fmt.Sprintf("%s end (%s, %s %s, %v %s): protocol attributes %v, want %v",
				side, endKey(s), s.attrs["ebpfnet.connection.direction"], s.attrs["network.io.direction"], s.value, "bytes", got, c.want))
		}
	}
	if len(clients) == 0 {
		errs = append(errs, fmt.Sprintf("no client end (%s, network.peer.port %d) with payload in the OTLP output", c.transport, c.port))
	}
	if len(servers) == 0 {
		errs = append(errs, fmt.Sprintf("no server end (%s, network.local.port %d) with payload in the OTLP output", c.transport, c.port))
	}
	slices.Sort(errs)
	return errs
}

// checkClassifyTelemetry checks the receiver's classification counters
// against the sockets of the exchanges: the kernel decides once per socket
// (a UDP server socket serves every peer with one decision), so at least one
// classified for each socket of a case with protocol attributes, and one
// unclassified for each socket of a control case. At least: the hook sees
// every socket on the host, such as the collector's own OTLP exports. The
// receiver adds the kernel's counts at each poll: they may trail the
// attributes by one.
func checkClassifyTelemetry(t *testing.T, port int, cases []protoCase, sink *otlpSink) {
	series, err := sink.connectionSeries()
	if err != nil {
		t.Fatal(err)
	}
	classified, unclassified := map[string]bool{}, map[string]bool{}
	for _, c := range cases {
		for _, s := range series {
			if s.value == 0 || s.attrs["network.transport"] != c.transport ||
				(s.attrs["network.peer.port"] != int64(c.port) && s.attrs["network.local.port"] != int64(c.port)) {
				continue
			}
			socket := endKey(s)
			if c.transport == "udp" {
				// One socket per local port: its peers are flows of it.
				socket = fmt.Sprintf("pid %d, udp port %v", s.pid, s.attrs["network.local.port"])
			}
			if len(c.want) == 0 {
				unclassified[socket] = true
			} else {
				classified[socket] = true
			}
		}
	}
	counters := []struct {
		name string
		min  int
	}{
		{"otelcol_ebpfnet_tracer_classified", len(classified)},
		{"otelcol_ebpfnet_tracer_unclassified", len(unclassified)},
		{"otelcol_ebpfnet_tracer_classify_short", 0},
	}
	var errs []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		samples, err := scrape(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
		if err != nil {
			t.Fatalf("the collector's own metrics: %v", err)
		}
		errs = errs[:0]
		for _, m := range counters {
			// A counter never added to has no series: zero.
			var v float64
			for _, s := range samples {
				if s.name == m.name || s.name == m.name+"_total" {
					v += s.value
				}
			}
			if v < float64(m.min) {
				errs = append(errs, fmt.Sprintf("%s = %v, want at least %d (the exchanges' own sockets)", m.name, v, m.min))
			} else {
				t.Logf("%s = %v (the exchanges' own sockets: %d)", m.name, v, m.min)
			}
		}
		if len(errs) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, e := range errs {
		t.Error(e)
	}
}
