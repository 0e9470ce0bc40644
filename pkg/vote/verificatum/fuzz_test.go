package verificatum

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
)

// treeSeeds returns every .bt file under testdata (Verificatum's own proof directories).
func treeSeeds(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	for _, pat := range []string{"testdata/*/*.bt", "testdata/*/proofs/*.bt"} {
		files, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

func TestTreeSeedsNotEmpty(t *testing.T) {
	if len(treeSeeds(t)) == 0 {
		t.Fatal("no .bt files in testdata")
	}
}

var fuzzLimits = bytetree.Limits{MaxBytes: 1 << 20, MaxDepth: 8}

// FuzzListFromTree: any byte string that decodes as a ciphertext list re-encodes identically.
func FuzzListFromTree(f *testing.F) {
	for _, b := range treeSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := bytetree.Parse(b, fuzzLimits)
		if err != nil {
			return
		}
		if l, err := ListFromTree(tr); err == nil && !bytes.Equal(ListTree(l).Encode(), b) {
			t.Fatal("ciphertext list did not re-encode to the same bytes")
		}
		if es, err := ElementsFromTree(tr); err == nil && !bytes.Equal(ElementsTree(es).Encode(), b) {
			t.Fatal("point array did not re-encode to the same bytes")
		}
		if pk, err := PublicKeyFromTree(tr); err == nil && !bytes.Equal(pk.Tree().Encode(), b) {
			t.Fatal("public key did not re-encode to the same bytes")
		}
	})
}

// FuzzParseShuffleProof: a decoded commitment and reply re-encode identically.
func FuzzParseShuffleProof(f *testing.F) {
	dir := "testdata/shuffle-p256-n100/proofs/"
	c, err := os.ReadFile(dir + "PoSCommitment01.bt")
	if err != nil {
		f.Fatal(err)
	}
	r, err := os.ReadFile(dir + "PoSReply01.bt")
	if err != nil {
		f.Fatal(err)
	}
	u, err := os.ReadFile(dir + "PermutationCommitment01.bt")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(u, c, r)
	f.Fuzz(func(t *testing.T, ub, cb, rb []byte) {
		ut, err1 := bytetree.Parse(ub, fuzzLimits)
		ct, err2 := bytetree.Parse(cb, fuzzLimits)
		rt, err3 := bytetree.Parse(rb, fuzzLimits)
		if err1 != nil || err2 != nil || err3 != nil || ut.IsLeaf() {
			return
		}
		p, err := ParseShuffleProof(ut, ct, rt, ut.Len())
		if err != nil {
			return
		}
		if !bytes.Equal(p.CommitmentTree().Encode(), cb) || !bytes.Equal(p.ReplyTree().Encode(), rb) ||
			!bytes.Equal(ElementsTree(p.PermutationCommitment).Encode(), ub) {
			t.Fatal("proof did not re-encode to the same bytes")
		}
	})
}

// FuzzParseProtInfo: protInfo.xml is XML, so there is no byte-exact re-encoding; the property
// is that parsing never panics and whatever is accepted is within the supported parameters.
func FuzzParseProtInfo(f *testing.F) {
	for _, d := range []string{"shuffle-p256-n100", "mix-p256-3party-n100"} {
		b, err := os.ReadFile(filepath.Join("testdata", d, "protInfo.xml"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProtInfo(b)
		if err != nil {
			return
		}
		if p.Version != Version || p.PRG != "SHA-256" || p.Width != 1 || p.Thres > p.NoPart {
			t.Fatalf("accepted unsupported parameters %+v", p)
		}
	})
}
