// SPDX-License-Identifier: Apache-2.0

//go:build linux

package ebpfnetreceiver

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"golang.org/x/sys/unix"

	"github.com/otelcol-ebpfnet/otelcol-ebpfnet/receiver/ebpfnetreceiver/internal/privtest"
)

// dnsTestNet is a network namespace joined to the host's by a veth pair, on
// addresses of the benchmarking range (198.18.0.0/15) that exist nowhere
// else: the host end holds dnsAddr (dnsmasq), and the addresses the test's
// servers listen on.
type dnsTestNet struct {
	name, path string
	inode      uint32
}

const (
	dnsHostAddr   = "198.19.53.1" // dnsmasq, and the server svc.ebpfnet.test resolves to
	dnsInsideAddr = "198.19.53.2" // the client's namespace
	dnsUnresolved = "198.19.53.3" // a server nobody resolved
	dnsTCPAddr    = "198.19.53.4" // the server tcpsvc.ebpfnet.test resolves to (asked over TCP)
	dnsPort       = "10053"
)

func newDNSTestNet(t *testing.T) *dnsTestNet {
	t.Helper()
	n := &dnsTestNet{name: fmt.Sprintf("edns%d", os.Getpid()%100000)}
	n.path = "/run/netns/" + n.name
	host, peer := "edh"+n.name[4:], "edp"+n.name[4:]
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", host).Run()
		_ = exec.Command("ip", "netns", "del", n.name).Run()
	})
	run("netns", "add", n.name)
	run("link", "add", host, "type", "veth", "peer", "name", peer)
	run("link", "set", peer, "netns", n.name)
	for _, a := range []string{dnsHostAddr, dnsUnresolved, dnsTCPAddr} {
		run("addr", "add", a+"/29", "dev", host)
	}
	run("link", "set", host, "up")
	run("-n", n.name, "addr", "add", dnsInsideAddr+"/29", "dev", peer)
	run("-n", n.name, "link", "set", peer, "up")
	run("-n", n.name, "link", "set", "lo", "up")
	var st syscall.Stat_t
	if err := syscall.Stat(n.path, &st); err != nil {
		t.Fatal(err)
	}
	n.inode = uint32(st.Ino)
	return n
}

// in runs fn on an OS thread inside the namespace: sockets fn makes are the
// namespace's for life. Safe from any goroutine.
func (n *dnsTestNet) in(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer self.Close()
	target, err := os.Open(n.path)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns: %w", err)
	}
	ferr := fn()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		panic(fmt.Sprintf("setns back: %v", err)) // this thread must not run anything else
	}
	return ferr
}

// startDnsmasq runs Debian's dnsmasq on the host end, answering only the
// test's names (no upstream, no /etc/hosts, no config file).
func startDnsmasq(t *testing.T) {
	t.Helper()
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		t.Fatalf("dnsmasq not installed (scripts/ci/deps.sh installs dnsmasq-base): %v", err)
	}
	cmd := exec.Command(bin, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--bind-interfaces", "--listen-address="+dnsHostAddr, "--port="+dnsPort, "--pid-file=",
		"--local-ttl=60", "--log-queries", "--log-facility=-",
		"--address=/svc.ebpfnet.test/"+dnsHostAddr, "--address=/tcpsvc.ebpfnet.test/"+dnsTCPAddr)
	var log strings.Builder
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("dnsmasq:\n%s", log.String())
		}
	})
}

