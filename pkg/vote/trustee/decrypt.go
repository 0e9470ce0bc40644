package trustee

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sync"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// decryptDomain separates the decryption proof's hashes from every other hash.
const decryptDomain = "panoramix vote decryption proof v1"

// ErrWrongShare is wrapped when a decryption share's proof fails.
var ErrWrongShare = errors.New("trustee: wrong decryption share")

// DecryptionShare is trustee Trustee's decryption factors d_i = u_i^(x_j) for a list of
// ciphertexts, with a batched Chaum-Pedersen proof (a, b, z) that log_g y_j = log_A B, where
// A = prod u_i^(e_i), B = prod d_i^(e_i) and e is derived from the statement (§8.2).
type DecryptionShare struct {
	Trustee int
	Factors []*group.Element
	A, B    *group.Element // proof commitments g^t, A^t
	Z       *group.Scalar
}

// statementSeed hashes everything the proof is about: election, trustee, its key, the list and
// the factors.
func statementSeed(electionID []byte, j int, yj *group.Element, list []verificatum.Ciphertext, factors []*group.Element) []byte {
	t := bytetree.Node(bytetree.String(decryptDomain), bytetree.Leaf(electionID), bytetree.Uint32(uint32(j)),
		yj.Tree(), verificatum.ListTree(list), verificatum.ElementsTree(factors))
	d := sha256.Sum256(t.Encode())
	return d[:]
}

// batch derives e_i from the seed with the SHA-256 PRG of docs/spec/vote.md §3.1, 32 bytes each.
func batch(seed []byte, n int) []*group.Scalar {
	prg, err := verificatum.NewPRG(seed)
	if err != nil {
		panic(err) // unreachable: a SHA-256 digest is a full seed
	}
	e := make([]*group.Scalar, n)
	b := make([]byte, 32)
	for i := range e {
		prg.Read(b)
		e[i] = group.ScalarFromBig(new(big.Int).SetBytes(b))
	}
	return e
}

func proofChallenge(seed []byte, a, b *group.Element) *group.Scalar {
	t := bytetree.Node(bytetree.Leaf(seed), a.Tree(), b.Tree())
	d := sha256.Sum256(t.Encode())
	return group.ScalarFromBig(new(big.Int).SetBytes(d[:]))
}

func firstComponents(list []verificatum.Ciphertext) []*group.Element {
	us := make([]*group.Element, len(list))
	for i, c := range list {
		us[i] = c.U
	}
	return us
}

// Decrypt computes trustee j's decryption share of list with key share xj, on all cores.
func Decrypt(rand io.Reader, electionID []byte, j int, xj *group.Scalar, list []verificatum.Ciphertext) (*DecryptionShare, error) {
	return DecryptProgress(rand, electionID, j, xj, list, nil)
}

// DecryptProgress is Decrypt with a progress callback for progress bars: progress (when not nil)
// is called with the number of decryption factors computed so far and len(list), one call at a
// time (possibly from different goroutines), done never decreasing and reaching len(list).
func DecryptProgress(rand io.Reader, electionID []byte, j int, xj *group.Scalar, list []verificatum.Ciphertext, progress func(done, total int)) (*DecryptionShare, error) {
	if len(list) == 0 {
		return nil, fmt.Errorf("trustee: empty list")
	}
	f := make([]*group.Element, len(list))
	var mu sync.Mutex
	done := 0
	group.Parallel(len(list), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			f[i] = new(group.Element).Exp(list[i].U, xj)
		}
		if progress != nil {
			mu.Lock()
			done += hi - lo
			progress(done, len(list))
			mu.Unlock()
		}
	})
	yj := new(group.Element).BaseExp(xj)
	seed := statementSeed(electionID, j, yj, list, f)
	e := batch(seed, len(list))
	bigA := group.MultiExpVarTime(firstComponents(list), e) // e and the u_i are public
	t, err := group.RandomScalar(rand)
	if err != nil {
		return nil, err
	}
	defer t.Wipe()
	a := new(group.Element).BaseExp(t)
	b := new(group.Element).Exp(bigA, t)
	c := proofChallenge(seed, a, b)
	z := new(group.Scalar).Mul(c, xj)
	z.Add(z, t)
	return &DecryptionShare{Trustee: j, Factors: f, A: a, B: b, Z: z}, nil
}

