// SPDX-License-Identifier: Apache-2.0

package distrotest

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The real servers of the protocol test (protocols_linux_test.go), each the
// Debian package's own binary run as a child of the test: in its own process
// group, on loopback ports the test picked, with its configuration and data
// in a directory the test made, and stopped (and checked gone) when the test
// ends. None of them runs as a system service.

// serverStart is how long a server may take to get ready: RabbitMQ (Erlang)
// needs about 5 s on 2 idle cores, the others well under one.
const serverStart = 60 * time.Second

// serverProc is a server process the test started.
type serverProc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// startServer runs args as a server named name, in its own process group.
// When the test ends it sends stop to the process, waits for the whole group
// to exit (SIGKILL after 20 s) and fails the test if anything of it is left;
// the output is logged if the test failed.
func startServer(t *testing.T, name string, stop syscall.Signal, env []string, args ...string) *serverProc {
	t.Helper()
	p := &serverProc{name: name, cmd: exec.Command(args[0], args[1:]...), out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(pgid, stop)
		if !p.groupGone(20 * time.Second) {
			t.Errorf("%s: process group %d still there 20 s after signal %v: killed", name, pgid, stop)
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			p.groupGone(5 * time.Second)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

// groupGone waits up to d for the process and every other member of its
// process group to be gone.
func (p *serverProc) groupGone(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		exited := false
		select {
		case <-p.done:
			exited = true
		default:
		}
		if exited && errors.Is(syscall.Kill(-p.cmd.Process.Pid, 0), syscall.ESRCH) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitOutput waits until the server's output contains s, failing fast if it
// exits first.
func (p *serverProc) waitOutput(t *testing.T, s string) {
	t.Helper()
	if err := p.waitOutputErr(s); err != nil {
		t.Fatal(err)
	}
}

func (p *serverProc) waitOutputErr(s string) error {
	for deadline := time.Now().Add(serverStart); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if strings.Contains(p.out.String(), s) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it said %q (%v):\n%s", p.name, s, p.cmd.ProcessState, p.out.String())
		default:
		}
	}
	return fmt.Errorf("%s did not say %q within %v:\n%s", p.name, s, serverStart, p.out.String())
}

// waitListening waits until something listens on 127.0.0.1:port (a TCP
// listener, or a bound UDP socket), read from /proc/net: the probe makes no
// connection, so nothing the collector could see.
func (p *serverProc) waitListening(t *testing.T, transport string, port int) {
	t.Helper()
	for deadline := time.Now().Add(serverStart); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ok, err := listening(transport, port)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited before it listened on %s port %d (%v):\n%s", p.name, transport, port, p.cmd.ProcessState, p.out.String())
		default:
		}
	}
	t.Fatalf("%s did not listen on %s port %d within %v:\n%s", p.name, transport, port, serverStart, p.out.String())
}

// listening reports whether /proc/net/<transport> has a socket bound to
// 127.0.0.1:port in the listening (TCP) or unconnected (UDP) state.
func listening(transport string, port int) (bool, error) {
	f, err := os.Open("/proc/net/" + transport)
	if err != nil {
		return false, err
	}
	defer f.Close()
	// 0100007F is 127.0.0.1 in the kernel's byte order on little-endian
	// machines, the only ones the project builds for.
	local := fmt.Sprintf("0100007F:%04X", port)
	state := "0A" // TCP_LISTEN
	if transport == "udp" {
		state = "07" // TCP_CLOSE: an unconnected UDP socket
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 3 && fields[1] == local && fields[3] == state {
			return true, nil
		}
	}
	return false, sc.Err()
}

var (
	pickedMu sync.Mutex
	picked   = make(map[int]bool)
)

// pickPort returns a port free on 127.0.0.1 for TCP (and UDP too, if both)
// that no earlier call in this process returned: the servers bind theirs
// only later, and the kernel may hand a port just closed out again.
func pickPort(t *testing.T, both bool) int {
	t.Helper()
	pickedMu.Lock()
	defer pickedMu.Unlock()
	for range 50 {
		port := freePort(t)
		if picked[port] {
			continue
		}
		if both {
			u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
			if err != nil {
				continue
			}
			u.Close()
		}
		picked[port] = true
		return port
	}
	t.Fatal("no new free port in 50 tries")
	return 0
}

