package ballot

import (
	"bytes"
	"crypto/rand"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/*.ballot")

var (
	election = []byte("election-2026")
	alice    = bytes.Repeat([]byte{0xa1}, 32)
	mallory  = bytes.Repeat([]byte{0x66}, 32)
)

func testKey(t testing.TB) verificatum.PublicKey {
	t.Helper()
	x, err := group.RandomScalar(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return verificatum.PublicKey{Y: new(group.Element).BaseExp(x)}
}

func TestWriteSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-seeds to regenerate testdata")
	}
	pk := testKey(t)
	for i, choice := range []int{0, 3, MaxChoices - 1} {
		b, err := Encrypt(rand.Reader, election, alice, pk, choice)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", []string{"a", "b", "c"}[i]+".ballot"), b.Encode(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func seeds(t testing.TB) [][]byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("testdata", "*.ballot"))
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestSeedsNotEmpty(t *testing.T) {
	if len(seeds(t)) == 0 {
		t.Fatal("no seed ballots in testdata")
	}
}

func TestEncryptVerifyDecode(t *testing.T) {
	pk := testKey(t)
	b, err := Encrypt(rand.Reader, election, alice, pk, 42)
	if err != nil {
		t.Fatal(err)
	}
	enc := b.Encode()
	if len(enc) != MaxEncodedLen {
		t.Fatalf("encoded ballot of %d bytes, want %d", len(enc), MaxEncodedLen)
	}
	got, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(election, alice, pk); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Encode(), enc) {
		t.Fatal("re-encoding differs")
	}
}

func TestCopiedBallotRefused(t *testing.T) {
	pk := testKey(t)
	b, err := Encrypt(rand.Reader, election, alice, pk, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Copied as is under another credential, or into another election.
	if err := b.Verify(election, mallory, pk); !errors.Is(err, ErrInvalid) {
		t.Fatalf("copied ballot: got %v", err)
	}
	if err := b.Verify([]byte("other-election"), alice, pk); !errors.Is(err, ErrInvalid) {
		t.Fatalf("other election: got %v", err)
	}
	// Re-randomised: (u g^s, v y^s) keeps the plaintext, but the proof no longer fits.
	s, _ := group.RandomScalar(rand.Reader)
	rr := *b
	rr.Ciphertext = verificatum.Ciphertext{
		U: new(group.Element).Mul(b.Ciphertext.U, new(group.Element).BaseExp(s)),
		V: new(group.Element).Mul(b.Ciphertext.V, new(group.Element).Exp(pk.Y, s)),
	}
	if err := rr.Verify(election, alice, pk); !errors.Is(err, ErrInvalid) {
		t.Fatalf("re-randomised ballot: got %v", err)
	}
	// A ballot of mallory's own still verifies.
	m, err := Encrypt(rand.Reader, election, mallory, pk, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Verify(election, mallory, pk); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeRefuses(t *testing.T) {
	pk := testKey(t)
	b, err := Encrypt(rand.Reader, election, alice, pk, 7)
	if err != nil {
		t.Fatal(err)
	}
	enc := b.Encode()
	if _, err := Decode(append(enc, 0)); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversize: got %v", err)
	}
	if _, err := Decode(enc[:len(enc)-1]); !errors.Is(err, ErrInvalid) {
		t.Errorf("short: got %v", err)
	}
	// Flip a bit of u's y coordinate: no longer a point of P-256.
	bad := append([]byte(nil), enc...)
	bad[5+5+5+5+33+5+32] ^= 1
	if _, err := Decode(bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("off-curve point: got %v", err)
	}
	if _, err := Encrypt(rand.Reader, election, alice, pk, MaxChoices); err == nil {
		t.Error("choice out of range accepted")
	}
	if _, err := Encrypt(rand.Reader, election, make([]byte, MaxCredentialLen+1), pk, 0); err == nil {
		t.Error("oversize credential accepted")
	}
}

func TestChoiceEncoding(t *testing.T) {
	for _, c := range []int{0, 1, 999} {
		m, err := EncodeChoice(c)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeChoice(m)
		if err != nil || got != c {
			t.Fatalf("choice %d decoded as %d (%v)", c, got, err)
		}
	}
	if _, err := DecodeChoice(group.Identity()); err == nil {
		t.Fatal("identity decoded as a choice")
	}
}

func FuzzDecode(f *testing.F) {
	for _, b := range seeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		b, err := Decode(p)
		if err != nil {
			return
		}
		if !bytes.Equal(b.Encode(), p) {
			t.Fatal("decoded ballot did not re-encode to the same bytes")
		}
	})
}

// BenchmarkVerify is the ballot box's per-ballot cost: decode and check the proof.
func BenchmarkVerify(b *testing.B) {
	pk := testKey(b)
	bl, err := Encrypt(rand.Reader, election, alice, pk, 3)
	if err != nil {
		b.Fatal(err)
	}
	enc := bl.Encode()
	for b.Loop() {
		d, err := Decode(enc)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Verify(election, alice, pk); err != nil {
			b.Fatal(err)
		}
	}
}
