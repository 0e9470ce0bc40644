package trustee

import (
	"crypto/rand"
	"errors"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/ballot"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

var electionID = []byte("election-2026")

// runDKG runs the joint Feldman key generation for p; dealer cheat (if non-zero) sends trustee
// 2 a wrong share and, on the complaint, cannot reveal a matching one, so it is disqualified.
func runDKG(t *testing.T, p Params, cheat int) (Qualified, map[int]*group.Scalar) {
	t.Helper()
	dealings := map[int]*Dealing{}
	for i := 1; i <= p.N; i++ {
		d, err := NewDealing(rand.Reader, p, i)
		if err != nil {
			t.Fatal(err)
		}
		dealings[i] = d
	}
	received := map[int]map[int]*group.Scalar{} // receiver -> dealer -> share
	q := Qualified{}
	for i, d := range dealings {
		disqualified := false
		for j := 1; j <= p.N; j++ {
			s := d.Share(j)
			if i == cheat && j == 2 {
				s = new(group.Scalar).Add(s, group.ScalarFromUint(1))
			}
			if received[j] == nil {
				received[j] = map[int]*group.Scalar{}
			}
			received[j][i] = s
			if err := VerifyShare(p, d.Commitments, j, s); err != nil {
				if !errors.Is(err, ErrBadShare) {
					t.Fatal(err)
				}
				// Complaint by j: the dealer's revealed share (the same wrong one) is checked publicly.
				if VerifyShare(p, d.Commitments, j, s) != nil {
					disqualified = true
				}
			}
		}
		if !disqualified {
			q[i] = d.Commitments
		}
		d.Wipe()
	}
	if cheat != 0 {
		if _, ok := q[cheat]; ok {
			t.Fatalf("cheating dealer %d not disqualified", cheat)
		}
	}
	keys := map[int]*group.Scalar{}
	for j := 1; j <= p.N; j++ {
		x, err := CombineShares(p, q, j, received[j])
		if err != nil {
			t.Fatal(err)
		}
		if !new(group.Element).BaseExp(x).Equal(q.VerificationKey(j)) {
			t.Fatalf("trustee %d: key share does not match its verification key", j)
		}
		keys[j] = x
	}
	return q, keys
}

// TestElection: 3-of-5 key with one cheating dealer, 30 ballots, three mixers, decryption by
// three trustees of which one gives a wrong share and a fourth steps in; the tally is correct.
func TestElection(t *testing.T) {
	p := Params{N: 5, T: 3}
	q, keys := runDKG(t, p, 4)
	pk := q.PublicKey()

	const n = 30
	want := map[int]int{}
	list := make([]verificatum.Ciphertext, n)
	for i := range list {
		cred := []byte{byte(i), 1, 2, 3}
		choice := i % 4
		b, err := ballot.Encrypt(rand.Reader, electionID, cred, pk, choice)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Verify(electionID, cred, pk); err != nil {
			t.Fatal(err)
		}
		list[i] = b.Ciphertext
		want[choice]++
	}

	pi := &verificatum.ProtInfo{Version: verificatum.Version, SID: "Election", StatDist: 100, VBitLenRO: 256,
		EBitLenRO: 256, PRG: "SHA-256", ROHash: "SHA-256", PGroup: group.Name, NoPart: 5, Thres: 3, KeyWidth: 1, Width: 1}
	sess, err := verificatum.NewSession(pi, "mix")
	if err != nil {
		t.Fatal(err)
	}
	h, err := sess.Generators(n)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		out, proof, err := sess.Shuffle(rand.Reader, h, pk, list)
		if err != nil {
			t.Fatal(err)
		}
		if err := sess.VerifyShuffle(h, pk, list, out, proof); err != nil {
			t.Fatal(err)
		}
		list = out
	}

	var shares []*DecryptionShare
	for _, j := range []int{1, 3, 5, 2} {
		s, err := Decrypt(rand.Reader, electionID, j, keys[j], list)
		if err != nil {
			t.Fatal(err)
		}
		shares = append(shares, s)
	}
	// Trustee 3 publishes a wrong factor for one ciphertext.
	shares[1].Factors[17] = new(group.Element).Mul(shares[1].Factors[17], group.Generator())
	if err := shares[1].Verify(electionID, q.VerificationKey(3), list); !errors.Is(err, ErrWrongShare) {
		t.Fatalf("wrong share: got %v", err)
	}
	plain, rejected, err := Combine(p, q, electionID, list, shares)
	if err != nil {
		t.Fatal(err)
	}
	if len(rejected) != 1 || !errors.Is(rejected[0], ErrWrongShare) {
		t.Fatalf("rejected = %v, want trustee 3's share", rejected)
	}
	got := map[int]int{}
	for _, m := range plain {
		c, err := ballot.DecodeChoice(m)
		if err != nil {
			t.Fatal(err)
		}
		got[c]++
	}
	for c, k := range want {
		if got[c] != k {
			t.Fatalf("tally %v, want %v", got, want)
		}
	}

	// With only two valid shares decryption is refused.
	if _, _, err := Combine(p, q, electionID, list, shares[:2]); err == nil {
		t.Fatal("decrypted with fewer than t valid shares")
	}
	// A repeated trustee does not count twice.
	if _, _, err := Combine(p, q, electionID, list, []*DecryptionShare{shares[0], shares[0], shares[2]}); err == nil {
		t.Fatal("decrypted with a repeated share")
	}
}

func TestParams(t *testing.T) {
	for _, p := range []Params{{0, 0}, {3, 4}, {MaxTrustees + 1, 2}, {3, 0}} {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

// TestDecryptProgress: the factors are counted up to the list's length, and the share is the
// same kind Decrypt makes (it verifies).
func TestDecryptProgress(t *testing.T) {
	x, err := group.RandomScalar(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	list := make([]verificatum.Ciphertext, 500)
	for i := range list {
		r, err := group.RandomScalar(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		list[i] = verificatum.Ciphertext{U: new(group.Element).BaseExp(r), V: group.Generator()}
	}
	last, calls := 0, 0
	s, err := DecryptProgress(rand.Reader, electionID, 2, x, list, func(done, total int) {
		if total != len(list) || done < last {
			t.Errorf("%d of %d after %d", done, total, last)
		}
		last = done
		calls++
	})
	if err != nil {
		t.Fatal(err)
	}
	if last != len(list) || calls < 1 {
		t.Fatalf("%d calls, last %d; want at least 1 ending at %d", calls, last, len(list))
	}
	if err := s.Verify(electionID, new(group.Element).BaseExp(x), list); err != nil {
		t.Fatal(err)
	}
}
