package dp

import (
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

func samples(t *testing.T) int {
	if testing.Short() {
		return 20000
	}
	return 200000
}

func TestBernoulliExp(t *testing.T) {
	s := NewSampler(nil)
	n := samples(t)
	for _, g := range []*big.Rat{big.NewRat(0, 1), big.NewRat(1, 3), big.NewRat(1, 1), big.NewRat(5, 2), big.NewRat(1, 1000000)} {
		k := 0
		for range n {
			b, err := s.BernoulliExp(g)
			if err != nil {
				t.Fatal(err)
			}
			if b {
				k++
			}
		}
		gf, _ := g.Float64()
		zTest(t, "exp(-"+g.RatString()+")", k, n, math.Exp(-gf))
	}
	if _, err := s.BernoulliExp(big.NewRat(-1, 2)); !errors.Is(err, ErrParameter) {
		t.Errorf("γ < 0: %v", err)
	}
	if _, err := s.BernoulliExp(new(big.Rat).SetInt(new(big.Int).Lsh(one, maxScaleBits+1))); !errors.Is(err, ErrParameter) {
		t.Errorf("huge γ: %v", err)
	}
}

func TestBernoulli(t *testing.T) {
	s := NewSampler(nil)
	n := samples(t)
	k := 0
	for range n {
		b, err := s.Bernoulli(big.NewRat(2, 7))
		if err != nil {
			t.Fatal(err)
		}
		if b {
			k++
		}
	}
	zTest(t, "2/7", k, n, 2.0/7)
	for _, p := range []*big.Rat{big.NewRat(-1, 2), big.NewRat(3, 2)} {
		if _, err := s.Bernoulli(p); !errors.Is(err, ErrParameter) {
			t.Errorf("p = %s: %v", p, err)
		}
	}
}

func TestDiscreteLaplace(t *testing.T) {
	s := NewSampler(nil)
	n := samples(t)
	for _, sc := range [][2]int64{{1, 1}, {7, 3}, {1, 4}, {20, 1}} {
		counts := map[int64]int{}
		for range n {
			x, err := s.DiscreteLaplace(big.NewInt(sc[0]), big.NewInt(sc[1]))
			if err != nil {
				t.Fatal(err)
			}
			counts[x.Int64()]++
		}
		chiSquareSymmetric(t, big.NewRat(sc[0], sc[1]).RatString(), counts, n, laplacePMF(float64(sc[0])/float64(sc[1])))
	}
	for _, sc := range [][2]int64{{0, 1}, {1, 0}, {-1, 1}} {
		if _, err := s.DiscreteLaplace(big.NewInt(sc[0]), big.NewInt(sc[1])); !errors.Is(err, ErrParameter) {
			t.Errorf("scale %d/%d: %v", sc[0], sc[1], err)
		}
	}
}

func TestDiscreteGaussian(t *testing.T) {
	s := NewSampler(nil)
	n := samples(t) / 4
	for _, v := range []*big.Rat{big.NewRat(1, 1), big.NewRat(9, 2), big.NewRat(1, 10), big.NewRat(100, 1)} {
		counts := map[int64]int{}
		for range n {
			x, err := s.DiscreteGaussian(v)
			if err != nil {
				t.Fatal(err)
			}
			counts[x.Int64()]++
		}
		vf, _ := v.Float64()
		chiSquareSymmetric(t, "σ²="+v.RatString(), counts, n, gaussianPMF(vf))
	}
	if _, err := s.DiscreteGaussian(big.NewRat(0, 1)); !errors.Is(err, ErrParameter) {
		t.Errorf("σ² = 0: %v", err)
	}
}

// A sampler is a deterministic function of its random bytes: the same seed gives the same
// samples (so nothing but the reader feeds it), a different seed different ones.
func TestSamplerDeterministic(t *testing.T) {
	draw := func(seed byte) []int64 {
		var key [32]byte
		key[0] = seed
		s := NewSampler(rand.NewChaCha8(key))
		var out []int64
		for range 50 {
			x, err := s.DiscreteLaplace(big.NewInt(5), big.NewInt(2))
			if err != nil {
				t.Fatal(err)
			}
			y, err := s.DiscreteGaussian(big.NewRat(7, 3))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, x.Int64(), y.Int64())
		}
		return out
	}
	a, b, c := draw(1), draw(1), draw(2)
	same := func(x, y []int64) bool {
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Error("same seed, different samples")
	}
	if same(a, c) {
		t.Error("different seeds, same 100 samples")
	}
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestSamplerRandomFailure(t *testing.T) {
	s := NewSampler(failReader{})
	if _, err := s.DiscreteLaplace(one, one); err == nil {
		t.Error("sample without randomness")
	}
	if _, err := s.Count(3, EpsilonUnit); err == nil {
		t.Error("release without randomness")
	}
}
