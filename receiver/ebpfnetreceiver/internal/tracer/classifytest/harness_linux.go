// SPDX-License-Identifier: Apache-2.0

package classifytest

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
)

// ethHeader is the dummy Ethernet header in front of every test payload: a tc program's
// BPF_PROG_TEST_RUN input is a frame, and the harness skips these bytes (CT_ETH_HLEN).
const ethHeader = 14

// MaxPayload is the longest payload Run takes: BPF_PROG_TEST_RUN refuses a frame longer than a page
// less the skb's head and tail room (EINVAL), and classifiers read only CLASSIFY_MAX_BYTES anyway.
const MaxPayload = 2048

// Stack is struct protocol_stack.
type Stack = classifyProtocolStack

// Harness is the loaded harness object. It is not safe for concurrent Runs: they share the io map.
type Harness struct {
	objs classifyObjects
}

// Load loads the harness. Errors wrapping ebpf.ErrNotSupported or a permission error mean the
// machine cannot run BPF.
func Load() (*Harness, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("remove memlock limit: %w", err)
	}
	h := &Harness{}
	if err := loadClassifyObjects(&h.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load classify harness: %+v", ve)
		}
		return nil, fmt.Errorf("load classify harness: %w", err)
	}
	return h, nil
}

// Close releases the programs and the map.
func (h *Harness) Close() error { return h.objs.Close() }

// Run runs classify_packet once on payload with the state st: the state after it and its enum
// classify_result bits.
func (h *Harness) Run(st Stack, payload []byte, egress, tcp, first bool) (Stack, uint32, error) {
	return h.run(h.objs.CtClassify, classifyClassifyIo{Stack: st, Egress: b2u(egress), Tcp: b2u(tcp), First: b2u(first)}, payload)
}

// Classifier names one classifier's own entry point (ct_<name> in the harness).
type Classifier string

// RunOne runs one classifier alone on payload from the state st: the state it left and its enum
// cl_result bits.
func (h *Harness) RunOne(c Classifier, st Stack, payload []byte) (Stack, uint32, error) {
	o := &h.objs.classifyPrograms
	p := map[Classifier]*ebpf.Program{
		"http_req": o.CtHttpReq, "http_resp": o.CtHttpResp, "h2_preface": o.CtH2Preface, "h2_frames": o.CtH2Frames,
		"tls": o.CtTls, "kafka": o.CtKafka, "amqp_hdr": o.CtAmqpHdr, "amqp_start": o.CtAmqpStart, "redis": o.CtRedis,
		"postgres": o.CtPostgres, "mysql": o.CtMysql, "mongo": o.CtMongo, "dns_udp": o.CtDnsUdp, "dns_tcp": o.CtDnsTcp,
	}[c]
	if p == nil {
		return Stack{}, 0, fmt.Errorf("no classifier %q", c)
	}
	return h.run(p, classifyClassifyIo{Stack: st}, payload)
}

func (h *Harness) run(p *ebpf.Program, in classifyClassifyIo, payload []byte) (Stack, uint32, error) {
	if len(payload) > MaxPayload {
		return Stack{}, 0, fmt.Errorf("payload of %d bytes, more than %d", len(payload), MaxPayload)
	}
	if err := h.objs.Io.Put(uint32(0), &in); err != nil {
		return Stack{}, 0, fmt.Errorf("write io: %w", err)
	}
	data := make([]byte, ethHeader+len(payload))
	copy(data[ethHeader:], payload)
	if _, err := p.Run(&ebpf.RunOptions{Data: data}); err != nil {
		return Stack{}, 0, fmt.Errorf("run %s: %w", p, err)
	}
	var out classifyClassifyIo
	if err := h.objs.Io.Lookup(uint32(0), &out); err != nil {
		return Stack{}, 0, fmt.Errorf("read io: %w", err)
	}
	return out.Stack, out.Result, nil
}

func b2u(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
