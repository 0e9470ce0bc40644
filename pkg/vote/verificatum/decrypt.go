package verificatum

import (
	"errors"
	"fmt"
	"math/big"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
)

// Threshold decryption in Verificatum's format (docs/spec/vote.md §6.3). The parties' key
// shares x_l are the evaluations at l = 1..n of a polynomial whose coefficients are
// published in the exponent (PolynomialInExponent.bt, C_0..C_{t-1}, y = C_0, y_l = g^(x_l)).
// Verificatum scales by Δ = lcm(1..n)^2 mod q so that combining uses integer coefficients:
// party l's decryption factors are f_{l,i} = u_i^(-x_l/Δ), the t first correct parties S
// combine them with μ_j = Δ λ_j (λ_j the Lagrange coefficients of S at 0) into
// prod f_j^(μ_j) = u^(-x), and m_i = v_i prod_j f_{j,i}^(μ_j). Each party proves its factors
// with a batched Chaum-Pedersen proof. Its batching seed binds every party's factors and its
// challenge every party's commitment, so the proofs take three rounds: factors,
// commitments, replies.

// ErrDecryptionInvalid is wrapped when a well-formed proof of decryption factors fails.
var ErrDecryptionInvalid = errors.New("verificatum: proof of decryption factors invalid")

// PartyKeys returns y_1..y_n, y_l = prod_k C_k^(l^k), the parties' verification keys.
func PartyKeys(poly []*group.Element, n int) []*group.Element {
	ys := make([]*group.Element, n)
	for l := 1; l <= n; l++ {
		y := group.Identity()
		pow := group.ScalarFromUint(1)
		for _, c := range poly {
			y.Mul(y, new(group.Element).Exp(c, pow))
			pow.Mul(pow, group.ScalarFromUint(uint(l)))
		}
		ys[l-1] = y
	}
	return ys
}

// Delta returns Δ = lcm(1..n)^2 mod q, Verificatum's scaling of decryption factors for n
// parties.
func Delta(n int) *group.Scalar {
	l := big.NewInt(1)
	for i := 2; i <= n; i++ {
		b := big.NewInt(int64(i))
		g := new(big.Int).GCD(nil, nil, l, b)
		l.Mul(l, b.Div(b, g))
	}
	return group.ScalarFromBig(l.Mul(l, l).Mod(l, group.Order()))
}

func invScalar(s *group.Scalar) *group.Scalar {
	return group.ScalarFromBig(new(big.Int).ModInverse(s.Big(), group.Order()))
}

// DecryptionFactors returns party l's factors u_i^(-x/Δ) of the list, x its key share and n
// the number of parties, in constant time per factor since x is secret.
func DecryptionFactors(x *group.Scalar, n int, l []Ciphertext) []*group.Element {
	e := new(group.Scalar).Mul(x, invScalar(Delta(n)))
	e.Neg(e)
	f := make([]*group.Element, len(l))
	group.Parallel(len(l), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			f[i] = new(group.Element).Exp(l[i].U, e)
		}
	})
	e.Wipe()
	return f
}

// DecryptionSeed is the batching seed of the proofs of decryption factors:
// RO(ρ | node(node(g, L), node(poly, node(f_1..f_n)))), every party's factors in order.
func (s *Session) DecryptionSeed(l []Ciphertext, poly []*group.Element, factors [][]*group.Element) []byte {
	fs := make([]*bytetree.Tree, len(factors))
	for i, f := range factors {
		fs[i] = ElementsTree(f)
	}
	t := bytetree.Node(
		bytetree.Node(group.Generator().Tree(), ListTree(l)),
		bytetree.Node(ElementsTree(poly), bytetree.Node(fs...)),
	)
	return s.oracle(SeedLen*8, t)
}

// DecryptionChallenge is v = RO(ρ | node(leaf(seed), node(τ_1..τ_n))), τ_l party l's
// commitment node(y'_l, B'_l).
func (s *Session) DecryptionChallenge(seed []byte, commitments []*DecryptionCommitment) *group.Scalar {
	ts := make([]*bytetree.Tree, len(commitments))
	for i, c := range commitments {
		ts[i] = c.Tree()
	}
	v := s.oracle(s.VBits, bytetree.Node(bytetree.Leaf(seed), bytetree.Node(ts...)))
	return group.ScalarFromBig(new(big.Int).SetBytes(v))
}

// batchedU returns A = prod u_i^(e_i) with e from the seed (public exponents).
func (s *Session) batchedU(seed []byte, l []Ciphertext) (*group.Element, []*group.Scalar, error) {
	e, err := s.batchingVector(seed, len(l))
	if err != nil {
		return nil, nil, err
	}
	us, _ := components(l)
	return group.MultiExpVarTime(us, e), e, nil
}

