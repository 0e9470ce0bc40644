package verificatum

import (
	"errors"
	"fmt"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/group"
)

// MaxCiphertexts bounds every list read from a proof directory (10^6 ballots, with room).
const MaxCiphertexts = 1 << 21

// ErrFormat is wrapped by every error about the shape of a proof file.
var ErrFormat = errors.New("verificatum: malformed")

// Ciphertext is a width-1 ElGamal ciphertext (U, V) = (g^r, y^r m) (§2.3).
type Ciphertext struct{ U, V *group.Element }

// Tree encodes a single ciphertext as node(U, V).
func (c Ciphertext) Tree() *bytetree.Tree { return bytetree.Node(c.U.Tree(), c.V.Tree()) }

// Mul returns the componentwise product c*d.
func (c Ciphertext) Mul(d Ciphertext) Ciphertext {
	return Ciphertext{new(group.Element).Mul(c.U, d.U), new(group.Element).Mul(c.V, d.V)}
}

// Equal reports componentwise equality.
func (c Ciphertext) Equal(d Ciphertext) bool { return c.U.Equal(d.U) && c.V.Equal(d.V) }

// CiphertextFromTree decodes node(U, V).
func CiphertextFromTree(t *bytetree.Tree) (Ciphertext, error) {
	if t.IsLeaf() || t.Len() != 2 {
		return Ciphertext{}, fmt.Errorf("%w: a ciphertext must be a node of two points", ErrFormat)
	}
	u, err := group.ElementFromTree(t.Children()[0])
	if err != nil {
		return Ciphertext{}, err
	}
	v, err := group.ElementFromTree(t.Children()[1])
	if err != nil {
		return Ciphertext{}, err
	}
	return Ciphertext{u, v}, nil
}

// ListTree encodes a ciphertext list as Verificatum does for width 1:
// node(node(U_0..U_{N-1}), node(V_0..V_{N-1})).
func ListTree(l []Ciphertext) *bytetree.Tree {
	us := make([]*bytetree.Tree, len(l))
	vs := make([]*bytetree.Tree, len(l))
	for i, c := range l {
		us[i], vs[i] = c.U.Tree(), c.V.Tree()
	}
	return bytetree.Node(bytetree.Node(us...), bytetree.Node(vs...))
}

// ListFromTree decodes a ciphertext list of at most MaxCiphertexts entries.
func ListFromTree(t *bytetree.Tree) ([]Ciphertext, error) {
	if t.IsLeaf() || t.Len() != 2 || t.Children()[0].IsLeaf() || t.Children()[1].IsLeaf() {
		return nil, fmt.Errorf("%w: a ciphertext list must be node(node(U...), node(V...))", ErrFormat)
	}
	us, vs := t.Children()[0].Children(), t.Children()[1].Children()
	if len(us) != len(vs) {
		return nil, fmt.Errorf("%w: ciphertext list with %d first and %d second components", ErrFormat, len(us), len(vs))
	}
	if len(us) > MaxCiphertexts {
		return nil, fmt.Errorf("%w: %d ciphertexts exceeds the limit of %d", ErrFormat, len(us), MaxCiphertexts)
	}
	u, err := elementsFromTrees(us)
	if err != nil {
		return nil, err
	}
	v, err := elementsFromTrees(vs)
	if err != nil {
		return nil, err
	}
	l := make([]Ciphertext, len(us))
	for i := range l {
		l[i] = Ciphertext{u[i], v[i]}
	}
	return l, nil
}

// ElementsTree encodes an array of points as node(e_0..e_{N-1}).
func ElementsTree(es []*group.Element) *bytetree.Tree {
	ts := make([]*bytetree.Tree, len(es))
	for i, e := range es {
		ts[i] = e.Tree()
	}
	return bytetree.Node(ts...)
}

// ElementsFromTree decodes an array of at most MaxCiphertexts points.
func ElementsFromTree(t *bytetree.Tree) ([]*group.Element, error) {
	if t.IsLeaf() {
		return nil, fmt.Errorf("%w: an array of points must be a node", ErrFormat)
	}
	if t.Len() > MaxCiphertexts {
		return nil, fmt.Errorf("%w: %d points exceeds the limit of %d", ErrFormat, t.Len(), MaxCiphertexts)
	}
	return elementsFromTrees(t.Children())
}

// elementsFromTrees decodes points on all cores (decoding checks each point is on the curve).
func elementsFromTrees(ts []*bytetree.Tree) ([]*group.Element, error) {
	out := make([]*group.Element, len(ts))
	errs := make([]error, len(ts))
	group.Parallel(len(ts), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			out[i], errs[i] = group.ElementFromTree(ts[i])
		}
	})
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("point %d: %w", i, err)
		}
	}
	return out, nil
}

func scalarsTree(ss []*group.Scalar) *bytetree.Tree {
	ts := make([]*bytetree.Tree, len(ss))
	for i, s := range ss {
		ts[i] = s.Tree()
	}
	return bytetree.Node(ts...)
}

func scalarsFromTree(t *bytetree.Tree, n int) ([]*group.Scalar, error) {
	if t.IsLeaf() || t.Len() != n {
		return nil, fmt.Errorf("%w: expected an array of %d scalars", ErrFormat, n)
	}
	out := make([]*group.Scalar, n)
	for i, c := range t.Children() {
		s, err := group.ScalarFromTree(c)
		if err != nil {
			return nil, fmt.Errorf("scalar %d: %w", i, err)
		}
		out[i] = s
	}
	return out, nil
}

// PublicKey is the full public key (g, y) of FullPublicKey.bt; g must be the standard generator.
type PublicKey struct{ Y *group.Element }

// Tree encodes pk as node(g, y).
func (pk PublicKey) Tree() *bytetree.Tree {
	return bytetree.Node(group.Generator().Tree(), pk.Y.Tree())
}

// PublicKeyFromTree decodes node(g, y), requiring g to be the standard generator.
func PublicKeyFromTree(t *bytetree.Tree) (PublicKey, error) {
	if t.IsLeaf() || t.Len() != 2 {
		return PublicKey{}, fmt.Errorf("%w: a public key must be node(g, y)", ErrFormat)
	}
	g, err := group.ElementFromTree(t.Children()[0])
	if err != nil {
		return PublicKey{}, err
	}
	if !g.Equal(group.Generator()) {
		return PublicKey{}, fmt.Errorf("%w: public key over a generator other than the standard one", ErrFormat)
	}
	y, err := group.ElementFromTree(t.Children()[1])
	if err != nil {
		return PublicKey{}, err
	}
	if y.IsIdentity() {
		return PublicKey{}, fmt.Errorf("%w: public key is the identity", ErrFormat)
	}
	return PublicKey{Y: y}, nil
}

// enc returns Enc_pk(1, r) = (g^r, y^r).
func (pk PublicKey) enc(r *group.Scalar) Ciphertext {
	return Ciphertext{new(group.Element).BaseExp(r), new(group.Element).Exp(pk.Y, r)}
}
