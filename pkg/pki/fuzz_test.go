package pki

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Seeds for the fuzz targets live in testdata/{descriptor,document,vote}/. A file named ok-* must
// parse and re-encode to the same bytes; bad-* must be refused. Regenerate (only on purpose) with
// go test ./pkg/pki -run TestWriteSeeds -update-seeds.
var updateSeeds = flag.Bool("update-seeds", false, "rewrite the fuzz seed files in testdata/")

// parsers maps each seed directory to a parse-and-re-encode function.
var parsers = map[string]func([]byte) ([]byte, error){
	"descriptor": func(b []byte) ([]byte, error) {
		d, err := ParseDescriptor(b)
		if err != nil {
			return nil, err
		}
		return d.Marshal()
	},
	"document": func(b []byte) ([]byte, error) {
		sd, err := ParseSignedDocument(b)
		if err != nil {
			return nil, err
		}
		raw, err := sd.Document.Marshal()
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(raw, sd.Raw) {
			return raw, nil // caller sees the mismatch against its input
		}
		return sd.Marshal(), nil
	},
	"vote": func(b []byte) ([]byte, error) {
		v, err := ParseVote(b)
		if err != nil {
			return nil, err
		}
		return v.Marshal()
	},
}

func seeds(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.bin"))
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]byte)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestSeeds(t *testing.T) {
	for dir, parse := range parsers {
		s := seeds(t, dir)
		ok := 0
		for name, b := range s {
			out, err := parse(b)
			switch {
			case strings.HasPrefix(name, "ok-"):
				ok++
				if err != nil {
					t.Errorf("%s/%s: %v", dir, name, err)
				} else if !bytes.Equal(out, b) {
					t.Errorf("%s/%s: re-encoding differs", dir, name)
				}
			case strings.HasPrefix(name, "bad-"):
				if err == nil {
					t.Errorf("%s/%s: accepted", dir, name)
				}
			default:
				t.Errorf("%s/%s: name must start with ok- or bad-", dir, name)
			}
		}
		if ok == 0 || len(s) < 2 {
			t.Errorf("testdata/%s: %d seeds, %d ok; the fuzz seed set must not be empty", dir, len(s), ok)
		}
	}
}

func fuzzParser(f *testing.F, dir string) {
	for _, b := range seeds(f, dir) {
		f.Add(b)
	}
	parse := parsers[dir]
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := parse(b)
		if err == nil && !bytes.Equal(out, b) {
			t.Fatalf("parsed input re-encodes differently:\n in %x\nout %x", b, out)
		}
	})
}

func FuzzParseDescriptor(f *testing.F) { fuzzParser(f, "descriptor") }
func FuzzParseDocument(f *testing.F)   { fuzzParser(f, "document") }
func FuzzParseVote(f *testing.F)       { fuzzParser(f, "vote") }

// TestWriteSeeds regenerates the seed files when -update-seeds is given.
func TestWriteSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-seeds to regenerate testdata/")
	}
	auth, pub := newAuthorities(t, 3)
	mix := newTestNode(t, 1, RoleMix, 500)
	prov := newTestNode(t, 2, RoleProvider, 500)
	mb, _ := mix.desc.Marshal()
	pb, _ := prov.desc.Marshal()
	nodes := mixNet(t, 4, 2, 500)
	v := vote(t, auth[0], 501, testParams(), nodes)
	vb, _ := v.Marshal()
	doc := signedDoc(t, 501, auth, pub, nodes, 0, 1, 2)
	empty := signedDoc(t, 502, auth, pub, nil, 1)
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
	files := map[string][]byte{
		"descriptor/ok-mix.bin":               mb,
		"descriptor/ok-provider.bin":          pb,
		"descriptor/bad-signature.bin":        flip(mb, len(mb)-1),
		"descriptor/bad-trailing.bin":         append(bytes.Clone(mb), 0),
		"descriptor/bad-version.bin":          flip(mb, 0),
		"document/ok-three-signatures.bin":    doc,
		"document/ok-empty-one-signature.bin": empty,
		"document/bad-truncated.bin":          doc[:len(doc)-1],
		"document/bad-layer.bin":              flip(doc, 4+1+8+paramsSize+4+64+1),
		"vote/ok-six-nodes.bin":               vb,
		"vote/bad-signature.bin":              flip(vb, len(vb)-1),
	}
	for name, b := range files {
		p := filepath.Join("testdata", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
