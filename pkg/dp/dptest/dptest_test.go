package dptest

import (
	"math"
	"testing"
)

func TestGammaQ(t *testing.T) {
	// Known chi-square upper tails: P[χ²_1 > 3.841] = 0.05, P[χ²_10 > 29.588] = 0.001,
	// P[χ²_2 > x] = exp(-x/2).
	for _, tc := range []struct{ df, x, want float64 }{{1, 3.841459, 0.05}, {10, 29.588298, 0.001}, {2, 7, math.Exp(-3.5)}, {50, 40, 0.8424}} {
		if got := GammaQ(tc.df/2, tc.x/2); math.Abs(got-tc.want) > 1e-4*math.Max(1, tc.want*10) {
			t.Errorf("Q(%v, %v) = %v, want %v", tc.df/2, tc.x/2, got, tc.want)
		}
	}
}

// The test rejects samples from another distribution: scale 2 against scale 1.5.
func TestChiSquareRejects(t *testing.T) {
	n := 20000
	counts := map[int64]int{}
	pmf := LaplacePMF(2)
	// Expected counts of Lap_Z(2), exactly, tested against Lap_Z(1.5).
	for x := int64(-40); x <= 40; x++ {
		counts[x] = int(math.Round(float64(n) * pmf(x)))
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	stat, bins := chiSquare(counts, total, LaplacePMF(1.5))
	if p := GammaQ(float64(bins-1)/2, stat/2); p >= PFail {
		t.Errorf("scale 2 passed as scale 1.5: p = %g", p)
	}
	stat, bins = chiSquare(counts, total, LaplacePMF(2))
	if p := GammaQ(float64(bins-1)/2, stat/2); p < 0.5 {
		t.Errorf("exact counts failed: p = %g", p)
	}
}
