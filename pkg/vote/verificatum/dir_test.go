package verificatum

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func verifyTestDir(t *testing.T, name string) (*DirResult, error) {
	t.Helper()
	dir := filepath.Join("testdata", name)
	pi, err := os.ReadFile(filepath.Join(dir, "protInfo.xml"))
	if err != nil {
		t.Fatal(err)
	}
	return VerifyDir(dir, pi)
}

func TestVerifyDirAcceptsVerificatumShuffle(t *testing.T) {
	res, err := verifyTestDir(t, "shuffle-p256-n100")
	if err != nil {
		t.Fatal(err)
	}
	if res.Ciphertexts != 100 || len(res.Mixers) != 1 || !res.OutputMatches {
		t.Fatalf("unexpected result %+v", res)
	}
}

func TestVerifyDirAcceptsVerificatumMix(t *testing.T) {
	res, err := verifyTestDir(t, "mix-p256-3party-n100")
	if err != nil {
		t.Fatal(err)
	}
	if res.Ciphertexts != 100 || len(res.Mixers) != 2 || res.Type != "mixing" {
		t.Fatalf("unexpected result %+v", res)
	}
}

func TestVerifyDirRejectsBadShuffle(t *testing.T) {
	res, err := verifyTestDir(t, "shuffle-p256-n100-bad")
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v, want a proof failure", err)
	}
	if res == nil || len(res.Mixers) != 1 || !errors.Is(res.Mixers[0].Err, ErrProofInvalid) {
		t.Fatalf("unexpected result %+v", res)
	}
	if !strings.Contains(err.Error(), "mixer 01") || !strings.Contains(err.Error(), "5 of 5 verification equations fail") {
		t.Fatalf("error does not name the mixer: %v", err)
	}
	t.Log(err)
}

// TestVerifyDirProgress: Verificatum's two-mixer directory reports each mixer's proof up to 9N.
func TestVerifyDirProgress(t *testing.T) {
	dir := filepath.Join("testdata", "mix-p256-3party-n100")
	pi, err := os.ReadFile(filepath.Join(dir, "protInfo.xml"))
	if err != nil {
		t.Fatal(err)
	}
	last := map[int]int{}
	if _, err := VerifyDirProgress(dir, pi, func(mixer, done, total int) {
		if total != 900 || done < last[mixer] {
			t.Errorf("mixer %d: %d of %d after %d", mixer, done, total, last[mixer])
		}
		last[mixer] = done
	}); err != nil {
		t.Fatal(err)
	}
	if len(last) != 2 || last[1] != 900 || last[2] != 900 {
		t.Fatalf("last progress by mixer %v, want 900 for mixers 1 and 2", last)
	}
}

// TestVerifyDirRefusesFewerShufflesThanThreshold: Verificatum's valid two-shuffle directory
// under a protInfo.xml with threshold 3 is refused, as vmnv refuses it ("Active threshold is
// smaller than threshold!"): we accepted it before (issue 15), so records that vmnv refuses
// passed our verifier.
func TestVerifyDirRefusesFewerShufflesThanThreshold(t *testing.T) {
	dir := filepath.Join("testdata", "mix-p256-3party-n100")
	pi, err := os.ReadFile(filepath.Join(dir, "protInfo.xml"))
	if err != nil {
		t.Fatal(err)
	}
	pi3 := strings.Replace(string(pi), "<thres>2</thres>", "<thres>3</thres>", 1)
	if pi3 == string(pi) {
		t.Fatal("the reference protInfo.xml has no <thres>2</thres>")
	}
	_, err = VerifyDir(dir, []byte(pi3))
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "active threshold 2 is smaller than the threshold 3") {
		t.Fatalf("got %v, want the active threshold refused", err)
	}
}

// TestVerifyDirChecksVerificatumDecryption: in Verificatum's own "mixing" directory, the
// decryption is verified and its plaintexts returned; one decryption factor of party 2
// swapped with another (valid points) is refused, as vmnv refuses it. Before issue 15 our
// verifier did not read the decryption at all and accepted such a copy.
func TestVerifyDirChecksVerificatumDecryption(t *testing.T) {
	src := filepath.Join("testdata", "mix-p256-3party-n100")
	pi, err := os.ReadFile(filepath.Join(src, "protInfo.xml"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := VerifyDir(src, pi)
	if err != nil || len(res.Plaintexts) != 100 {
		t.Fatalf("valid directory: %v", err)
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "proofs", "DecryptionFactors02.bt")
	tr, err := readTree(path)
	if err != nil {
		t.Fatal(err)
	}
	es, err := ElementsFromTree(tr)
	if err != nil {
		t.Fatal(err)
	}
	es[0], es[1] = es[1], es[0]
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, ElementsTree(es).Encode(), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyDir(dir, pi); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "decryption factors of party 02") {
		t.Fatalf("tampered factor: %v", err)
	}
}
