// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The nettop binary the tests run, built once per test binary.
var (
	buildOnce sync.Once
	binDir    string
	binErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// nettopBinary builds cmd/nettop with go build into a temporary directory
// that any user may read (the not-root test runs it as nobody).
func nettopBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "nettop-test-")
		if binErr != nil {
			return
		}
		if binErr = os.Chmod(binDir, 0o755); binErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "nettop"), ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return filepath.Join(binDir, "nettop")
}

// listen opens a loopback TCP listener, closed when the test ends.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func port(ln net.Listener) uint16 { return uint16(ln.Addr().(*net.TCPAddr).Port) }

// exchange connects a client to ln and has it send exactly sent bytes and
// receive exactly received bytes, which the server end sends after it read
// all of the client's. Both ends stay open until the test ends, so the
// connection is in every snapshot with these counts. It returns the client's
// local port.
func exchange(t *testing.T, ln net.Listener, sent, received int) uint16 {
	t.Helper()
	type accepted struct {
		c   net.Conn
		err error
	}
	acc := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			if _, err = io.CopyN(io.Discard, c, int64(sent)); err == nil {
				_, err = c.Write(make([]byte, received))
			}
		}
		acc <- accepted{c, err}
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(make([]byte, sent)); err != nil {
		t.Fatal(err)
	}
	if n, err := io.CopyN(io.Discard, c, int64(received)); err != nil {
		t.Fatalf("client read %d of %d bytes: %v", n, received, err)
	}
	a := <-acc
	if a.c != nil {
		t.Cleanup(func() { a.c.Close() })
	}
	if a.err != nil {
		t.Fatal(a.err)
	}
	return uint16(c.LocalAddr().(*net.TCPAddr).Port)
}
