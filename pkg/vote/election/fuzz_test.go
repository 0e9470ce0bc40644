package election

import (
	"bytes"
	"crypto/rand"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

var updateSeeds = flag.Bool("update", false, "regenerate testdata/ (the fuzzing seeds)")

// seedLens are the list lengths of testdata/share.bt, one per question.
var seedLens = []int{2, 2}

// TestWriteSeeds regenerates testdata/ on purpose only (go test -run TestWriteSeeds -update):
// a signed definition, one message of each kind of key generation (with a complaint and its
// answer), a decryption share and a tally.
func TestWriteSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update to regenerate testdata/")
	}
	f := newFixture(t, 2, 3, 2, []int{1, 2})
	rec := t.TempDir()
	f.keygen(t, rec, func(i int, msg []byte) []byte {
		if i == 2 {
			return f.badShare(t, msg, 2, 3)
		}
		return msg
	})
	files := map[string]string{
		"definition.json": filepath.Join(rec, "..", "definition.json"),
		"dealing.bt":      filepath.Join(rec, KeyGenDir, dealingName(1)),
		"complaints.bt":   filepath.Join(rec, KeyGenDir, complaintsName(3)),
		"answer.bt":       filepath.Join(rec, KeyGenDir, answerName(2)),
	}
	if err := os.WriteFile(files["definition.json"], f.sd.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	lists := f.encryptLists(t, [][]int{{0, 2}, {1, 1}})
	share, err := Decrypt(rand.Reader, f.sd, 2, f.shares[1], lists, f.trustees[1], nil)
	if err != nil {
		t.Fatal(err)
	}
	tally, err := Count(f.sd, [][]*group.Element{{}, {}})
	if err != nil {
		t.Fatal(err)
	}
	tb, err := tally.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range map[string][]byte{"share.bt": share, "tally.json": tb} {
		if err := os.WriteFile(filepath.Join("testdata", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func seedDefinition(t testing.TB) *SignedDefinition {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "definition.json"))
	if err != nil {
		t.Fatal(err)
	}
	sd, err := ParseDefinition(b)
	if err != nil {
		t.Fatal(err)
	}
	return sd
}

func addSeeds(f *testing.F, names ...string) {
	f.Helper()
	n := 0
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		n++
	}
	if n == 0 {
		f.Fatal("no seeds")
	}
}

// TestSeedsPresent asserts that every fuzz target has its seeds and that each seed parses.
func TestSeedsPresent(t *testing.T) {
	sd := seedDefinition(t)
	for name, parse := range map[string]func([]byte) error{
		"dealing.bt":    func(b []byte) error { _, err := ParseDealing(b, sd); return err },
		"complaints.bt": func(b []byte) error { _, _, err := ParseComplaints(b, sd); return err },
		"answer.bt":     func(b []byte) error { _, _, err := ParseAnswer(b, sd); return err },
		"share.bt":      func(b []byte) error { _, _, err := ParseDecryptionShare(b, sd, seedLens); return err },
		"tally.json":    func(b []byte) error { _, err := ParseTally(b); return err },
	} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil || len(b) == 0 {
			t.Fatalf("%s: %v", name, err)
		}
		if err := parse(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, c, _ := ParseComplaints(mustRead(t, "complaints.bt"), sd); len(c) == 0 {
		t.Error("complaints.bt holds no complaint")
	}
}

func mustRead(t testing.TB, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reseal rebuilds a message file from its parsed payload and the original signature.
func reseal(t *testing.T, orig []byte, kind string, sd *SignedDefinition, idx int, payload *bytetree.Tree) {
	t.Helper()
	tr, err := bytetree.Parse(orig, bytetree.Limits{MaxBytes: len(orig), MaxDepth: maxTreeDepth})
	if err != nil {
		t.Fatal(err)
	}
	h := sd.Hash()
	body := bytetree.Node(bytetree.String(kind), bytetree.Leaf(h[:]), bytetree.Uint32(uint32(idx)), payload)
	if again := bytetree.Node(body, tr.Children()[1]).Encode(); !bytes.Equal(again, orig) {
		t.Fatalf("%s: parse then re-encode changed the bytes", kind)
	}
}

func FuzzParseDefinition(f *testing.F) {
	addSeeds(f, "definition.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		sd, err := ParseDefinition(b)
		if err != nil {
			return
		}
		again, err := canonicalJSON(sd)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzParseDealing(f *testing.F) {
	addSeeds(f, "dealing.bt")
	sd := seedDefinition(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseDealing(b, sd)
		if err != nil {
			return
		}
		cts := make([]*bytetree.Tree, len(m.Shares))
		for i, c := range m.Shares {
			cts[i] = bytetree.Leaf(c)
		}
		reseal(t, b, kindDealing, sd, m.Dealer, bytetree.Node(verificatum.ElementsTree(m.Commitments), bytetree.Node(cts...)))
	})
}

func FuzzParseComplaints(f *testing.F) {
	addSeeds(f, "complaints.bt")
	sd := seedDefinition(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		j, list, err := ParseComplaints(b, sd)
		if err != nil {
			return
		}
		items := make([]*bytetree.Tree, len(list))
		for i, v := range list {
			items[i] = bytetree.Uint32(uint32(v))
		}
		reseal(t, b, kindComplaints, sd, j, bytetree.Node(items...))
	})
}

func FuzzParseAnswer(f *testing.F) {
	addSeeds(f, "answer.bt")
	sd := seedDefinition(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		i, shares, err := ParseAnswer(b, sd)
		if err != nil {
			return
		}
		var items []*bytetree.Tree
		for j := 1; j <= len(sd.Definition.Trustees); j++ {
			if s, ok := shares[j]; ok {
				items = append(items, bytetree.Node(bytetree.Uint32(uint32(j)), s.Tree()))
			}
		}
		reseal(t, b, kindAnswer, sd, i, bytetree.Node(items...))
	})
}

func FuzzParseDecryptionShare(f *testing.F) {
	addSeeds(f, "share.bt")
	sd := seedDefinition(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		j, shares, err := ParseDecryptionShare(b, sd, seedLens)
		if err != nil {
			return
		}
		items := make([]*bytetree.Tree, len(shares))
		for q, s := range shares {
			items[q] = bytetree.Node(verificatum.ElementsTree(s.Factors), s.A.Tree(), s.B.Tree(), s.Z.Tree())
		}
		reseal(t, b, kindDecryption, sd, j, bytetree.Node(items...))
	})
}

func FuzzParseTally(f *testing.F) {
	addSeeds(f, "tally.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		tl, err := ParseTally(b)
		if err != nil {
			return
		}
		again, err := tl.Marshal()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatal("re-encoding differs")
		}
	})
}

func TestOversizeRefused(t *testing.T) {
	sd := seedDefinition(t)
	if _, _, err := ParseDecryptionShare(make([]byte, maxShareSize(seedLens)+1), sd, seedLens); err == nil {
		t.Fatal("oversize decryption share accepted")
	}
	if _, err := ParseTally(make([]byte, MaxTallySize+1)); err == nil {
		t.Fatal("oversize tally accepted")
	}
	if _, _, err := ParseComplaints(make([]byte, MaxKeyGenMessage+1), sd); err == nil {
		t.Fatal("oversize complaints accepted")
	}
	if _, _, err := ParseAnswer(make([]byte, MaxKeyGenMessage+1), sd); err == nil {
		t.Fatal("oversize answer accepted")
	}
}