// serveBytes accepts connections on addr and reads each to its end; it
// returns the port.
func serveBytes(t *testing.T, addr string) int {
	t.Helper()
	ln, err := net.Listen("tcp4", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestDNSNamesThroughDnsmasq: a client in a network namespace resolves a
// name through dnsmasq (over UDP with Go's resolver, over TCP with dig) and
// connects to the address it got: that connection's data points carry
// server.address with the name, and exactly the bytes the client sent; a
// connection from the same namespace to an address nobody resolved carries
// none, and neither does the server's end of any of them.
func TestDNSNamesThroughDnsmasq(t *testing.T) {
	privtest.Require(t)
	if _, err := exec.LookPath("dig"); err != nil {
		t.Fatalf("dig not installed (scripts/ci/deps.sh installs bind9-dnsutils): %v", err)
	}
	n := newDNSTestNet(t)
	startDnsmasq(t)
	port := serveBytes(t, "0.0.0.0")

	cfg := createDefaultConfig()
	cfg.CollectionInterval = 200 * time.Millisecond
	sink, _ := startMetricsReceiver(t, cfg)

	// UDP: Go's resolver, its sockets made in the namespace.
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var c net.Conn
		err := n.in(func() (err error) {
			c, err = (&net.Dialer{}).DialContext(ctx, network, dnsHostAddr+":"+dnsPort)
			return err
		})
		return c, err
	}}
	var (
		addrs []netip.Addr
		err   error
	)
	deadline := time.Now().Add(10 * time.Second) // dnsmasq starting
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		addrs, err = resolver.LookupNetIP(ctx, "ip4", "svc.ebpfnet.test.")
		cancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || len(addrs) != 1 || addrs[0].String() != dnsHostAddr {
		t.Fatalf("resolve svc.ebpfnet.test through dnsmasq: %v %v, want %s", addrs, err, dnsHostAddr)
	}

	// TCP: dig in the namespace.
	out, err := exec.Command("ip", "netns", "exec", n.name, "dig", "+tcp", "+short", "-p", dnsPort, "@"+dnsHostAddr, "tcpsvc.ebpfnet.test", "A").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != dnsTCPAddr {
		t.Fatalf("dig +tcp tcpsvc.ebpfnet.test: %q %v, want %s", out, err, dnsTCPAddr)
	}

	// Each client connection sends a different, known number of bytes.
	sent := map[string]int64{addrs[0].String(): 1111, dnsUnresolved: 2222, dnsTCPAddr: 3333}
	for addr, bytes := range sent {
		var c net.Conn
		if err := n.in(func() (err error) {
			c, err = net.Dial("tcp4", net.JoinHostPort(addr, strconv.Itoa(port)))
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(make([]byte, bytes)); err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}

	// The client ends, by peer: the name their data points carry and the
	// bytes they sent.
	want := map[string]string{
		dnsHostAddr + " svc.ebpfnet.test": "1111", dnsUnresolved + " ": "2222", dnsTCPAddr + " tcpsvc.ebpfnet.test": "3333",
	}
	var got map[string]string
	var serverNamed []string
	deadline = time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if all := sink.AllMetrics(); len(all) > 0 {
			got, serverNamed = namedIO(all[len(all)-1], int64(n.inode), int64(port))
			if fmt.Sprint(got) == fmt.Sprint(want) {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("client transmit by \"peer server.address\" in namespace %d: got %v, want %v", n.inode, got, want)
	}
	if len(serverNamed) != 0 {
		t.Errorf("server ends (incoming) carry server.address: %v", serverNamed)
	}
}

// namedIO sums the transmit bytes of ebpfnet.connection.io to port from the
// namespace netns by "peer server.address", and lists the server.address of
// incoming series on port (there must be none).
func namedIO(md pmetric.Metrics, netns, port int64) (out map[string]string, incomingNamed []string) {
	sums := map[string]int64{}
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		res := rms.At(i).Resource().Attributes()
		inNS := false
		if v, ok := res.Get("ebpfnet.netns.inode"); ok && v.Int() == netns {
			inNS = true
		}
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				if ms.At(k).Name() != "ebpfnet.connection.io" {
					continue
				}
				dps := ms.At(k).Sum().DataPoints()
				for l := 0; l < dps.Len(); l++ {
					a := dps.At(l).Attributes()
					if intAttr(a, "server.port") != port {
						continue
					}
					name := str(a, "server.address")
					dir := str(a, "ebpfnet.connection.direction")
					if dir == "incoming" && name != "" {
						incomingNamed = append(incomingNamed, name)
					}
					if !inNS || dir != "outgoing" || str(a, "network.io.direction") != "transmit" {
						continue
					}
					sums[str(a, "network.peer.address")+" "+name] += dps.At(l).IntValue()
				}
			}
		}
	}
	out = map[string]string{}
	for k, v := range sums {
		out[k] = strconv.FormatInt(v, 10)
	}
	return out, incomingNamed
}
