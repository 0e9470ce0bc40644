package replay

import (
	"math"
	"testing"
)

func TestSizeMeetsTarget(t *testing.T) {
	for _, n := range []uint64{1, 7, 1000, 123457, 6_000_000, MaxCapacity} {
		for _, p := range []float64{MaxFalsePositiveRate, 0.1, 0.01, 1e-3, 1e-6, MinFalsePositiveRate} {
			m, k, err := Size(n, p)
			if err != nil {
				t.Fatalf("Size(%d, %g): %v", n, p, err)
			}
			if m%64 != 0 || m < 64 || m > MaxBits || k < 1 || k > MaxHashes {
				t.Fatalf("Size(%d, %g) = %d bits, %d hashes: outside the limits", n, p, m, k)
			}
			// Every filter Size makes must pass the header checks of Open.
			h := header{hashes: k, capacity: n, nbits: m}
			if _, err := parseHeader(h.appendTo(nil)); err != nil {
				t.Fatalf("Size(%d, %g): header of its filter refused: %v", n, p, err)
			}
			if fp := FalsePositiveRate(m, k, n); fp > p {
				t.Errorf("Size(%d, %g) = %d bits, %d hashes: false-positive rate %g above target", n, p, m, k, fp)
			}
			// Minimal for its k: 64 bits fewer would miss the target.
			if m > 64 && FalsePositiveRate(m-64, k, n) <= p {
				t.Errorf("Size(%d, %g) = %d bits, %d hashes: %d bits would do", n, p, m, k, m-64)
			}
			// And close to the theoretical optimum over real k, -n ln p / (ln 2)^2.
			opt := -float64(n) * math.Log(p) / (math.Ln2 * math.Ln2)
			if n >= 1000 && float64(m) > 1.01*opt+64 {
				t.Errorf("Size(%d, %g) = %d bits, more than 1%% over the optimum %.0f", n, p, m, opt)
			}
		}
	}
}

func TestSizeKnownValues(t *testing.T) {
	// p = 1e-6: about 28.76 bits per tag and k = 20 (log2(1e6) = 19.93).
	m, k, err := Size(1_000_000, 1e-6)
	if err != nil {
		t.Fatal(err)
	}
	if k != 19 && k != 20 {
		t.Errorf("k = %d, want 19 or 20", k)
	}
	if bpt := float64(m) / 1e6; bpt < 28.7 || bpt > 29.0 {
		t.Errorf("%.3f bits per tag, want about 28.76", bpt)
	}
}

func TestSizeRefusesOutOfRange(t *testing.T) {
	for _, c := range []struct {
		n uint64
		p float64
	}{
		{0, 1e-6},
		{MaxCapacity + 1, 1e-6},
		{1000, 0},
		{1000, MinFalsePositiveRate / 2},
		{1000, MaxFalsePositiveRate * 1.01},
		{1000, 1},
		{1000, math.NaN()},
		{1000, math.Inf(1)},
		{1000, -1e-3},
	} {
		if m, k, err := Size(c.n, c.p); err == nil {
			t.Errorf("Size(%d, %g) = %d, %d, want an error", c.n, c.p, m, k)
		}
	}
}

// The measured false-positive rate of a filter filled to capacity must stay under its
// target. Everything is seeded, so the outcome is deterministic, but the bounds are set as
// if it were not: 5 standard deviations of a binomial count, so that a correct filter passes
// for any seed (failure probability about 3e-7) while a filter sized or hashed wrongly (a
// bits-per-tag off by 10%, or correlated indices) fails.
func TestFalsePositiveRateMeasured(t *testing.T) {
	for _, c := range []struct {
		n      uint64
		p      float64
		trials int
	}{
		{100_000, 1e-3, 400_000},
		{20_000, 1e-2, 200_000},
		{50_000, 0.1, 50_000},
	} {
		f := openTest(t, Config{Capacity: c.n, FalsePositiveRate: c.p})
		next := tagSource(1)
		// Offer n distinct tags: capacity counts tags offered, and those refused as false
		// positives set no bits, as in a mix.
		for range c.n {
			if _, err := f.Add(next()); err != nil {
				t.Fatal(err)
			}
		}
		st := f.Stats()
		falsePos := 0
		for range c.trials {
			if f.contains(next()) {
				falsePos++
			}
		}
		measured := float64(falsePos) / float64(c.trials)
		mean := c.p * float64(c.trials)
		if float64(falsePos) > mean+5*math.Sqrt(mean)+1 {
			t.Errorf("n=%d p=%g: %d false positives in %d fresh tags (%.3g), above the bound for p",
				c.n, c.p, falsePos, c.trials, measured)
		}
		// The fill-level estimate must predict what is measured, in both directions: a
		// measured rate far below the prediction means the measurement is broken.
		pred := st.FalsePositiveRate() * float64(c.trials)
		if d := math.Abs(float64(falsePos) - pred); d > 5*math.Sqrt(pred)+1 {
			t.Errorf("n=%d p=%g: %d false positives, Stats predicts %.0f", c.n, c.p, falsePos, pred)
		}
		// And Fill^k agrees with the formula for the number of tags offered.
		if r, want := st.FalsePositiveRate(), FalsePositiveRate(st.Bits, st.Hashes, c.n); math.Abs(r-want) > 0.05*want {
			t.Errorf("n=%d p=%g: Fill^k = %g, formula %g", c.n, c.p, r, want)
		}
		t.Logf("n=%d p=%g m=%d k=%d: measured %.3g (%d/%d), Fill^k %.3g, load %.2f, fill %.3f",
			c.n, c.p, st.Bits, st.Hashes, measured, falsePos, c.trials, st.FalsePositiveRate(), st.Load(), st.Fill())
	}
}

// Past capacity the rate rises as the formula says, and Stats reports it.
func TestOverfilledRate(t *testing.T) {
	const n, p, trials = 20_000, 1e-3, 100_000
	f := openTest(t, Config{Capacity: n, FalsePositiveRate: p})
	next := tagSource(2)
	for f.Stats().Count < OverfillFactor*n {
		if _, err := f.Add(next()); err != nil {
			t.Fatal(err)
		}
	}
	st := f.Stats()
	if st.Load() != OverfillFactor {
		t.Fatalf("load %g, want %d", st.Load(), OverfillFactor)
	}
	want := FalsePositiveRate(st.Bits, st.Hashes, st.Count)
	if want < 10*p {
		t.Fatalf("formula gives %g at twice the capacity; test assumes it is well above p", want)
	}
	falsePos := 0
	for range trials {
		if f.contains(next()) {
			falsePos++
		}
	}
	mean := want * trials
	if d := math.Abs(float64(falsePos) - mean); d > 5*math.Sqrt(mean) {
		t.Errorf("%d false positives at twice the capacity, formula predicts %.0f", falsePos, mean)
	}
	if r := st.FalsePositiveRate(); math.Abs(r-want) > 0.05*want {
		t.Errorf("Stats.FalsePositiveRate %g, formula %g", r, want)
	}
}
