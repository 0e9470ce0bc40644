package group

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/vote/bytetree"
)

// pointSeeds returns the encodings of the points found in testdata/*.bt (each file is a node
// of points, as FullPublicKey.bt is).
func pointSeeds(t testing.TB) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.bt"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := bytetree.Parse(b, bytetree.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range tr.Children() {
			out = append(out, c.Encode())
		}
	}
	return out
}

func TestPointSeedsNotEmpty(t *testing.T) {
	if len(pointSeeds(t)) == 0 {
		t.Fatal("no seed points in testdata")
	}
}

func TestGeneratorMatchesVerificatumFile(t *testing.T) {
	// FullPublicKey.bt is node(g, y) as written by Verificatum: g must encode exactly as ours.
	if !bytes.Equal(pointSeeds(t)[0], Generator().Tree().Encode()) {
		t.Fatal("standard generator encodes differently from Verificatum's")
	}
}

func TestElementRoundTrip(t *testing.T) {
	for _, e := range []*Element{Identity(), Generator(), new(Element).BaseExp(ScalarFromUint(12345))} {
		got, err := ElementFromTree(e.Tree())
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(e) {
			t.Fatal("round trip changed the point")
		}
	}
	id := Identity().Tree()
	if !bytes.Equal(id.Children()[0].Data(), bytes.Repeat([]byte{0xff}, CoordLen)) {
		t.Fatal("identity is not encoded as all 0xff")
	}
}

