package verificatum

import (
	"crypto/rand"
	"errors"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
)

func testSession(t testing.TB) *Session {
	t.Helper()
	pi := &ProtInfo{Version: Version, SID: "Test", StatDist: 100, VBitLenRO: 256, EBitLenRO: 256,
		PRG: "SHA-256", ROHash: "SHA-256", PGroup: group.Name, NoPart: 1, Thres: 1, KeyWidth: 1, Width: 1}
	s, err := NewSession(pi, "unit")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomList(t testing.TB, pk PublicKey, n int) []Ciphertext {
	t.Helper()
	l := make([]Ciphertext, n)
	for i := range l {
		r, err := group.RandomScalar(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		m, err := group.RandomScalar(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		l[i] = pk.enc(r).Mul(Ciphertext{group.Identity(), new(group.Element).BaseExp(m)})
	}
	return l
}

func testKey(t testing.TB) (PublicKey, *group.Scalar) {
	t.Helper()
	x, err := group.RandomScalar(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return PublicKey{Y: new(group.Element).BaseExp(x)}, x
}

func TestShuffleRoundTrip(t *testing.T) {
	s := testSession(t)
	pk, _ := testKey(t)
	const n = 20
	in := randomList(t, pk, n)
	h, err := s.Generators(n)
	if err != nil {
		t.Fatal(err)
	}
	out, proof, err := s.Shuffle(rand.Reader, h, pk, in)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyShuffle(h, pk, in, out, proof); err != nil {
		t.Fatal(err)
	}
	// Replacing one output ciphertext must break the proof.
	bad := append([]Ciphertext(nil), out...)
	bad[3] = randomList(t, pk, 1)[0]
	if err := s.VerifyShuffle(h, pk, in, bad, proof); !errors.Is(err, ErrProofInvalid) {
		t.Fatalf("replaced ciphertext: got %v", err)
	}
}
