package verificatum

import (
	"crypto/rand"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
)

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestOurShuffleHasVerificatumShape shuffles Verificatum's own input with Verificatum's own
// protInfo.xml and checks that the directory we write (1) verifies with our verifier, which
// accepts Verificatum's proofs, and (2) has exactly the files of Verificatum's directory, each
// with the same byte tree shape. Together these are what vmnv checks.
func TestOurShuffleHasVerificatumShape(t *testing.T) {
	ref := filepath.Join("testdata", "shuffle-p256-n100")
	protInfo, err := os.ReadFile(filepath.Join(ref, "protInfo.xml"))
	if err != nil {
		t.Fatal(err)
	}
	pi, err := ParseProtInfo(protInfo)
	if err != nil {
		t.Fatal(err)
	}
	pkT, err := readTree(filepath.Join(ref, "FullPublicKey.bt"))
	if err != nil {
		t.Fatal(err)
	}
	pk, err := PublicKeyFromTree(pkT)
	if err != nil {
		t.Fatal(err)
	}
	in, err := readList(filepath.Join(ref, "Ciphertexts.bt"))
	if err != nil {
		t.Fatal(err)
	}
	const auxsid = "s100"
	sess, err := NewSession(pi, auxsid)
	if err != nil {
		t.Fatal(err)
	}
	h, err := sess.Generators(len(in))
	if err != nil {
		t.Fatal(err)
	}
	out, proof, err := sess.Shuffle(rand.Reader, h, pk, in)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ours")
	if err := WriteShuffleDir(dir, protInfo, auxsid, pk, in, []Mixing{{out, proof}}); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyDir(dir, protInfo); err != nil {
		t.Fatalf("our own directory does not verify: %v", err)
	}
	gotFiles, wantFiles := listFiles(t, dir), listFiles(t, ref)
	if strings.Join(gotFiles, " ") != strings.Join(wantFiles, " ") {
		t.Fatalf("files differ:\n ours %v\n vmn  %v", gotFiles, wantFiles)
	}
	for _, f := range wantFiles {
		if !strings.HasSuffix(f, ".bt") {
			want, _ := os.ReadFile(filepath.Join(ref, f))
			got, _ := os.ReadFile(filepath.Join(dir, f))
			if string(got) != string(want) {
				t.Errorf("%s: %q, Verificatum wrote %q", f, got, want)
			}
			continue
		}
		gotT, err := readTree(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		wantT, err := readTree(filepath.Join(ref, f))
		if err != nil {
			t.Fatal(err)
		}
		if treeShape(gotT) != treeShape(wantT) {
			t.Errorf("%s: shape %s, Verificatum's %s", f, treeShape(gotT), treeShape(wantT))
		}
	}
}

func TestTwoMixers(t *testing.T) {
	pk, _ := testKey(t)
	in := randomList(t, pk, 8)
	protInfo, err := os.ReadFile(filepath.Join("testdata", "mix-p256-3party-n100", "protInfo.xml"))
	if err != nil {
		t.Fatal(err)
	}
	pi, err := ParseProtInfo(protInfo)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := NewSession(pi, "unit")
	if err != nil {
		t.Fatal(err)
	}
	h, err := sess.Generators(len(in))
	if err != nil {
		t.Fatal(err)
	}
	mid, p1, err := sess.Shuffle(rand.Reader, h, pk, in)
	if err != nil {
		t.Fatal(err)
	}
	out, p2, err := sess.Shuffle(rand.Reader, h, pk, mid)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "two")
	if err := WriteShuffleDir(dir, protInfo, "unit", pk, in, []Mixing{{mid, p1}, {out, p2}}); err != nil {
		t.Fatal(err)
	}
	res, err := VerifyDir(dir, protInfo)
	if err != nil || len(res.Mixers) != 2 {
		t.Fatalf("two mixers: %v %+v", err, res)
	}
	// The second mixer's proof does not prove a shuffle of the original input.
	if err := os.WriteFile(filepath.Join(dir, "proofs", "Ciphertexts01.bt"), ListTree(in).Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyDir(dir, protInfo); err == nil || !strings.Contains(err.Error(), "mixer 01") || !strings.Contains(err.Error(), "mixer 02") {
		t.Fatalf("swapped intermediate list: got %v", err)
	}
}

func TestVerifyDirLimits(t *testing.T) {
	ref := filepath.Join("testdata", "shuffle-p256-n100")
	dir := t.TempDir()
	for _, f := range listFiles(t, ref) {
		b, _ := os.ReadFile(filepath.Join(ref, f))
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	protInfo, _ := os.ReadFile(filepath.Join(ref, "protInfo.xml"))
	if _, err := VerifyDir(dir, protInfo); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "auxsid"), make([]byte, MaxSmallFile+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyDir(dir, protInfo); err == nil || !strings.Contains(err.Error(), "exceeds the limit") {
		t.Fatalf("oversize auxsid: got %v", err)
	}
	if _, err := ParseProtInfo(make([]byte, MaxProtInfoSize+1)); err == nil {
		t.Fatal("oversize protInfo.xml accepted")
	}
	// A list declaring more than MaxCiphertexts entries is refused before any point is decoded.
	kids := make([]*bytetree.Tree, MaxCiphertexts+1)
	empty := bytetree.Node()
	for i := range kids {
		kids[i] = empty
	}
	if _, err := ListFromTree(bytetree.Node(bytetree.Node(kids...), bytetree.Node(kids...))); err == nil || !strings.Contains(err.Error(), "exceeds the limit") {
		t.Fatalf("oversize list: got %v", err)
	}
}
