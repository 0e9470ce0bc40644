package dp

import (
	"errors"
	"math"
	"testing"
)

func TestRandomizedResponse(t *testing.T) {
	s := NewSampler(nil)
	n := samples(t) / 2
	const k, truth = 4, 1
	eps := Epsilon(1_500_000)
	counts := make([]int, k)
	for range n {
		v, err := s.RandomizedResponse(truth, k, eps)
		if err != nil {
			t.Fatal(err)
		}
		counts[v]++
	}
	e := math.Exp(1.5)
	var stat float64
	for i, c := range counts {
		p := 1 / (e + k - 1)
		if i == truth {
			p = e / (e + k - 1)
		}
		want := float64(n) * p
		stat += (float64(c) - want) * (float64(c) - want) / want
	}
	if p := gammaQ(float64(k-1)/2, stat/2); p < pFail {
		t.Errorf("χ² = %.1f, p = %.3g; counts %v", stat, p, counts)
	}
}

func TestEstimateRR(t *testing.T) {
	// Expected responses of 1000 people, all answering 0 of 3 at ε = ln 2 (p = 1/2, q = 1/4).
	eps := Epsilon(math.Round(math.Ln2 * 1e6))
	got := EstimateRR([]float64{500, 250, 250}, eps)
	for i, want := range []float64{1000, 0, 0} {
		if math.Abs(got[i]-want) > 1 {
			t.Errorf("option %d: %.2f, want %.0f", i, got[i], want)
		}
	}
}

func TestRandomizedResponseRefusals(t *testing.T) {
	s := NewSampler(nil)
	for _, tc := range []struct{ v, k int }{{0, 1}, {2, 2}, {-1, 3}, {0, MaxOptions + 1}} {
		if _, err := s.RandomizedResponse(tc.v, tc.k, EpsilonUnit); !errors.Is(err, ErrParameter) {
			t.Errorf("%d of %d: %v", tc.v, tc.k, err)
		}
	}
	if _, err := s.RandomizedResponse(0, 2, 0); !errors.Is(err, ErrEpsilon) {
		t.Errorf("ε = 0: %v", err)
	}
}

func TestLocalRange(t *testing.T) {
	lo, hi, err := LocalRange(0, 10, EpsilonUnit)
	if err != nil || lo != -200 || hi != 210 {
		t.Errorf("[0,10] ε=1: [%d, %d] %v", lo, hi, err)
	}
	lo, hi, err = LocalRange(5, 5, 3*EpsilonUnit)
	if err != nil || lo != -2 || hi != 12 {
		t.Errorf("[5,5] ε=3: [%d, %d] %v", lo, hi, err)
	}
	if _, _, err := LocalRange(math.MinInt64+1, math.MaxInt64-1, 1); !errors.Is(err, ErrParameter) {
		t.Errorf("overflow: %v", err)
	}
	if _, _, err := LocalRange(3, 2, EpsilonUnit); !errors.Is(err, ErrParameter) {
		t.Errorf("lo > hi: %v", err)
	}
}

// BoundedLaplace stays in LocalRange, and away from the clamp its noise is Lap_Z((hi-lo)/ε).
func TestBoundedLaplace(t *testing.T) {
	s := NewSampler(nil)
	n := samples(t) / 4
	lo, hi := int64(0), int64(3)
	eps := 2 * EpsilonUnit // scale 3/2
	rl, rh, _ := LocalRange(lo, hi, eps)
	counts := map[int64]int{}
	for range n {
		v, err := s.BoundedLaplace(2, lo, hi, eps)
		if err != nil {
			t.Fatal(err)
		}
		if v < rl || v > rh {
			t.Fatalf("%d outside [%d, %d]", v, rl, rh)
		}
		counts[v-2]++
	}
	chiSquareSymmetric(t, "bounded [0,3] ε=2", counts, n, laplacePMF(1.5))
	if _, err := s.BoundedLaplace(4, lo, hi, eps); !errors.Is(err, ErrParameter) {
		t.Errorf("value out of bounds: %v", err)
	}
}
