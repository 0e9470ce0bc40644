package client

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func testRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

// simulate runs the scheduler over d of virtual time and returns the events per stream and the
// gaps between consecutive events of each stream.
func simulate(s *scheduler, start time.Time, d time.Duration) (counts [nStreams]int, gaps [nStreams][]float64) {
	last := [nStreams]time.Time{start, start, start}
	prev := start
	for {
		k, at := s.pop()
		if at.Before(prev) {
			panic("scheduler went back in time")
		}
		prev = at
		if at.Sub(start) >= d {
			return counts, gaps
		}
		counts[k]++
		gaps[k] = append(gaps[k], at.Sub(last[k]).Seconds())
		last[k] = at
	}
}

// checkPoisson fails when n events in d seconds are implausible for rate (more than 5 standard
// deviations of a Poisson count away), or when the gaps do not look exponential: mean 1/rate
// and a coefficient of variation of 1 (fixed intervals would have 0, bursts more than 1).
func checkPoisson(t *testing.T, name string, rate, seconds float64, n int, gaps []float64) {
	t.Helper()
	for _, p := range poissonProblems(name, rate, seconds, n, gaps) {
		t.Error(p)
	}
}

func poissonProblems(name string, rate, seconds float64, n int, gaps []float64) []string {
	var out []string
	want := rate * seconds
	if math.Abs(float64(n)-want) > 5*math.Sqrt(want) {
		out = append(out, fmt.Sprintf("%s: %d events in %.0f s, want %.0f +- %.0f", name, n, seconds, want, 5*math.Sqrt(want)))
	}
	var sum, sq float64
	for _, g := range gaps {
		sum += g
	}
	mean := sum / float64(len(gaps))
	for _, g := range gaps {
		sq += (g - mean) * (g - mean)
	}
	cv := math.Sqrt(sq/float64(len(gaps)-1)) / mean
	if math.Abs(mean*rate-1) > 0.05 {
		out = append(out, fmt.Sprintf("%s: mean gap %.4f s, want %.4f", name, mean, 1/rate))
	}
	if math.Abs(cv-1) > 0.05 {
		out = append(out, fmt.Sprintf("%s: gaps have coefficient of variation %.3f, want 1 (exponential)", name, cv))
	}
	return out
}

func TestSchedulerRates(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := [nStreams]float64{streamSend: 5, streamLoop: 2, streamDrop: 0.5}
	s := newScheduler(testRand(1), r, start)
	const seconds = 4000
	counts, gaps := simulate(s, start, seconds*time.Second)
	for k := range nStreams {
		checkPoisson(t, k.String(), r[k], seconds, counts[k], gaps[k])
	}
}

// The checks above must be able to fail: a scheduler running at the wrong rate, or with fixed
// gaps, is caught.
func TestSchedulerCheckCatchesWrongLaw(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newScheduler(testRand(2), [nStreams]float64{5.5, 2, 1}, start)
	counts, gaps := simulate(s, start, 4000*time.Second)
	if len(poissonProblems("send", 5, 4000, counts[streamSend], gaps[streamSend])) == 0 {
		t.Error("a 10% rate error passed the check")
	}
	fixed := make([]float64, 20000)
	for i := range fixed {
		fixed[i] = 0.2
	}
	if len(poissonProblems("fixed", 5, 4000, 20000, fixed)) == 0 {
		t.Error("fixed intervals passed as Poisson")
	}
}

func TestSchedulerSetRates(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newScheduler(testRand(3), [nStreams]float64{1, 1, 1}, start)
	simulate(s, start, 100*time.Second)
	mid := start.Add(200 * time.Second)
	r := [nStreams]float64{10, 0, 3}
	s.setRates(r, mid)
	counts, gaps := simulate(s, mid, 2000*time.Second)
	if counts[streamLoop] != 0 {
		t.Fatalf("a stream of rate 0 fired %d times", counts[streamLoop])
	}
	checkPoisson(t, "send", 10, 2000, counts[streamSend], gaps[streamSend])
	checkPoisson(t, "drop", 3, 2000, counts[streamDrop], gaps[streamDrop])
}

func TestHopDelay(t *testing.T) {
	rng := testRand(4)
	mean, maxD := 200*time.Millisecond, 600*time.Millisecond
	const n = 200000
	var sum float64
	capped := 0
	for range n {
		d := hopDelay(rng, mean, maxD)
		if time.Duration(d)*time.Millisecond > maxD {
			t.Fatalf("delay %d ms over the cap", d)
		}
		if time.Duration(d)*time.Millisecond == maxD {
			capped++
		}
		sum += float64(d)
	}
	// E[min(X, c)] for X ~ Exp(mean m) is m(1 - e^(-c/m)); truncating to whole milliseconds
	// takes about 0.5 ms off.
	want := 200*(1-math.Exp(-3)) - 0.5
	if got := sum / n; math.Abs(got-want) > 1.5 {
		t.Errorf("mean delay %.2f ms, want %.2f", got, want)
	}
	// P(X >= c) = e^-3.
	if p := float64(capped) / n; math.Abs(p-math.Exp(-3)) > 0.005 {
		t.Errorf("capped fraction %.4f, want %.4f", p, math.Exp(-3))
	}
}
