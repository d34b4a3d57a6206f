// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestNotRoot: without the capabilities BPF needs, nettop prints one line
// that names them, in the collector's words (the tracer's
// ErrMissingCapability message), and exits 1 without touching the terminal.
// As root the test runs it as nobody, which has no capabilities.
func TestNotRoot(t *testing.T) {
	bin := nettopBinary(t)
	cmd := exec.Command(bin, "-once")
	if os.Geteuid() == 0 {
		cmd = exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin, "-once")
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1; stderr %q", err, stderr.String())
	}
	const want = "nettop: missing capability CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN: run as root or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN (setcap, or systemd AmbientCapabilities)\n"
	if stderr.String() != want || stdout.Len() != 0 {
		t.Errorf("stderr %q, stdout %q; want stderr %q only", stderr.String(), stdout.String(), want)
	}
	if strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("want one line")
	}
}
