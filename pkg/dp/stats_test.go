package dp

import (
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/dp/dptest"
)

const pFail = dptest.PFail

func gammaQ(a, x float64) float64 { return dptest.GammaQ(a, x) }

func chiSquareSymmetric(t *testing.T, name string, counts map[int64]int, n int, pmf func(int64) float64) {
	t.Helper()
	dptest.ChiSquareSymmetric(t, name, counts, n, pmf)
}

func zTest(t *testing.T, name string, successes, n int, p float64) {
	t.Helper()
	dptest.ZTest(t, name, successes, n, p)
}

func laplacePMF(tau float64) func(int64) float64 { return dptest.LaplacePMF(tau) }

func gaussianPMF(sigma2 float64) func(int64) float64 { return dptest.GaussianPMF(sigma2) }