func TestElementFromTreeRefuses(t *testing.T) {
	g := Generator().Tree()
	x, y := g.Children()[0].Data(), g.Children()[1].Data()
	offCurve := append([]byte(nil), y...)
	offCurve[CoordLen-1] ^= 1
	highByte := append([]byte(nil), x...)
	highByte[0] = 1
	pBytes := make([]byte, CoordLen)
	fieldP.FillBytes(pBytes[1:])
	cases := map[string]*bytetree.Tree{
		"leaf":           bytetree.Leaf(x),
		"three children": bytetree.Node(bytetree.Leaf(x), bytetree.Leaf(y), bytetree.Leaf(y)),
		"short x":        bytetree.Node(bytetree.Leaf(x[1:]), bytetree.Leaf(y)),
		"off curve":      bytetree.Node(bytetree.Leaf(x), bytetree.Leaf(offCurve)),
		"x above 2^256":  bytetree.Node(bytetree.Leaf(highByte), bytetree.Leaf(y)),
		"x = p":          bytetree.Node(bytetree.Leaf(pBytes), bytetree.Leaf(y)),
		"half infinity":  bytetree.Node(bytetree.Leaf(bytes.Repeat([]byte{0xff}, CoordLen)), bytetree.Leaf(y)),
	}
	for name, tr := range cases {
		if _, err := ElementFromTree(tr); !errors.Is(err, ErrEncoding) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestScalarEncoding(t *testing.T) {
	s, err := RandomScalar(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ScalarFromTree(s.Tree())
	if err != nil || !got.Equal(s) {
		t.Fatalf("round trip: %v", err)
	}
	qb := make([]byte, ScalarLen)
	orderQ.FillBytes(qb[1:])
	for name, b := range map[string][]byte{"q": qb, "short": qb[1:], "sign byte": append([]byte{1}, qb[1:]...)} {
		if _, err := ScalarFromTree(bytetree.Leaf(b)); !errors.Is(err, ErrEncoding) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestScalarArithmetic(t *testing.T) {
	a, _ := RandomScalar(rand.Reader)
	b, _ := RandomScalar(rand.Reader)
	want := new(big.Int).Mul(a.Big(), b.Big())
	want.Add(want, a.Big()).Sub(want, b.Big()).Mod(want, orderQ)
	got := new(Scalar).Mul(a, b)
	got.Add(got, a).Sub(got, b)
	if got.Big().Cmp(want) != 0 {
		t.Fatal("a*b + a - b differs from math/big")
	}
	// g^(a+b) = g^a g^b and g^(-a) g^a = 1.
	lhs := new(Element).BaseExp(new(Scalar).Add(a, b))
	rhs := new(Element).Mul(new(Element).BaseExp(a), new(Element).Exp(Generator(), b))
	if !lhs.Equal(rhs) {
		t.Fatal("exponent homomorphism fails")
	}
	if !new(Element).Mul(new(Element).BaseExp(new(Scalar).Neg(a)), new(Element).BaseExp(a)).IsIdentity() {
		t.Fatal("g^-a g^a is not the identity")
	}
	a.Wipe()
	if a.Big().Sign() != 0 {
		t.Fatal("wipe left a non-zero scalar")
	}
}

func TestMultiExp(t *testing.T) {
	const n = 50
	bases := make([]*Element, n)
	exps := make([]*Scalar, n)
	want := Identity()
	for i := range bases {
		bases[i] = new(Element).BaseExp(ScalarFromUint(uint(i + 2)))
		exps[i], _ = RandomScalar(rand.Reader)
		want.Mul(want, new(Element).Exp(bases[i], exps[i]))
	}
	if !MultiExp(bases, exps).Equal(want) {
		t.Fatal("parallel multi-exponentiation differs from the sequential product")
	}
}

func FuzzElementFromTree(f *testing.F) {
	for _, b := range pointSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := bytetree.Parse(b, bytetree.Limits{MaxBytes: 1 << 10, MaxDepth: 4})
		if err != nil {
			return
		}
		e, err := ElementFromTree(tr)
		if err != nil {
			return
		}
		if !bytes.Equal(e.Tree().Encode(), b) {
			t.Fatal("a decoded point did not re-encode to the same bytes")
		}
	})
}

func TestAppendEncodingMatchesTree(t *testing.T) {
	for _, e := range []*Element{Identity(), Generator(), new(Element).BaseExp(ScalarFromUint(99))} {
		got := e.AppendEncoding([]byte{7})
		if !bytes.Equal(got[1:], e.Tree().Encode()) || len(got) != 1+EncodedLen || got[0] != 7 {
			t.Fatalf("AppendEncoding %x differs from Tree %x", got[1:], e.Tree().Encode())
		}
	}
}

func TestMultiExpVarTime(t *testing.T) {
	for _, n := range []int{0, 1, 2, 17, 200, 1000} {
		bases := make([]*Element, n)
		exps := make([]*Scalar, n)
		for i := range bases {
			r, _ := RandomScalar(rand.Reader)
			bases[i] = new(Element).BaseExp(r)
			exps[i], _ = RandomScalar(rand.Reader)
		}
		if n > 2 {
			exps[1] = NewScalar()                                        // zero exponent
			exps[2] = ScalarFromBig(Order().Sub(Order(), big.NewInt(1))) // q-1: every window full
			bases[0] = Identity()
		}
		if !MultiExpVarTime(bases, exps).Equal(MultiExp(bases, exps)) {
			t.Fatalf("n=%d: bucket method differs from the constant-time product", n)
		}
	}
}

// TestRandomElementsMatchesSequential: the batched, parallel derivation gives the same points as
// one candidate at a time.
func TestRandomElementsMatchesSequential(t *testing.T) {
	seed := bytes.Repeat([]byte{3}, 32)
	batched, err := RandomElements(&countingPRG{seed: seed}, 300, 100)
	if err != nil {
		t.Fatal(err)
	}
	one := &countingPRG{seed: seed}
	for i, e := range batched {
		f, err := RandomElement(one, 100)
		if err != nil {
			t.Fatal(err)
		}
		if !f.Equal(e) {
			t.Fatalf("point %d differs", i)
		}
	}
}

// countingPRG is a deterministic test stream: SHA-256 of seed | counter, like §3.1.
type countingPRG struct {
	seed []byte
	ctr  uint32
	buf  []byte
}

func (p *countingPRG) Read(b []byte) (int, error) {
	for len(p.buf) < len(b) {
		h := sha256.Sum256(append(append([]byte{}, p.seed...), byte(p.ctr>>24), byte(p.ctr>>16), byte(p.ctr>>8), byte(p.ctr)))
		p.ctr++
		p.buf = append(p.buf, h[:]...)
	}
	n := copy(b, p.buf)
	p.buf = p.buf[n:]
	return n, nil
}

// pointFromXBig is §3.4 written directly with math/big, the reference for pointFromX.
func pointFromXBig(x *big.Int) *Element {
	rhs := new(big.Int).Mul(x, x)
	rhs.Mul(rhs, x)
	rhs.Sub(rhs, new(big.Int).Mul(x, big.NewInt(3)))
	rhs.Add(rhs, curveB)
	rhs.Mod(rhs, fieldP)
	if rhs.Sign() == 0 || big.Jacobi(rhs, fieldP) != 1 {
		return nil
	}
	// p = 3 mod 4, so a square root of a residue a is a^((p+1)/4).
	sqrtExp := new(big.Int).Rsh(new(big.Int).Add(fieldP, big.NewInt(1)), 2)
	y := new(big.Int).Exp(rhs, sqrtExp, fieldP)
	if alt := new(big.Int).Sub(fieldP, y); alt.Cmp(y) < 0 {
		y = alt
	}
	e, err := ElementFromAffine(x, y)
	if err != nil {
		panic(err)
	}
	return e
}

// TestPointFromXMatchesBig: the nistec square root picks the same point (or none) as the
// math/big reference, for random candidates (about half are not abscissas) and edge values.
func TestPointFromXMatchesBig(t *testing.T) {
	prg := &countingPRG{seed: bytes.Repeat([]byte{7}, 32)}
	xs := []*big.Int{big.NewInt(0), big.NewInt(1), big.NewInt(3), new(big.Int).Sub(fieldP, big.NewInt(1))}
	for range 2000 {
		x, err := RandomInt(prg, fieldP, 100)
		if err != nil {
			t.Fatal(err)
		}
		xs = append(xs, x)
	}
	found := 0
	for i, x := range xs {
		got, want := pointFromX(x), pointFromXBig(x)
		switch {
		case (got == nil) != (want == nil):
			t.Fatalf("candidate %d (x = %x): fast %v, reference %v", i, x, got != nil, want != nil)
		case got != nil && !got.Equal(want):
			t.Fatalf("candidate %d (x = %x): different root", i, x)
		case got != nil:
			found++
		}
	}
	if found < 500 || found > len(xs)-500 {
		t.Fatalf("%d of %d candidates are abscissas, expected about half", found, len(xs))
	}
}

// TestFixedBase: the table's exponentiation equals the plain one, for random exponents and for
// 0, 1, q-1 and exponents whose digits are all 0 or all 15 in places.
func TestFixedBase(t *testing.T) {
	a := new(Element).BaseExp(ScalarFromUint(12345))
	fb := NewFixedBase(a)
	exps := []*Scalar{NewScalar(), ScalarFromUint(1), ScalarFromUint(15), ScalarFromUint(16),
		ScalarFromBig(new(big.Int).Sub(orderQ, big.NewInt(1))),
		ScalarFromBig(new(big.Int).Lsh(big.NewInt(0xffff), 200))}
	for range 50 {
		s, err := RandomScalar(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		exps = append(exps, s)
	}
	for i, s := range exps {
		got := fb.Exp(new(Element), s)
		if want := new(Element).Exp(a, s); !got.Equal(want) {
			t.Fatalf("exponent %d (%x): table gives a different point", i, s.Bytes())
		}
	}
	if !NewFixedBase(Identity()).Exp(new(Element), ScalarFromUint(7)).IsIdentity() {
		t.Fatal("table of the identity does not give the identity")
	}
}

func BenchmarkExp(b *testing.B) {
	a := new(Element).BaseExp(ScalarFromUint(12345))
	s, err := RandomScalar(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	e := new(Element)
	b.Run("variable", func(b *testing.B) {
		for b.Loop() {
			e.Exp(a, s)
		}
	})
	b.Run("fixedbase", func(b *testing.B) {
		fb := NewFixedBase(a)
		for b.Loop() {
			fb.Exp(e, s)
		}
	})
	b.Run("base", func(b *testing.B) {
		for b.Loop() {
			e.BaseExp(s)
		}
	})
	b.Run("table", func(b *testing.B) {
		for b.Loop() {
			NewFixedBase(a)
		}
	})
}