// Verify checks the share against trustee j's verification key yj (§8.2):
// g^z = a yj^c and A^z = b B^c.
func (s *DecryptionShare) Verify(electionID []byte, yj *group.Element, list []verificatum.Ciphertext) error {
	if len(s.Factors) != len(list) {
		return fmt.Errorf("%w: trustee %d gave %d factors for %d ciphertexts", ErrWrongShare, s.Trustee, len(s.Factors), len(list))
	}
	seed := statementSeed(electionID, s.Trustee, yj, list, s.Factors)
	e := batch(seed, len(list))
	// e is public: the variable-time bucket method is safe here.
	bigA := group.MultiExpVarTime(firstComponents(list), e)
	bigB := group.MultiExpVarTime(s.Factors, e)
	c := proofChallenge(seed, s.A, s.B)
	l := new(group.Element).BaseExp(s.Z)
	r := new(group.Element).Exp(yj, c)
	if !l.Equal(r.Mul(r, s.A)) {
		return fmt.Errorf("%w: trustee %d: g^z != a y_j^c (proof does not match its key)", ErrWrongShare, s.Trustee)
	}
	l.Exp(bigA, s.Z)
	r.Exp(bigB, c)
	if !l.Equal(r.Mul(r, s.B)) {
		return fmt.Errorf("%w: trustee %d: decryption factors do not match its key share", ErrWrongShare, s.Trustee)
	}
	return nil
}

// Combine verifies the shares against the trustees' verification keys and, with at least T
// valid shares from distinct trustees, returns the plaintexts m_i = v_i / prod d_{j,i}^lambda_j.
// rejected holds one error per refused share (each wrapping ErrWrongShare or naming the
// trustee); decryption succeeds as long as T valid shares remain.
func Combine(p Params, q Qualified, electionID []byte, list []verificatum.Ciphertext, shares []*DecryptionShare) (plaintexts []*group.Element, rejected []error, err error) {
	if err := p.Validate(); err != nil {
		return nil, nil, err
	}
	var valid []*DecryptionShare
	var errs []error
	seen := map[int]bool{}
	for _, s := range shares {
		if s.Trustee < 1 || s.Trustee > p.N || seen[s.Trustee] {
			errs = append(errs, fmt.Errorf("trustee: share from trustee %d refused (unknown or repeated)", s.Trustee))
			continue
		}
		seen[s.Trustee] = true
		if err := s.Verify(electionID, q.VerificationKey(s.Trustee), list); err != nil {
			errs = append(errs, err)
			continue
		}
		valid = append(valid, s)
	}
	if len(valid) < p.T {
		return nil, errs, fmt.Errorf("trustee: %d valid decryption shares, need %d: %w", len(valid), p.T, errors.Join(errs...))
	}
	valid = valid[:p.T]
	set := make([]int, len(valid))
	for i, s := range valid {
		set[i] = s.Trustee
	}
	// Interpolation at 0 over the trustees that gave the valid shares, in valid's order.
	lambdas := verificatum.Lagrange(set)
	out := make([]*group.Element, len(list))
	group.Parallel(len(list), func(lo, hi int) {
		t := new(group.Element)
		for i := lo; i < hi; i++ {
			d := group.Identity()
			for k, s := range valid {
				d.Mul(d, t.Exp(s.Factors[i], lambdas[k]))
			}
			out[i] = new(group.Element).Mul(list[i].V, d.Inv(d))
		}
	})
	return out, errs, nil
}
