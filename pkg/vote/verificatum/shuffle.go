package verificatum

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
)

// ShuffleProof is a Terelius-Wikström proof of shuffle as Verificatum writes it (§5):
// the permutation commitment u, the commitment (B, A', B', C', D', F') and the reply
// (k_A, k_B, k_C, k_D, k_E, k_F).
type ShuffleProof struct {
	PermutationCommitment []*group.Element

	B      []*group.Element
	APrime *group.Element
	BPrime []*group.Element
	CPrime *group.Element
	DPrime *group.Element
	FPrime Ciphertext

	KA *group.Scalar
	KB []*group.Scalar
	KC *group.Scalar
	KD *group.Scalar
	KE []*group.Scalar
	KF *group.Scalar
}

// CommitmentTree encodes PoSCommitment: node(B, A', B', C', D', F').
func (p *ShuffleProof) CommitmentTree() *bytetree.Tree {
	return bytetree.Node(ElementsTree(p.B), p.APrime.Tree(), ElementsTree(p.BPrime),
		p.CPrime.Tree(), p.DPrime.Tree(), p.FPrime.Tree())
}

// ReplyTree encodes PoSReply: node(k_A, k_B, k_C, k_D, k_E, k_F).
func (p *ShuffleProof) ReplyTree() *bytetree.Tree {
	return bytetree.Node(p.KA.Tree(), scalarsTree(p.KB), p.KC.Tree(), p.KD.Tree(), scalarsTree(p.KE), p.KF.Tree())
}

// ParseShuffleProof decodes the three proof files of one mixer for a list of n ciphertexts.
func ParseShuffleProof(permComm, commitment, reply *bytetree.Tree, n int) (*ShuffleProof, error) {
	p := new(ShuffleProof)
	var err error
	if p.PermutationCommitment, err = ElementsFromTree(permComm); err != nil {
		return nil, fmt.Errorf("permutation commitment: %w", err)
	}
	if len(p.PermutationCommitment) != n {
		return nil, fmt.Errorf("%w: permutation commitment of %d elements for %d ciphertexts", ErrFormat, len(p.PermutationCommitment), n)
	}
	if commitment.IsLeaf() || commitment.Len() != 6 {
		return nil, fmt.Errorf("%w: PoS commitment must be a node of 6 children", ErrFormat)
	}
	c := commitment.Children()
	if p.B, err = ElementsFromTree(c[0]); err == nil && len(p.B) != n {
		err = fmt.Errorf("%w: %d elements, want %d", ErrFormat, len(p.B), n)
	}
	if err != nil {
		return nil, fmt.Errorf("PoS commitment B: %w", err)
	}
	if p.APrime, err = group.ElementFromTree(c[1]); err != nil {
		return nil, fmt.Errorf("PoS commitment A': %w", err)
	}
	if p.BPrime, err = ElementsFromTree(c[2]); err == nil && len(p.BPrime) != n {
		err = fmt.Errorf("%w: %d elements, want %d", ErrFormat, len(p.BPrime), n)
	}
	if err != nil {
		return nil, fmt.Errorf("PoS commitment B': %w", err)
	}
	if p.CPrime, err = group.ElementFromTree(c[3]); err != nil {
		return nil, fmt.Errorf("PoS commitment C': %w", err)
	}
	if p.DPrime, err = group.ElementFromTree(c[4]); err != nil {
		return nil, fmt.Errorf("PoS commitment D': %w", err)
	}
	if p.FPrime, err = CiphertextFromTree(c[5]); err != nil {
		return nil, fmt.Errorf("PoS commitment F': %w", err)
	}
	if reply.IsLeaf() || reply.Len() != 6 {
		return nil, fmt.Errorf("%w: PoS reply must be a node of 6 children", ErrFormat)
	}
	r := reply.Children()
	if p.KA, err = group.ScalarFromTree(r[0]); err != nil {
		return nil, fmt.Errorf("PoS reply k_A: %w", err)
	}
	if p.KB, err = scalarsFromTree(r[1], n); err != nil {
		return nil, fmt.Errorf("PoS reply k_B: %w", err)
	}
	if p.KC, err = group.ScalarFromTree(r[2]); err != nil {
		return nil, fmt.Errorf("PoS reply k_C: %w", err)
	}
	if p.KD, err = group.ScalarFromTree(r[3]); err != nil {
		return nil, fmt.Errorf("PoS reply k_D: %w", err)
	}
	if p.KE, err = scalarsFromTree(r[4], n); err != nil {
		return nil, fmt.Errorf("PoS reply k_E: %w", err)
	}
	if p.KF, err = group.ScalarFromTree(r[5]); err != nil {
		return nil, fmt.Errorf("PoS reply k_F: %w", err)
	}
	return p, nil
}