// sharedDir makes a directory every user can enter (the postgres server
// runs as nobody, and t.TempDir's parent is private to root), removed when
// the test ends.
func sharedDir(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "ebpfnet-e2e-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runTool runs a client command to its end (at most 60 s) and returns its
// output; it fails the test on a non-zero exit.
func runTool(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// writeCert writes a self-signed ECDSA certificate for 127.0.0.1 and its key
// into dir.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// nginxListener is one server block of the nginx configuration.
type nginxListener struct {
	port int
	// tls is "" for cleartext, else the one version the block accepts
	// (nginx's ssl_protocols name: TLSv1.2, TLSv1.3).
	tls string
	// http2 turns on HTTP/2: h2c with prior knowledge in cleartext, ALPN h2
	// over TLS (nginx 1.22: the listen directive's http2 parameter).
	http2 bool
}

// startNginx runs nginx (master and one worker) with a server block for each
// listener, every location answering 200 "ok".
func startNginx(t *testing.T, listeners []nginxListener) {
	t.Helper()
	dir := sharedDir(t, "nginx")
	cert, key := writeCert(t, dir)
	var b strings.Builder
	fmt.Fprintf(&b, `daemon off;
master_process on;
worker_processes 1;
user root;
pid %[1]s/nginx.pid;
error_log stderr notice;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
`, dir)
	for _, l := range listeners {
		params := ""
		if l.tls != "" {
			params += " ssl"
		}
		if l.http2 {
			params += " http2"
		}
		fmt.Fprintf(&b, "  server {\n    listen 127.0.0.1:%d%s;\n", l.port, params)
		if l.tls != "" {
			fmt.Fprintf(&b, "    ssl_certificate %s;\n    ssl_certificate_key %s;\n    ssl_protocols %s;\n", cert, key, l.tls)
		}
		b.WriteString("    location / { return 200 \"ok\\n\"; }\n  }\n")
	}
	b.WriteString("}\n")
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	// SIGQUIT: graceful shutdown, the master waits for its worker.
	p := startServer(t, "nginx", syscall.SIGQUIT, nil, "nginx", "-p", dir+"/", "-c", conf)
	for _, l := range listeners {
		p.waitListening(t, "tcp", l.port)
	}
}

// startRedis runs redis-server without persistence and returns its port.
func startRedis(t *testing.T) int {
	t.Helper()
	dir := sharedDir(t, "redis")
	port := pickPort(t, false)
	p := startServer(t, "redis-server", syscall.SIGTERM, nil, "redis-server",
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--protected-mode", "no")
	p.waitOutput(t, "Ready to accept connections")
	return port
}

// postgresBin finds the server binaries of the installed PostgreSQL major
// version (Debian keeps them off PATH).
func postgresBin() (string, error) {
	m, err := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if err != nil || len(m) == 0 {
		return "", fmt.Errorf("no /usr/lib/postgresql/*/bin/postgres (Debian's postgresql package): %v", err)
	}
	return filepath.Dir(m[len(m)-1]), nil
}

// startPostgres creates a cluster with trust authentication and runs
// postgres on a TCP port of 127.0.0.1. PostgreSQL refuses to run as root, so
// initdb and the server run as nobody (setpriv execs in place: the server is
// the process the test started), in a directory nobody owns.
func startPostgres(t *testing.T) int {
	t.Helper()
	bin, err := postgresBin()
	if err != nil {
		t.Fatal(err)
	}
	dir := sharedDir(t, "postgres")
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	asNobody := []string{"setpriv", "--reuid=" + nobody, "--regid=" + nobody, "--clear-groups", "--"}
	data := filepath.Join(dir, "data")
	runTool(t, append(asNobody, "env", "LANG=C", filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync")...)
	port := pickPort(t, false)
	// SIGINT: fast shutdown (SIGTERM would wait for clients).
	p := startServer(t, "postgres", syscall.SIGINT, nil, append(asNobody, filepath.Join(bin, "postgres"),
		"-D", data, "-k", dir, "-p", strconv.Itoa(port), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off")...)
	p.waitOutput(t, "database system is ready to accept connections")
	return port
}

// startMariaDB installs the system tables into a new data directory and runs
// mariadbd on a TCP port of 127.0.0.1, without TLS (none configured), with
// root allowed in without a password.
func startMariaDB(t *testing.T) int {
	t.Helper()
	dir := sharedDir(t, "mariadb")
	data := filepath.Join(dir, "data")
	runTool(t, "mariadb-install-db", "--no-defaults", "--datadir="+data, "--user=root",
		"--auth-root-authentication-method=normal", "--skip-test-db")
	port := pickPort(t, false)
	p := startServer(t, "mariadbd", syscall.SIGTERM, nil, "mariadbd", "--no-defaults", "--datadir="+data,
		"--socket="+filepath.Join(dir, "sock"), "--pid-file="+filepath.Join(dir, "pid"), "--port="+strconv.Itoa(port),
		"--bind-address=127.0.0.1", "--user=root", "--skip-log-bin", "--skip-name-resolve", "--innodb-buffer-pool-size=16M")
	p.waitOutput(t, "ready for connections")
	return port
}

// startDnsmasq runs dnsmasq as an authoritative-only server for
// example.test (127.0.0.1) on one port, UDP and TCP, with no upstream.
func startDnsmasq(t *testing.T) int {
	t.Helper()
	dir := sharedDir(t, "dnsmasq")
	port := pickPort(t, true)
	p := startServer(t, "dnsmasq", syscall.SIGTERM, nil, "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--no-resolv", "--no-hosts", "--port="+strconv.Itoa(port), "--listen-address=127.0.0.1", "--bind-interfaces",
		"--address=/example.test/127.0.0.1", "--user=root", "--pid-file="+filepath.Join(dir, "pid"), "--log-facility=-")
	p.waitListening(t, "udp", port)
	p.waitListening(t, "tcp", port)
	return port
}

// rabbitmqServer is the script that runs a RabbitMQ node as it is:
// /usr/sbin/rabbitmq-server is Debian's wrapper around it that switches to
// the rabbitmq user and writes to /var/log.
const rabbitmqServer = "/usr/lib/rabbitmq/bin/rabbitmq-server"

// rabbitMQ is a RabbitMQ node starting in the background: wait blocks until
// it accepts AMQP connections on port.
type rabbitMQ struct {
	port int
	p    *serverProc
}

// startRabbitMQ starts a RabbitMQ node with everything of its own: its own
// epmd (on a port of its own, in the foreground, so it goes with the test
// instead of lingering as a daemon), node name, ports, Erlang cookie (HOME),
// database, logs and no plugins. It does not wait: the node takes seconds,
// which the test spends starting the others.
func startRabbitMQ(t *testing.T) *rabbitMQ {
	t.Helper()
	dir := sharedDir(t, "rabbitmq")
	epmdPort, port, distPort := pickPort(t, false), pickPort(t, false), pickPort(t, false)
	epmd := startServer(t, "epmd", syscall.SIGTERM, nil, "epmd", "-port", strconv.Itoa(epmdPort), "-address", "127.0.0.1")
	epmd.waitListening(t, "tcp", epmdPort)
	for _, f := range []struct{ name, content string }{{"env.conf", ""}, {"enabled_plugins", "[].\n"}} {
		if err := os.WriteFile(filepath.Join(dir, f.name), []byte(f.content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A node name of its own: one left from another run cannot clash.
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	env := []string{
		"HOME=" + dir,
		"ERL_EPMD_PORT=" + strconv.Itoa(epmdPort),
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(dir, "env.conf"),
		"RABBITMQ_NODENAME=ebpfnet-e2e-" + hex.EncodeToString(suffix) + "@localhost",
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(port),
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(distPort),
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(dir, "log"),
		"RABBITMQ_LOGS=-",
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_PLUGINS_EXPAND_DIR=" + filepath.Join(dir, "plugins"),
		"RABBITMQ_PID_FILE=" + filepath.Join(dir, "pid"),
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(dir, "rabbitmq"),
		"RABBITMQ_ADVANCED_CONFIG_FILE=" + filepath.Join(dir, "advanced.config"),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-start_epmd false",
	}
	p := startServer(t, "rabbitmq-server", syscall.SIGTERM, env, rabbitmqServer)
	return &rabbitMQ{port: port, p: p}
}

func (r *rabbitMQ) wait(t *testing.T) {
	t.Helper()
	r.p.waitOutput(t, fmt.Sprintf("started TCP listener on 127.0.0.1:%d", r.port))
}
