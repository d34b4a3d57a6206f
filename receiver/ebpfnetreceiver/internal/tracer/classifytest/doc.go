// SPDX-License-Identifier: Apache-2.0

// Package classifytest runs the BPF protocol classifiers (bpf/protocols/) on byte strings through
// BPF_PROG_TEST_RUN, without sockets: the harness bpf/tests/classify.bpf.c is generated here with
// bpf2go, and Harness.Run feeds it one packet's payload with the connection's classification
// state. Its tests hold the corpora of each protocol's first messages (testdata/corpus) and check
// every classifier against them, against each other, and against random bytes and text.
//
// Only tests use it; the tracer loads the classifiers inside its own object.
package classifytest
