// SPDX-License-Identifier: Apache-2.0

package classifytest

// The harness object and its Go bindings are generated from bpf/tests/classify.bpf.c and committed
// like the tracer's (see ../gen.go): `make generate` runs this with the pinned clang-19 ($CLANG).
//go:generate go tool bpf2go -cc ${CLANG} -no-global-types -tags linux -target amd64,arm64 -cflags "-O2 -g -Wall -Werror -mcpu=v3" -type classify_io -type protocol_stack -type proto_api -type proto_application -type proto_encryption -type stack_flags -type classify_result -type cl_result classify ../../../../../bpf/tests/classify.bpf.c -- -I../../../../../bpf