// ErrProofInvalid is wrapped when a well-formed proof does not verify.
var ErrProofInvalid = errors.New("verificatum: proof of shuffle invalid")

// challenges derives the batching vector e and the challenge v (§5.2, §5.3).
func (s *Session) challenges(h []*group.Element, pk PublicKey, in, out []Ciphertext, p *ShuffleProof) ([]*group.Scalar, *group.Scalar, error) {
	seed := s.batchingSeed(h, pk, p.PermutationCommitment, in, out)
	e, err := s.batchingVector(seed, len(in))
	if err != nil {
		return nil, nil, err
	}
	v := s.challenge(seed, p)
	return e, group.ScalarFromBig(new(big.Int).SetBytes(v)), nil
}

// VerifyShuffle checks that out is a re-encryption and permutation of in under pk (§5.4).
// h must be Generators(len(in)). The error names every verification equation that fails.
func (s *Session) VerifyShuffle(h []*group.Element, pk PublicKey, in, out []Ciphertext, p *ShuffleProof) error {
	n := len(in)
	if n == 0 || len(out) != n || len(h) != n || len(p.PermutationCommitment) != n ||
		len(p.B) != n || len(p.BPrime) != n || len(p.KB) != n || len(p.KE) != n {
		return fmt.Errorf("%w: lengths of lists, generators and proof differ", ErrFormat)
	}
	e, v, err := s.challenges(h, pk, in, out, p)
	if err != nil {
		return err
	}
	u := p.PermutationCommitment
	prog := newProgress(s.Progress, 9*n)
	// Every exponent here is public (e, k_E), so the variable-time bucket method is safe; each
	// multi-exponentiation uses every core on its own.
	mexp := func(bases []*group.Element, exps []*group.Scalar) *group.Element {
		r := group.MultiExpVarTime(bases, exps)
		prog.add(n)
		return r
	}
	A := mexp(u, e)
	hkE := mexp(h, p.KE)
	us, vs := components(in)
	Fu, Fv := mexp(us, e), mexp(vs, e)
	us, vs = components(out)
	kEu, kEv := mexp(us, p.KE), mexp(vs, p.KE)
	prodU, prodH := product(u), product(h)

	var failed []string
	// A^v A' = g^{k_A} prod h_i^{k_E,i}
	lhs := new(group.Element).Exp(A, v)
	lhs.Mul(lhs, p.APrime)
	rhs := new(group.Element).BaseExp(p.KA)
	if !lhs.Equal(rhs.Mul(rhs, hkE)) {
		failed = append(failed, "A^v A' = g^k_A prod h_i^k_E,i")
	}
	// B_i^v B'_i = g^{k_B,i} B_{i-1}^{k_E,i}, B_{-1} = h_0: checked together as one random
	// linear combination, then one by one only if that fails, to name the first failing i.
	prevB := append([]*group.Element{h[0]}, p.B[:n-1]...)
	ok, err := batchB(p, prevB, v, prog)
	if err != nil {
		return err
	}
	if !ok {
		failed = append(failed, fmt.Sprintf("B_i^v B'_i = g^k_B,i B_i-1^k_E,i (first failing i = %d)", firstBadB(p, prevB, v)))
	}
	// C = prod u_i / prod h_i; C^v C' = g^{k_C}
	C := new(group.Element).Mul(prodU, new(group.Element).Inv(prodH))
	lhs.Exp(C, v).Mul(lhs, p.CPrime)
	if !lhs.Equal(rhs.BaseExp(p.KC)) {
		failed = append(failed, "C^v C' = g^k_C")
	}
	// D = B_{N-1} / h_0^{prod e_i}; D^v D' = g^{k_D}
	prodE := group.ScalarFromUint(1)
	for _, ei := range e {
		prodE.Mul(prodE, ei)
	}
	D := new(group.Element).Exp(h[0], prodE)
	D.Inv(D).Mul(D, p.B[n-1])
	lhs.Exp(D, v).Mul(lhs, p.DPrime)
	if !lhs.Equal(rhs.BaseExp(p.KD)) {
		failed = append(failed, "D^v D' = g^k_D")
	}
	// F = prod w_i^{e_i}; F^v F' = Enc_pk(1, -k_F) prod w'_i^{k_E,i}
	F := Ciphertext{new(group.Element).Exp(Fu, v), new(group.Element).Exp(Fv, v)}.Mul(p.FPrime)
	rF := pk.enc(new(group.Scalar).Neg(p.KF)).Mul(Ciphertext{kEu, kEv})
	if !F.Equal(rF) {
		failed = append(failed, "F^v F' = Enc(1, -k_F) prod w'_i^k_E,i")
	}
	if len(failed) > 0 {
		return fmt.Errorf("%w: %d of 5 verification equations fail: %v", ErrProofInvalid, len(failed), failed)
	}
	return nil
}

