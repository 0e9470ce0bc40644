// Package trustee implements the election trustees' cryptography (docs/spec/vote.md §8): a joint
// Feldman distributed key generation with public complaints, giving a t-of-n threshold ElGamal
// key, and threshold decryption where each trustee publishes decryption factors with a batched
// Chaum-Pedersen proof that they match its verification key.
//
// Transport (how shares reach trustees privately, how complaints are published) is the
// caller's; this package only computes and checks.
package trustee

import (
	"errors"
	"fmt"
	"io"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/verificatum"
)

// MaxTrustees bounds n (the index of a trustee is 1..n).
const MaxTrustees = 64

// ErrBadShare is wrapped when a share does not match its dealer's commitments: the receiving
// trustee complains, and the dealer is disqualified unless it reveals a share that matches.
var ErrBadShare = errors.New("trustee: share does not match the dealer's commitments")

// Params are the threshold parameters: N trustees, any T of whom can decrypt.
type Params struct{ N, T int }

// Validate checks 1 <= T <= N <= MaxTrustees.
func (p Params) Validate() error {
	if p.T < 1 || p.T > p.N || p.N > MaxTrustees {
		return fmt.Errorf("trustee: threshold %d of %d outside 1 <= t <= n <= %d", p.T, p.N, MaxTrustees)
	}
	return nil
}

// Dealing is one trustee's contribution to the key: a random polynomial f of degree T-1, the
// public commitments A_k = g^(a_k), and the private shares f(j) for j = 1..N.
type Dealing struct {
	Dealer      int
	Commitments []*group.Element // public
	coeffs      []*group.Scalar
}

// NewDealing draws the dealer's polynomial. rand is crypto/rand in production.
func NewDealing(rand io.Reader, p Params, dealer int) (*Dealing, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if dealer < 1 || dealer > p.N {
		return nil, fmt.Errorf("trustee: dealer %d outside 1..%d", dealer, p.N)
	}
	d := &Dealing{Dealer: dealer}
	for range p.T {
		a, err := group.RandomScalar(rand)
		if err != nil {
			d.Wipe()
			return nil, err
		}
		d.coeffs = append(d.coeffs, a)
		d.Commitments = append(d.Commitments, new(group.Element).BaseExp(a))
	}
	return d, nil
}

// Share returns f(j), the secret share for trustee j (to be sent to j privately).
func (d *Dealing) Share(j int) *group.Scalar {
	x := group.ScalarFromUint(uint(j))
	s := group.NewScalar()
	// Horner: f(j) = a_0 + j(a_1 + j(a_2 + ...)).
	for k := len(d.coeffs) - 1; k >= 0; k-- {
		s.Mul(s, x)
		s.Add(s, d.coeffs[k])
	}
	return s
}

// Wipe erases the polynomial.
func (d *Dealing) Wipe() {
	for _, a := range d.coeffs {
		a.Wipe()
	}
	d.coeffs = nil
}

// commitmentAt returns prod_k A_k^(j^k) = g^f(j).
func commitmentAt(commitments []*group.Element, j int) *group.Element {
	acc := group.Identity()
	pow := group.ScalarFromUint(1)
	x := group.ScalarFromUint(uint(j))
	for _, a := range commitments {
		acc.Mul(acc, new(group.Element).Exp(a, pow))
		pow = new(group.Scalar).Mul(pow, x)
	}
	return acc
}

// VerifyShare checks g^share = prod_k A_k^(j^k) (§8.1). Trustee j runs it on each share it
// receives and publishes a complaint against the dealer if it fails; anyone runs it on a share
// the dealer reveals in answer to a complaint.
func VerifyShare(p Params, commitments []*group.Element, j int, share *group.Scalar) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if len(commitments) != p.T {
		return fmt.Errorf("trustee: %d commitments, want %d", len(commitments), p.T)
	}
	if j < 1 || j > p.N {
		return fmt.Errorf("trustee: receiver %d outside 1..%d", j, p.N)
	}
	if !new(group.Element).BaseExp(share).Equal(commitmentAt(commitments, j)) {
		return fmt.Errorf("%w (receiver %d)", ErrBadShare, j)
	}
	return nil
}

// Qualified is the outcome of the key generation: the commitments of the dealers that were not
// disqualified, by dealer index.
type Qualified map[int][]*group.Element

// PublicKey returns the election key y = prod over qualified dealers of A_{i,0}.
func (q Qualified) PublicKey() verificatum.PublicKey {
	y := group.Identity()
	for _, c := range q {
		y.Mul(y, c[0])
	}
	return verificatum.PublicKey{Y: y}
}

// Polynomial returns the joint polynomial in the exponent C_k = prod over qualified dealers of
// A_{i,k} (k = 0..t-1): C_0 = y and y_j = prod_k C_k^(j^k). It is Verificatum's
// PolynomialInExponent.bt (docs/spec/vote.md §6.3).
func (q Qualified) Polynomial(t int) []*group.Element {
	c := make([]*group.Element, t)
	for k := range c {
		c[k] = group.Identity()
		for _, a := range q {
			c[k].Mul(c[k], a[k])
		}
	}
	return c
}

// VerificationKey returns y_j = g^(x_j), trustee j's public verification key.
func (q Qualified) VerificationKey(j int) *group.Element {
	y := group.Identity()
	for _, c := range q {
		y.Mul(y, commitmentAt(c, j))
	}
	return y
}

// CombineShares returns trustee j's key share x_j = sum of the shares it received from the
// qualified dealers, after checking each against its dealer's commitments.
func CombineShares(p Params, q Qualified, j int, received map[int]*group.Scalar) (*group.Scalar, error) {
	if len(q) == 0 {
		return nil, fmt.Errorf("trustee: no qualified dealer")
	}
	x := group.NewScalar()
	for dealer, c := range q {
		s, ok := received[dealer]
		if !ok {
			return nil, fmt.Errorf("trustee: no share from qualified dealer %d", dealer)
		}
		if err := VerifyShare(p, c, j, s); err != nil {
			return nil, fmt.Errorf("dealer %d: %w", dealer, err)
		}
		x.Add(x, s)
	}
	return x, nil
}
