// SPDX-License-Identifier: Apache-2.0

package classifytest

import (
	"embed"
	"io/fs"
	"path"
	"sort"
	"strings"
	"testing"
)

// The corpus is embedded so the test binary runs where the repository is not (kernel-matrix VMs).
//
//go:embed testdata/corpus
var corpusFS embed.FS

// message is one read of a recorded connection.
type message struct {
	fromClient bool
	data       []byte
}

// corpusCase is one recorded connection: testdata/corpus/<proto>/<name>/NN-{c,s}.bin.
type corpusCase struct {
	proto, name string
	msgs        []message
}

func (c corpusCase) String() string { return c.proto + "/" + c.name }

// tcp says the transport the case runs on: every protocol but DNS over UDP.
func (c corpusCase) tcp() bool { return c.proto != "dns-udp" }

func loadCorpus(t testing.TB) []corpusCase {
	t.Helper()
	byDir := map[string]*corpusCase{}
	err := fs.WalkDir(corpusFS, "testdata/corpus", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".bin") {
			return err
		}
		dir := path.Dir(p)
		c := byDir[dir]
		if c == nil {
			c = &corpusCase{proto: path.Base(path.Dir(dir)), name: path.Base(dir)}
			byDir[dir] = c
		}
		b, err := corpusFS.ReadFile(p)
		if err != nil {
			return err
		}
		c.msgs = append(c.msgs, message{fromClient: strings.HasSuffix(p, "-c.bin"), data: b})
		return nil
	})
	if err != nil {
		t.Fatalf("read corpus: %v", err)
	}
	var out []corpusCase
	for _, c := range byDir {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	if len(out) == 0 {
		t.Fatal("empty corpus")
	}
	return out
}