// batchB checks equations (2) of §5.4 at once: with verifier-chosen random 128-bit r_i,
// prod B_i^(v r_i) prod B'_i^(r_i) = g^(sum r_i k_B,i) prod B_{i-1}^(r_i k_E,i). If any single
// equation fails, this one fails except with probability 2^-128 over the r_i, which the prover
// cannot see (they are drawn after the proof is fixed).
func batchB(p *ShuffleProof, prevB []*group.Element, v *group.Scalar, prog *progress) (bool, error) {
	n := len(p.B)
	r := make([]*group.Scalar, n)
	vr := make([]*group.Scalar, n)
	rkE := make([]*group.Scalar, n)
	sumKB := group.NewScalar()
	buf := make([]byte, 16*n)
	if _, err := io.ReadFull(rand.Reader, buf); err != nil {
		return false, fmt.Errorf("verificatum: reading randomness: %w", err)
	}
	for i := range n {
		r[i] = group.ScalarFromBig(new(big.Int).SetBytes(buf[16*i : 16*i+16]))
		vr[i] = new(group.Scalar).Mul(v, r[i])
		rkE[i] = new(group.Scalar).Mul(r[i], p.KE[i])
		sumKB.Add(sumKB, new(group.Scalar).Mul(r[i], p.KB[i]))
	}
	lhs := group.MultiExpVarTime(p.B, vr)
	prog.add(n)
	lhs.Mul(lhs, group.MultiExpVarTime(p.BPrime, r))
	prog.add(n)
	rhs := group.MultiExpVarTime(prevB, rkE)
	prog.add(n)
	rhs.Mul(rhs, new(group.Element).BaseExp(sumKB))
	return lhs.Equal(rhs), nil
}

// firstBadB returns the first i whose equation (2) fails, or -1.
func firstBadB(p *ShuffleProof, prevB []*group.Element, v *group.Scalar) int {
	n := len(p.B)
	bad := make([]bool, n)
	group.Parallel(n, func(lo, hi int) {
		l, r, t := new(group.Element), new(group.Element), new(group.Element)
		for i := lo; i < hi; i++ {
			l.Exp(p.B[i], v).Mul(l, p.BPrime[i])
			r.BaseExp(p.KB[i]).Mul(r, t.Exp(prevB[i], p.KE[i]))
			bad[i] = !l.Equal(r)
		}
	})
	for i, b := range bad {
		if b {
			return i
		}
	}
	return -1
}

