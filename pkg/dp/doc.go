// Package dp owns the differential-privacy primitives of the survey service (DESIGN.md section
// 9, docs/spec/survey.md section 6): exact samplers, the local perturbations a client may apply
// before sending an answer, the central mechanisms that add noise to released statistics, and
// the per-survey privacy budget ledger.
//
// Sampling never uses floating point: a floating-point Laplace sampler leaks the noiseless value
// through the pattern of representable outputs (Mironov, "On Significance of the Least
// Significant Bits for Differential Privacy", CCS 2012). Instead every probability is a rational
// number (math/big) and every random draw is a uniform integer from crypto/rand, following
//
//	Clément L. Canonne, Gautam Kamath, Thomas Steinke, "The Discrete Gaussian for Differential
//	Privacy", NeurIPS 2020, arXiv:2004.00010:
//	  Algorithm 1: Bernoulli(exp(-γ)) for rational γ >= 0 (BernoulliExp),
//	  Algorithm 2: the discrete Laplace distribution Lap_Z(t/s) (DiscreteLaplace),
//	  Algorithm 3: the discrete Gaussian N_Z(0, σ²) (DiscreteGaussian).
//
// The discrete Laplace mechanism (Ghosh, Roughgarden, Sundararajan, "Universally
// Utility-Maximizing Privacy Mechanisms", STOC 2009, the "geometric mechanism") with scale Δ/ε
// is ε-differentially private for an integer query of L1 sensitivity Δ; the central mechanisms
// (Count, Sum, Histogram, Mean) use it, so the ledger composes pure ε sequentially (Dwork,
// Roth, "The Algorithmic Foundations of Differential Privacy", 2014, Theorem 3.16). The discrete
// Gaussian gives ρ = Δ²/(2σ²) zero-concentrated DP (CKS 2020, Theorem 4); it is offered as a
// primitive and is not charged to the ε ledger.
//
// Local perturbation: k-ary randomized response (Warner 1965; Kairouz, Oh, Viswanath, "Extremal
// Mechanisms for Local Differential Privacy", NeurIPS 2014) sampled exactly by rejection, and
// bounded noise for numbers: discrete Laplace noise of scale (hi-lo)/ε, then clamped to a
// widened range (the clamp is post-processing, so it costs no privacy).
//
// Post-processing that only turns released integers into estimates (EstimateRR, the ratio of
// Mean) may use floating point: it sees only already-private outputs.
package dp