// DecryptionCommitment is a party's commitment node(y'_l, B'_l) (DecrFactCommitmentNN.bt).
type DecryptionCommitment struct{ YPrime, BPrime *group.Element }

// Tree encodes node(y', B').
func (c *DecryptionCommitment) Tree() *bytetree.Tree {
	return bytetree.Node(c.YPrime.Tree(), c.BPrime.Tree())
}

// DecryptionCommitmentFromTree decodes node(y', B').
func DecryptionCommitmentFromTree(t *bytetree.Tree) (*DecryptionCommitment, error) {
	if t.IsLeaf() || t.Len() != 2 {
		return nil, fmt.Errorf("%w: a decryption commitment must be a node of two points", ErrFormat)
	}
	y, err := group.ElementFromTree(t.Children()[0])
	if err != nil {
		return nil, err
	}
	b, err := group.ElementFromTree(t.Children()[1])
	if err != nil {
		return nil, err
	}
	return &DecryptionCommitment{y, b}, nil
}

// DecryptionCommitmentFor is party l's second round: with the seed of every party's factors
// and its secret random r (drawn with group.RandomScalar, kept until the reply and never used
// for another challenge), the commitment (g^r, A^r).
func (s *Session) DecryptionCommitmentFor(seed []byte, l []Ciphertext, r *group.Scalar) (*DecryptionCommitment, error) {
	a, _, err := s.batchedU(seed, l)
	if err != nil {
		return nil, err
	}
	return &DecryptionCommitment{new(group.Element).BaseExp(r), new(group.Element).Exp(a, r)}, nil
}

// ReplyDecryption is party l's third round: k = r - x v / Δ mod q, n the number of parties.
func ReplyDecryption(r, x, v *group.Scalar, n int) *group.Scalar {
	k := new(group.Scalar).Mul(x, v)
	k.Mul(k, invScalar(Delta(n)))
	return k.Sub(r, k)
}

// VerifyDecryptionFactors checks party l's proof, n the number of parties:
// (y_l^-1)^(v/Δ) y'_l = g^k and B_l^v B'_l = A^k, with A = prod u_i^(e_i) and
// B_l = prod f_{l,i}^(e_i).
func (s *Session) VerifyDecryptionFactors(seed []byte, v *group.Scalar, n int, l []Ciphertext, y *group.Element, f []*group.Element, c *DecryptionCommitment, k *group.Scalar) error {
	if len(f) != len(l) {
		return fmt.Errorf("%w: %d decryption factors for %d ciphertexts", ErrFormat, len(f), len(l))
	}
	a, e, err := s.batchedU(seed, l)
	if err != nil {
		return err
	}
	b := group.MultiExpVarTime(f, e)
	var failed []string
	vd := new(group.Scalar).Mul(v, invScalar(Delta(n)))
	lhs := new(group.Element).Exp(new(group.Element).Inv(y), vd)
	if !lhs.Mul(lhs, c.YPrime).Equal(new(group.Element).BaseExp(k)) {
		failed = append(failed, "(y_l^-1)^(v/Δ) y'_l = g^k_l")
	}
	lhs.Exp(b, v).Mul(lhs, c.BPrime)
	if !lhs.Equal(new(group.Element).Exp(a, k)) {
		failed = append(failed, "B_l^v B'_l = A^k_l")
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w: %v", ErrDecryptionInvalid, failed)
	}
	return nil
}

// Lagrange returns the coefficients lambda_j = prod_{k in S, k != j} k/(k - j) mod q for the
// distinct party indices S, in S's order.
func Lagrange(s []int) []*group.Scalar {
	q := group.Order()
	out := make([]*group.Scalar, len(s))
	for i, j := range s {
		num, den := big.NewInt(1), big.NewInt(1)
		for _, k := range s {
			if k == j {
				continue
			}
			num.Mul(num, big.NewInt(int64(k)))
			den.Mul(den, big.NewInt(int64(k-j)))
		}
		den.Mod(den, q)
		num.Mul(num, den.ModInverse(den, q))
		out[i] = group.ScalarFromBig(num.Mod(num, q))
	}
	return out
}

// CombinePlaintexts returns m_i = v_i prod_{j in S} f_{j,i}^(Δ λ_j): the plaintexts from the
// factors (factors[j-1] for party j) of the parties S (1-based, exactly the threshold many),
// n the number of parties.
func CombinePlaintexts(l []Ciphertext, s []int, n int, factors [][]*group.Element) []*group.Element {
	mu := Lagrange(s)
	d := Delta(n)
	for _, m := range mu {
		m.Mul(m, d)
	}
	m := make([]*group.Element, len(l))
	group.Parallel(len(l), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			acc := new(group.Element).Set(l[i].V)
			for x, j := range s {
				acc.Mul(acc, new(group.Element).Exp(factors[j-1][i], mu[x]))
			}
			m[i] = acc
		}
	})
	return m
}
