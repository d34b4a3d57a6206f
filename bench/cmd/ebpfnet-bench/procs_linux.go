// SPDX-License-Identifier: Apache-2.0

//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// self is this executable; the children are itself with a subcommand.
var self string

// loadChild runs `self load <args>` to completion and decodes its JSON result into v.
func loadChild(v any, args ...string) error {
	_, err := loadChildCPU(v, args...)
	return err
}

// loadChildCPU is loadChild that also returns the child's user+system CPU time.
func loadChildCPU(v any, args ...string) (time.Duration, error) {
	cmd := exec.Command(self, append([]string{"load"}, args...)...)
	// A generator runs for as long as it was told (a soak's, 30 minutes): it must not outlive
	// a driver that stopped on an error.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("load %v: %w: %s", args, err, strings.TrimSpace(stderr.String()))
	}
	return cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime(), json.Unmarshal(out.Bytes(), v)
}

// child is a long-running child process that prints JSON lines.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan line
}

// line is one line of a child's output and when it arrived.
type line struct {
	b  []byte
	at time.Time
}

func startChild(name string, args ...string) (*child, error) {
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, stdin: stdin, lines: make(chan line, 1024)}
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			c.lines <- line{append([]byte(nil), sc.Bytes()...), time.Now()}
		}
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// next returns the next line, or an error after timeout or when the child exited.
func (c *child) next(timeout time.Duration) ([]byte, error) {
	l, err := c.nextLine(timeout)
	return l.b, err
}

// nextLine is next with the line's arrival time. Lines queue while nobody
// reads: a reader that wants what the child says from a moment on skips the
// older ones (scrapeSince).
func (c *child) nextLine(timeout time.Duration) (line, error) {
	select {
	case l, ok := <-c.lines:
		if !ok {
			return line{}, errors.New("child exited")
		}
		return l, nil
	case <-time.After(timeout):
		return line{}, errors.New("child: no output in time")
	}
}

// stop closes stdin, signals, and waits; it kills after 10 s.
func (c *child) stop(sig syscall.Signal) {
	_ = c.stdin.Close()
	_ = c.cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// collector is the receiver child.
type collector struct {
	*child
	last scrapeLine
}

// startCollector starts the collector child with the interval and table size, and any further
// flags of runCollector (e.g. -classify=false), and waits until its receiver started.
func startCollector(interval time.Duration, maxConns int, flags ...string) (*collector, error) {
	c, err := startChild(self, append([]string{"collector", "-interval", interval.String(), "-max", fmt.Sprint(maxConns)}, flags...)...)
	if err != nil {
		return nil, err
	}
	col := &collector{child: c}
	l, err := c.next(60 * time.Second)
	if err != nil {
		c.stop(syscall.SIGTERM)
		return nil, fmt.Errorf("collector start: %w", err)
	}
	if err := json.Unmarshal(l, &col.last); err != nil || !col.last.Ready {
		c.stop(syscall.SIGTERM)
		return nil, fmt.Errorf("collector start: %q", l)
	}
	return col, nil
}

// scrape waits for the next scrape line.
func (c *collector) scrape(timeout time.Duration) (scrapeLine, error) {
	return c.scrapeSince(time.Time{}, timeout)
}

// scrapeSince returns the first scrape line that arrived at or after since,
// skipping the ones queued before: those polls ran before since.
func (c *collector) scrapeSince(since time.Time, timeout time.Duration) (scrapeLine, error) {
	deadline := time.Now().Add(timeout)
	for {
		l, err := c.nextLine(time.Until(deadline))
		if err != nil {
			return scrapeLine{}, err
		}
		if l.at.Before(since) {
			continue
		}
		var s scrapeLine
		if err := json.Unmarshal(l.b, &s); err != nil {
			return s, err
		}
		c.last = s
		return s, nil
	}
}

// startBpftrace starts bpftrace on script and waits until its probes are attached.
func startBpftrace(script string) (*child, error) {
	c, err := startChild("bpftrace", script)
	if err != nil {
		return nil, err
	}
	for {
		l, err := c.next(60 * time.Second)
		if err != nil {
			c.stop(syscall.SIGINT)
			return nil, fmt.Errorf("bpftrace start: %w", err)
		}
		if bytes.HasPrefix(l, []byte("Attaching")) {
			time.Sleep(300 * time.Millisecond) // "Attaching" comes before the last attach
			return c, nil
		}
	}
}
