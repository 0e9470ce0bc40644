package dp

import (
	"errors"
	"math/big"
	"testing"
)

// A released count is the true count plus Lap_Z(1/ε): its noise has exactly that distribution.
func TestCountNoiseDistribution(t *testing.T) {
	s := NewSampler(nil)
	n := samples(t) / 2
	const eps = Epsilon(500000) // scale 2
	counts := map[int64]int{}
	for range n {
		v, err := s.Count(1000, eps)
		if err != nil {
			t.Fatal(err)
		}
		counts[v.Int64()-1000]++
	}
	chiSquareSymmetric(t, "count ε=0.5", counts, n, laplacePMF(2))
}

// A sum over [lo, hi] gets Lap_Z(max(|lo|,|hi|)/ε).
func TestSumNoiseDistribution(t *testing.T) {
	s := NewSampler(nil)
	n := samples(t) / 4
	counts := map[int64]int{}
	for range n {
		v, err := s.Sum(big.NewInt(-50), -3, 2, 2*EpsilonUnit) // scale 3/2
		if err != nil {
			t.Fatal(err)
		}
		counts[v.Int64()+50]++
	}
	chiSquareSymmetric(t, "sum [-3,2] ε=2", counts, n, laplacePMF(1.5))
}

func TestSumSensitivity(t *testing.T) {
	for _, tc := range []struct{ lo, hi, want int64 }{{0, 10, 10}, {-20, 5, 20}, {0, 0, 1}, {-7, -3, 7}} {
		if got := SumSensitivity(tc.lo, tc.hi); got.Int64() != tc.want {
			t.Errorf("[%d, %d]: %s", tc.lo, tc.hi, got)
		}
	}
}

func TestHistogram(t *testing.T) {
	s := NewSampler(nil)
	n := samples(t) / 10
	counts := map[int64]int{}
	for range n {
		h, err := s.Histogram([]int64{10, 0, 500}, EpsilonUnit)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) != 3 {
			t.Fatalf("%d bins", len(h))
		}
		counts[h[2].Int64()-500]++
	}
	chiSquareSymmetric(t, "histogram bin ε=1", counts, n, laplacePMF(1))
}

func TestMean(t *testing.T) {
	s := NewSampler(nil)
	m, err := s.Mean(big.NewInt(5000), 1000, 0, 10, 3)
	if err != nil {
		t.Fatal(err)
	}
	if m.Count.Sign() > 0 {
		est, ok := m.Estimate(0, 10)
		if !ok || est.Cmp(big.NewRat(0, 1)) < 0 || est.Cmp(big.NewRat(10, 1)) > 0 {
			t.Errorf("estimate %v outside the bounds", est)
		}
	}
	r := &MeanRelease{Sum: big.NewInt(30), Count: big.NewInt(2)}
	if est, ok := r.Estimate(0, 10); !ok || est.Cmp(big.NewRat(10, 1)) != 0 {
		t.Errorf("clamp: %v", est)
	}
	r = &MeanRelease{Sum: big.NewInt(30), Count: big.NewInt(0)}
	if _, ok := r.Estimate(0, 10); ok {
		t.Error("mean of a non-positive count")
	}
	if _, err := s.Mean(big.NewInt(1), 1, 0, 1, 1); !errors.Is(err, ErrEpsilon) {
		t.Errorf("unsplittable ε: %v", err)
	}
}

func TestMechanismRefusals(t *testing.T) {
	s := NewSampler(nil)
	if _, err := s.Count(1, 0); !errors.Is(err, ErrEpsilon) {
		t.Errorf("ε = 0: %v", err)
	}
	if _, err := s.Count(1, MaxEpsilon+1); !errors.Is(err, ErrEpsilon) {
		t.Errorf("ε over max: %v", err)
	}
	if _, err := s.Sum(big.NewInt(1), 5, 4, EpsilonUnit); !errors.Is(err, ErrParameter) {
		t.Errorf("lo > hi: %v", err)
	}
	if _, err := s.Laplace(big.NewInt(1), big.NewInt(0), EpsilonUnit); !errors.Is(err, ErrParameter) {
		t.Errorf("sensitivity 0: %v", err)
	}
}
