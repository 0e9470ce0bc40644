// Package dptest holds the statistical tests the differential-privacy tests share: the
// chi-square goodness-of-fit test against an integer distribution, with a p-value threshold
// that makes a false failure negligible, and the probability mass functions of the discrete
// Laplace and Gaussian distributions of docs/spec/survey.md section 6.
package dptest

import (
	"math"
	"testing"
)

// PFail is the p-value below which a statistical test fails: a correct sampler fails one run
// in a million.
const PFail = 1e-6

// GammaQ is the regularized upper incomplete gamma function Q(a, x), by its power series for
// x < a+1 and by its continued fraction (modified Lentz) otherwise.
func GammaQ(a, x float64) float64 {
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

// ChiSquareSymmetric tests n samples (counts) against a symmetric pmf over the integers: one
// bin per value whose expected count is at least 20, and the rest of both tails in one bin. It
// fails the test when the p-value is below PFail.
func ChiSquareSymmetric(t testing.TB, name string, counts map[int64]int, n int, pmf func(int64) float64) {
	t.Helper()
	stat, bins := chiSquare(counts, n, pmf)
	p := GammaQ(float64(bins-1)/2, stat/2)
	t.Logf("%s: χ² = %.1f over %d bins, p = %.3g", name, stat, bins, p)
	if p < PFail {
		t.Errorf("%s: χ² = %.1f over %d bins: p = %.3g < %g", name, stat, bins, p, PFail)
	}
}

// chiSquare returns the statistic and the number of bins: one bin per value x in [-k, k],
// where k is the largest value whose expected count is at least 20, and one bin per tail (x < -k,
// x > k) when a tail expects at least 5 samples; a smaller tail is merged into the outermost
// bin on its side. The pmf must be symmetric.
func chiSquare(counts map[int64]int, n int, pmf func(int64) float64) (stat float64, bins int) {
	var k int64
	for float64(n)*pmf(k+1) >= 20 {
		k++
	}
	central := 0.0
	for x := -k; x <= k; x++ {
		central += pmf(x)
	}
	tailP := max(0, (1-central)/2)
	var below, above int
	for x, c := range counts {
		switch {
		case x < -k:
			below += c
		case x > k:
			above += c
		}
	}
	add := func(o int, p float64) {
		e := float64(n) * p
		stat += (float64(o) - e) * (float64(o) - e) / e
		bins++
	}
	merge := float64(n)*tailP < 5
	for x := -k; x <= k; x++ {
		o, p := counts[x], pmf(x)
		if merge && x == -k {
			o, p = o+below, p+tailP
		}
		if merge && x == k {
			o, p = o+above, p+tailP
		}
		add(o, p)
	}
	if !merge {
		add(below, tailP)
		add(above, tailP)
	}
	return stat, bins
}

// ZTest fails when a frequency of successes is more than 5.33 standard deviations from p
// (two-sided p-value below 1e-7).
func ZTest(t *testing.T, name string, successes, n int, p float64) {
	t.Helper()
	sd := math.Sqrt(float64(n) * p * (1 - p))
	z := (float64(successes) - float64(n)*p) / math.Max(sd, 1e-9)
	if math.Abs(z) > 5.33 {
		t.Errorf("%s: %d of %d, expected %.1f: z = %.2f", name, successes, n, float64(n)*p, z)
	}
}

// LaplacePMF is P[X = x] for Lap_Z(tau): (e^{1/τ} - 1)/(e^{1/τ} + 1) e^{-|x|/τ}.
func LaplacePMF(tau float64) func(int64) float64 {
	e := math.Exp(1 / tau)
	c := (e - 1) / (e + 1)
	return func(x int64) float64 { return c * math.Exp(-math.Abs(float64(x))/tau) }
}

// GaussianPMF is P[X = x] for N_Z(0, σ²), normalised numerically.
func GaussianPMF(sigma2 float64) func(int64) float64 {
	var z float64
	lim := int64(40*math.Sqrt(sigma2)) + 40
	for x := -lim; x <= lim; x++ {
		z += math.Exp(-float64(x*x) / (2 * sigma2))
	}
	return func(x int64) float64 { return math.Exp(-float64(x*x)/(2*sigma2)) / z }
}
