package verificatum

import (
	"crypto/rand"
	"errors"
	"strings"
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

// TestShuffleDetectsMixerCheating covers the three ways a mixer could change the ballots: each
// must make the verifier fail with a precise error.
func TestShuffleDetectsMixerCheating(t *testing.T) {
	s := testSession(t)
	pk, _ := testKey(t)
	const n = 12
	in := randomList(t, pk, n)
	h, err := s.Generators(n)
	if err != nil {
		t.Fatal(err)
	}
	out, proof, err := s.Shuffle(rand.Reader, h, pk, in)
	if err != nil {
		t.Fatal(err)
	}
	replaced := append([]Ciphertext(nil), out...)
	replaced[5] = randomList(t, pk, 1)[0]
	duplicated := append([]Ciphertext(nil), out...)
	duplicated[7] = duplicated[2]
	// A re-encryption of another output: same plaintext multiset size, still a duplicate vote.
	reencDup := append([]Ciphertext(nil), out...)
	r, _ := group.RandomScalar(rand.Reader)
	reencDup[7] = out[2].Mul(pk.enc(r))
	for name, bad := range map[string][]Ciphertext{"replaced": replaced, "duplicated": duplicated, "re-encrypted duplicate": reencDup} {
		if err := s.VerifyShuffle(h, pk, in, bad, proof); !errors.Is(err, ErrProofInvalid) {
			t.Errorf("%s: got %v", name, err)
		}
	}
	// Dropped: one ciphertext fewer is refused before any equation.
	if err := s.VerifyShuffle(h, pk, in, out[:n-1], proof); !errors.Is(err, ErrFormat) {
		t.Errorf("dropped: got %v", err)
	}
	// A mixer that proves an honest shuffle of n-1 inputs and adds a ballot of its own cannot
	// reuse that proof for the n-ciphertext statement.
	out2, proof2, err := s.Shuffle(rand.Reader, h[:n-1], pk, in[:n-1])
	if err != nil {
		t.Fatal(err)
	}
	stuffed := append(out2, randomList(t, pk, 1)[0])
	if err := s.VerifyShuffle(h, pk, in, stuffed, proof2); err == nil {
		t.Error("stuffed: accepted")
	}
}

// TestBatchedBEquations: a single wrong k_B,i (which enters no challenge) fails only equation
// (2), and the verifier names that i.
func TestBatchedBEquations(t *testing.T) {
	s := testSession(t)
	pk, _ := testKey(t)
	const n = 40
	in := randomList(t, pk, n)
	h, err := s.Generators(n)
	if err != nil {
		t.Fatal(err)
	}
	out, proof, err := s.Shuffle(rand.Reader, h, pk, in)
	if err != nil {
		t.Fatal(err)
	}
	proof.KB[23] = new(group.Scalar).Add(proof.KB[23], group.ScalarFromUint(1))
	err = s.VerifyShuffle(h, pk, in, out, proof)
	if !errors.Is(err, ErrProofInvalid) || !strings.Contains(err.Error(), "1 of 5") || !strings.Contains(err.Error(), "first failing i = 23") {
		t.Fatalf("got %v", err)
	}
}

// TestProgress: Shuffle and VerifyShuffle report done up to total (10N and 9N), never going
// back, and a nil Progress is allowed (every other test).
func TestProgress(t *testing.T) {
	const n = 300
	s := testSession(t)
	pk, _ := testKey(t)
	in := randomList(t, pk, n)
	h, err := s.Generators(n)
	if err != nil {
		t.Fatal(err)
	}
	var calls, last, lastTotal int
	s.Progress = func(done, total int) {
		if done < last || done > total {
			t.Errorf("progress %d of %d after %d", done, total, last)
		}
		calls++
		last, lastTotal = done, total
	}
	out, p, err := s.Shuffle(rand.Reader, h, pk, in)
	if err != nil {
		t.Fatal(err)
	}
	if calls < 5 || last != 10*n || lastTotal != 10*n {
		t.Fatalf("shuffle: %d calls, last %d of %d; want at least 5, ending at %d", calls, last, lastTotal, 10*n)
	}
	calls, last = 0, 0
	if err := s.VerifyShuffle(h, pk, in, out, p); err != nil {
		t.Fatal(err)
	}
	if calls != 9 || last != 9*n || lastTotal != 9*n {
		t.Fatalf("verify: %d calls, last %d of %d; want 9 ending at %d", calls, last, lastTotal, 9*n)
	}
}
