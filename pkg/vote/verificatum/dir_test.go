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