func components(l []Ciphertext) (us, vs []*group.Element) {
	us = make([]*group.Element, len(l))
	vs = make([]*group.Element, len(l))
	for i, c := range l {
		us[i], vs[i] = c.U, c.V
	}
	return us, vs
}

func product(es []*group.Element) *group.Element {
	acc := group.Identity()
	for _, x := range es {
		acc.Mul(acc, x)
	}
	return acc
}

// randomScalars draws n uniformly random scalars.
func randomScalars(r io.Reader, n int) ([]*group.Scalar, error) {
	out := make([]*group.Scalar, n)
	for i := range out {
		s, err := group.RandomScalar(r)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

func wipe(ss ...[]*group.Scalar) {
	for _, l := range ss {
		for _, s := range l {
			s.Wipe()
		}
	}
}

// randomPermutation returns a uniformly random permutation of [0, n) (Fisher-Yates with
// unbiased draws from r).
func randomPermutation(r io.Reader, n int) ([]int, error) {
	pi := make([]int, n)
	for i := range pi {
		pi[i] = i
	}
	for i := n - 1; i > 0; i-- {
		j, err := rand.Int(r, big.NewInt(int64(i+1)))
		if err != nil {
			return nil, fmt.Errorf("verificatum: drawing a permutation: %w", err)
		}
		k := int(j.Int64())
		pi[i], pi[k] = pi[k], pi[i]
	}
	return pi, nil
}

// Shuffle re-encrypts and permutes in under pk and proves it (§5.5): input i moves to output
// position sigma(i) with fresh randomness. h must be Generators(len(in)); rand is crypto/rand
// in production. Secrets (permutation aside, which is dropped) are wiped before returning.
func (s *Session) Shuffle(rnd io.Reader, h []*group.Element, pk PublicKey, in []Ciphertext) ([]Ciphertext, *ShuffleProof, error) {
	n := len(in)
	if n == 0 || len(h) != n {
		return nil, nil, fmt.Errorf("verificatum: shuffle of %d ciphertexts with %d generators", n, len(h))
	}
	sigma, err := randomPermutation(rnd, n)
	if err != nil {
		return nil, nil, err
	}
	inv := make([]int, n)
	for i, j := range sigma {
		inv[j] = i
	}
	// Randomness: re-encryption s_j (per output), commitment r_i (per input), x_i (B_i = g^x_i
	// h_0^{e'_0...e'_i}), beta_i, eps_i, and alpha, gamma, delta, phi.
	rs, err := randomScalars(rnd, 5*n+4)
	if err != nil {
		return nil, nil, err
	}
	defer wipe(rs)
	sJ, rI, x, beta, eps := rs[:n], rs[n:2*n], rs[2*n:3*n], rs[3*n:4*n], rs[4*n:5*n]
	alpha, gamma, delta, phi := rs[5*n], rs[5*n+1], rs[5*n+2], rs[5*n+3]

	prog := newProgress(s.Progress, 10*n)
	// The public key and h_0 are each raised to N secret exponents: fixed-base tables make
	// those exponentiations about 2.4 times cheaper than plain scalar multiplications.
	yTable, h0Table := group.NewFixedBase(pk.Y), group.NewFixedBase(h[0])
	out := make([]Ciphertext, n)
	p := &ShuffleProof{PermutationCommitment: make([]*group.Element, n)}
	group.Parallel(n, func(lo, hi int) {
		for j := lo; j < hi; j++ {
			// Enc_pk(1, s_j) = (g^s_j, y^s_j), as pk.enc.
			re := Ciphertext{new(group.Element).BaseExp(sJ[j]), yTable.Exp(new(group.Element), sJ[j])}
			out[j] = in[inv[j]].Mul(re)
		}
		for i := lo; i < hi; i++ {
			u := new(group.Element).BaseExp(rI[i])
			p.PermutationCommitment[i] = u.Mul(u, h[sigma[i]])
		}
		prog.add(3 * (hi - lo))
	})

	seed := s.batchingSeed(h, pk, p.PermutationCommitment, in, out)
	e, err := s.batchingVector(seed, n)
	if err != nil {
		return nil, nil, err
	}
	eP := make([]*group.Scalar, n) // e'_j = e_{sigma^-1(j)}
	for j := range eP {
		eP[j] = e[inv[j]]
	}
	// Prefix products P_i = e'_0 ... e'_i and b_i = x_i - e'_i x_{i-1} so that
	// B_i = g^{b_i} B_{i-1}^{e'_i} holds with B_i = g^{x_i} h_0^{P_i}, all computed in parallel.
	prefix := make([]*group.Scalar, n)
	b := make([]*group.Scalar, n)
	acc := group.ScalarFromUint(1)
	for i := range n {
		acc = new(group.Scalar).Mul(acc, eP[i])
		prefix[i] = acc
		b[i] = new(group.Scalar).Set(x[i])
		if i > 0 {
			t := new(group.Scalar).Mul(eP[i], x[i-1])
			b[i].Sub(b[i], t)
			t.Wipe()
		}
	}
	defer wipe(b)
	p.B = make([]*group.Element, n)
	p.BPrime = make([]*group.Element, n)
	group.Parallel(n, func(lo, hi int) {
		t := new(group.Element)
		for i := lo; i < hi; i++ {
			bi := new(group.Element).BaseExp(x[i])
			p.B[i] = bi.Mul(bi, h0Table.Exp(t, prefix[i]))
		}
		prog.add(2 * (hi - lo))
	})
	group.Parallel(n, func(lo, hi int) {
		t := new(group.Element)
		for i := lo; i < hi; i++ {
			prev := h[0]
			if i > 0 {
				prev = p.B[i-1]
			}
			bp := new(group.Element).BaseExp(beta[i])
			p.BPrime[i] = bp.Mul(bp, t.Exp(prev, eps[i]))
		}
		prog.add(2 * (hi - lo))
	})
	p.APrime = new(group.Element).BaseExp(alpha)
	p.APrime.Mul(p.APrime, group.MultiExp(h, eps))
	prog.add(n)
	p.CPrime = new(group.Element).BaseExp(gamma)
	p.DPrime = new(group.Element).BaseExp(delta)
	us, vs := components(out)
	fu := group.MultiExp(us, eps)
	prog.add(n)
	fv := group.MultiExp(vs, eps)
	prog.add(n)
	p.FPrime = pk.enc(new(group.Scalar).Neg(phi)).Mul(Ciphertext{fu, fv})

	vb := s.challenge(seed, p)
	v := group.ScalarFromBig(new(big.Int).SetBytes(vb))

	// Replies: k = v * witness + randomness.
	reply := func(w, r *group.Scalar) *group.Scalar {
		k := new(group.Scalar).Mul(v, w)
		return k.Add(k, r)
	}
	re, sumR, se := group.NewScalar(), group.NewScalar(), group.NewScalar()
	defer wipe([]*group.Scalar{re, sumR, se})
	t := group.NewScalar()
	for i := range n {
		re.Add(re, t.Mul(rI[i], e[i]))
		sumR.Add(sumR, rI[i])
		se.Add(se, t.Mul(sJ[i], eP[i]))
	}
	t.Wipe()
	p.KA = reply(re, alpha)
	p.KC = reply(sumR, gamma)
	p.KD = reply(x[n-1], delta)
	p.KF = reply(se, phi)
	p.KB = make([]*group.Scalar, n)
	p.KE = make([]*group.Scalar, n)
	for i := range n {
		p.KB[i] = reply(b[i], beta[i])
		p.KE[i] = reply(eP[i], eps[i])
	}
	return out, p, nil
}
