package dp

import (
	"math"
	"testing"
)

// pFail is the p-value below which a statistical test fails: a correct sampler fails one run
// in a million.
const pFail = 1e-6

// gammaQ is the regularized upper incomplete gamma function Q(a, x), by its power series for
// x < a+1 and by its continued fraction (modified Lentz) otherwise.
func gammaQ(a, x float64) float64 {
	if x <= 0 {
		return 1
	}
	lg, _ := math.Lgamma(a)
	if x < a+1 {
		sum, term := 1/a, 1/a
		for n := 1; n < 10000; n++ {
			term *= x / (a + float64(n))
			sum += term
			if math.Abs(term) < math.Abs(sum)*1e-15 {
				break
			}
		}
		return 1 - sum*math.Exp(-x+a*math.Log(x)-lg)
	}
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	h := d
	for i := 1; i < 10000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		del := d * c
		h *= del
		if math.Abs(del-1) < 1e-15 {
			break
		}
	}
	return math.Exp(-x+a*math.Log(x)-lg) * h
}

func TestGammaQ(t *testing.T) {
	// Known chi-square upper tails: P[χ²_1 > 3.841] = 0.05, P[χ²_10 > 29.588] = 0.001,
	// P[χ²_2 > x] = exp(-x/2).
	for _, tc := range []struct{ df, x, want float64 }{{1, 3.841459, 0.05}, {10, 29.588298, 0.001}, {2, 7, math.Exp(-3.5)}, {50, 40, 0.8424}} {
		if got := gammaQ(tc.df/2, tc.x/2); math.Abs(got-tc.want) > 1e-4*math.Max(1, tc.want*10) {
			t.Errorf("Q(%v, %v) = %v, want %v", tc.df/2, tc.x/2, got, tc.want)
		}
	}
}

// chiSquareSymmetric tests n samples (counts) against a symmetric pmf over the integers: one
// bin per value whose expected count is at least 20, and the rest of both tails in one bin. It
// fails the test when the p-value is below pFail.
func chiSquareSymmetric(t *testing.T, name string, counts map[int64]int, n int, pmf func(int64) float64) {
	t.Helper()
	var k int64
	for float64(n)*pmf(k+1) >= 20 {
		k++
	}
	var stat, central float64
	seen := 0
	bins := 0
	for x := -k; x <= k; x++ {
		e := float64(n) * pmf(x)
		central += pmf(x)
		o := float64(counts[x])
		seen += counts[x]
		stat += (o - e) * (o - e) / e
		bins++
	}
	if tail := float64(n) * (1 - central); tail >= 5 {
		o := float64(n - seen)
		stat += (o - tail) * (o - tail) / tail
		bins++
	} else if n-seen > 0 && float64(n-seen) > tail+10*math.Sqrt(tail)+10 {
		t.Errorf("%s: %d samples beyond ±%d where %.2f were expected", name, n-seen, k, tail)
	}
	p := gammaQ(float64(bins-1)/2, stat/2)
	t.Logf("%s: χ² = %.1f over %d bins, p = %.3g", name, stat, bins, p)
	if p < pFail {
		t.Errorf("%s: χ² = %.1f over %d bins: p = %.3g < %g", name, stat, bins, p, pFail)
	}
}

// zTest fails when a frequency of successes is more than 5.33 standard deviations from p
// (two-sided p-value below 1e-7).
func zTest(t *testing.T, name string, successes, n int, p float64) {
	t.Helper()
	sd := math.Sqrt(float64(n) * p * (1 - p))
	z := (float64(successes) - float64(n)*p) / math.Max(sd, 1e-9)
	if math.Abs(z) > 5.33 {
		t.Errorf("%s: %d of %d, expected %.1f: z = %.2f", name, successes, n, float64(n)*p, z)
	}
}
