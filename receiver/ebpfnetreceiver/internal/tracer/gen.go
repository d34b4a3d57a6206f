// SPDX-License-Identifier: Apache-2.0

package tracer

// The BPF objects and their Go bindings are generated from bpf/ and committed, so `go build`
// never needs clang. `make generate` runs this with the pinned clang-19 ($CLANG); `make
// check-generated` fails CI when the committed files are stale.
//go:generate go tool bpf2go -cc ${CLANG} -no-global-types -tags linux -target amd64,arm64 -cflags "-O2 -g -Wall -Werror -mcpu=v3" -type conn_tuple -type conn_value -type conn_record -type conn_stats -type tcp_stats -type sock_info -type port_binding -type udp_peer -type telemetry_counter -type conn_metadata -type conn_flags -type conn_direction -type record_kind -type sock_track_state -type protocol_stack -type classify_state -type proto_api -type proto_application -type proto_encryption -type stack_flags -type cgroup_path -type dns_record netflow ../../../../bpf/netflow.bpf.c -- -I../../../../bpf
