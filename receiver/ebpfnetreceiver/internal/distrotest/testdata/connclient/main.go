// SPDX-License-Identifier: Apache-2.0

// connclient is the process the container test runs inside a container: it
// connects to the TCP address in its first argument, sends as many bytes as
// its second argument says, half-closes, reads the reply to EOF, prints the
// number of reply bytes and exits. The test builds it static (CGO_ENABLED=0)
// into an image FROM scratch; the test binary itself cannot serve, as `make
// test` builds it with -race, which needs cgo and a libc.
package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "connclient:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: connclient ADDR BYTES")
	}
	n, err := strconv.Atoi(args[1])
	if err != nil {
		return err
	}
	c, err := net.Dial("tcp", args[0])
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write(bytes.Repeat([]byte{'C'}, n)); err != nil {
		return err
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		return err
	}
	got, err := io.Copy(io.Discard, c)
	if err != nil {
		return err
	}
	fmt.Println(got)
	return nil
}
