package attack

import "math"

// Rate is a proportion measured on trials, with its Wilson 95% interval.
type Rate struct {
	Successes float64 // may be fractional: ties count 1/k
	Trials    int
	Lo, Hi    float64
}

// Value is the measured proportion.
func (r Rate) Value() float64 {
	if r.Trials == 0 {
		return 0
	}
	return r.Successes / float64(r.Trials)
}

// wilson returns the Wilson score interval at 95% for s successes in n trials.
func wilson(s float64, n int) Rate {
	r := Rate{Successes: s, Trials: n}
	if n == 0 {
		return r
	}
	const z = 1.959964
	p, fn := s/float64(n), float64(n)
	den := 1 + z*z/fn
	c := (p + z*z/(2*fn)) / den
	h := z * math.Sqrt(p*(1-p)/fn+z*z/(4*fn*fn)) / den
	r.Lo, r.Hi = math.Max(0, c-h), math.Min(1, c+h)
	return r
}

// BinomialTail is P(X >= k) for X ~ Binomial(n, p).
func BinomialTail(n, k int, p float64) float64 {
	if k <= 0 {
		return 1
	}
	if k > n {
		return 0
	}
	sum := 0.0
	for i := k; i <= n; i++ {
		lg, _ := math.Lgamma(float64(n + 1))
		l1, _ := math.Lgamma(float64(i + 1))
		l2, _ := math.Lgamma(float64(n - i + 1))
		sum += math.Exp(lg - l1 - l2 + float64(i)*math.Log(p) + float64(n-i)*math.Log1p(-p))
	}
	return sum
}

// GuardThreshold is the smallest number of correct answers out of n balanced windows that a
// classifier guessing at chance reaches with probability below alpha: a guard test failing at
// this many is a false failure with probability below alpha.
func GuardThreshold(n int, alpha float64) int {
	for k := n / 2; k <= n; k++ {
		if BinomialTail(n, k, 0.5) < alpha {
			return k
		}
	}
	return n + 1
}
