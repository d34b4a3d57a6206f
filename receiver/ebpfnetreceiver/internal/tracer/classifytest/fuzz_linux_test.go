// SPDX-License-Identifier: Apache-2.0

package classifytest

import (
	"bytes"
	"testing"
)

// corpusFirsts: the first message of each direction of every recorded connection, with its
// protocol: whatever starts with one of them whole is that protocol's message.
func corpusFirsts(t testing.TB) (msgs [][]byte, protos []string) {
	for _, c := range loadCorpus(t) {
		seen := map[bool]bool{}
		for _, m := range c.msgs {
			if seen[m.fromClient] {
				continue
			}
			seen[m.fromClient] = true
			msgs = append(msgs, m.data)
			protos = append(protos, c.proto)
		}
	}
	return msgs, protos
}

// FuzzClassify runs data as a connection's first packet in one direction, data[split:] as the first
// of the other, then data again as a later packet, and asserts: values inside their enums, no layer
// changed once set, a settled stack left alone, the same input giving the same output, and a packet
// that begins with a whole corpus message of protocol X that decides alone never reported as
// another protocol.
func FuzzClassify(f *testing.F) {
	h := load(f)
	all, allProtos := corpusFirsts(f)
	// the messages that decide alone (a lone 'N' of a PostgreSQL server does not): what starts with
	// one of those must be reported as its protocol or nothing
	var msgs [][]byte
	var protos []string
	for i, m := range all {
		f.Add(m, true, true, uint16(len(m)/2))
		tcp := allProtos[i] != "dns-udp"
		for _, egress := range []bool{true, false} {
			if st, _ := run(f, h, Stack{}, m, egress, tcp, true); layersOf(st) != (layers{}) {
				msgs = append(msgs, m)
				protos = append(protos, allProtos[i])
				break
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, egress, tcp bool, split uint16) {
		if len(data) == 0 || len(data) > MaxPayload {
			return
		}
		second := data[int(split)%len(data):]
		if len(second) == 0 {
			second = data
		}
		seq := func() ([3]Stack, [3]uint32) {
			var out [3]Stack
			var res [3]uint32
			var st Stack
			for i, s := range []struct {
				b             []byte
				egress, first bool
			}{{data, egress, true}, {second, !egress, true}, {data, egress, false}} {
				prev := st
				st, res[i] = run(t, h, st, s.b, s.egress, tcp, s.first)
				checkStep(t, "fuzz", prev, st)
				out[i] = st
			}
			return out, res
		}
		a, ra := seq()
		b, rb := seq()
		if a != b || ra != rb {
			t.Fatalf("same input, different output: %+v %v / %+v %v", a, ra, b, rb)
		}
		for i, m := range msgs {
			if tcp != (protos[i] != "dns-udp") || !bytes.HasPrefix(data, m) {
				continue
			}
			one, _ := run(t, h, Stack{}, data, egress, tcp, true)
			if l := layersOf(one); !family(protos[i], l) {
				t.Fatalf("a %s message reported as %v", protos[i], l)
			}
		}
	})
}
