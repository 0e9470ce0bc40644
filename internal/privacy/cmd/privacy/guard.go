package main

// guardDoc describes the regression guard in CI (internal/privacy/attack/guard_test.go) in the
// report; the test's comment says the same.
const guardDoc = `TestPrivacyGuard (internal/privacy/attack, part of make test and so of .ci/run) starts a
pkg/testnet network with 8 client engines at the default parameters, captures every link for
about 90 s while the users write mail, and fails if (1) a client-to-provider frame whose TLS
records were all read has a size other than the one frame size, or (2) the cover classifier
of attack (b), on the balanced windows of that run, gets at least the threshold of right
answers: the smallest k with P(X >= k) < 0.001 for X ~ Binomial(n, 1/2), the count of a
classifier that can learn nothing. So the test fails falsely with probability below 1 in 1,000
per run (cross-validated predictions are close to but not exactly independent; the placebo runs
of the full measurement show the chance band agrees). TestPrivacyGuardCanFail runs the same
with a leaky link (each frame written in two parts 5 ms apart, frames of two sizes) and
requires the guard's check to fail.`
