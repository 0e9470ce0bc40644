package main

// guardDoc describes the regression guard in CI (internal/privacy/measure/guard_test.go) in the
// report; the test's comments say the same.
const guardDoc = "`TestPrivacyGuard` (internal/privacy/measure; part of `make test`, so `.ci/run` runs it, " +
	"with tcpdump installed by scripts/install-test-deps.sh) starts a pkg/testnet network with 8 client " +
	"engines at the default parameters, captures every link while the users write mail for 110 s " +
	"(about three minutes with start and build), and fails if\n\n" +
	"1. frames stop being uniform: fewer than 80%% of the fully parsed client-to-provider bursts are whole " +
	"frames (a multiple of the frame size), or, after joining bursts that follow within 200 ms (which puts " +
	"a frame cut by the scheduler together again), fewer than 98%%. This run measured %.2f%% and %.2f%% on two " +
	"cores shared with other work; a frame of another size, or a link that writes frames in parts, " +
	"fails it;\n" +
	"2. real sends become distinguishable: the cover classifier of attack (b), on the run's balanced 5 s " +
	"windows (labels from the engines' own record of when each mail's fragment was sent), is right on at " +
	"least k of n windows, k the smallest count with P(X >= k) < 1/1000 for X ~ Binomial(n, 1/2), the " +
	"count of a classifier that can learn nothing. The false-failure probability of this check is thus below " +
	"1 in 1,000 per run (the cross-validated predictions are close to independent; the placebo band above " +
	"agrees with the binomial one).\n\n" +
	"It can fail: its sub-test `leaky link fails` runs 4 engines whose links write each frame in two parts " +
	"5 ms apart (measure.Options.Split) and requires check 1 to refuse them."
