// SPDX-License-Identifier: Apache-2.0

package floor

// Generated from bpf/bench/empty.bpf.c and committed like the tracer's objects, so the
// benchmark driver builds without clang. `make generate` reruns this with the pinned clang-19.
//go:generate go tool bpf2go -cc ${CLANG} -no-global-types -tags linux -target amd64,arm64 -cflags "-O2 -g -Wall -Werror -mcpu=v3" floor ../../../bpf/bench/empty.bpf.c -- -I../../../bpf
