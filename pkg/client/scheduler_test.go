package client

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func testRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

// simulate runs the scheduler over d of virtual time, the caller always on time, and returns
// the slots per stream and the time of every slot.
func simulate(s *scheduler, start time.Time, d time.Duration) (counts [nStreams]int, slots []time.Time) {
	prev := start
	for {
		k, at := s.pop(s.peek())
		if at.Before(prev) {
			panic("scheduler went back in time")
		}
		prev = at
		if at.Sub(start) >= d {
			return counts, slots
		}
		counts[k]++
		slots = append(slots, at)
	}
}

// scheduleProblems says what is wrong with a schedule for rates over seconds: the slots must
// be exactly one period 1/sum(rates) apart (a fixed grid, so that the link says nothing about
// which slot carried what), their number seconds*sum within one, and each stream's share of
// them within 5 standard deviations of its binomial expectation.
func scheduleProblems(rates [nStreams]float64, seconds float64, counts [nStreams]int, slots []time.Time) []string {
	var out []string
	total := 0.0
	for _, r := range rates {
		total += r
	}
	period := time.Duration(float64(time.Second) / total)
	if want := seconds * total; math.Abs(float64(len(slots))-want) > 1 {
		out = append(out, fmt.Sprintf("%d slots in %.0f s, want %.0f", len(slots), seconds, want))
	}
	for i := 1; i < len(slots); i++ {
		if g := slots[i].Sub(slots[i-1]); g != period {
			out = append(out, fmt.Sprintf("slot %d came %v after the one before, want %v", i, g, period))
			break
		}
	}
	n := float64(len(slots))
	for k := range nStreams {
		p := rates[k] / total
		want, sd := n*p, math.Sqrt(n*p*(1-p))
		if math.Abs(float64(counts[k])-want) > 5*sd+0.5 {
			out = append(out, fmt.Sprintf("%s: %d slots of %.0f, want %.0f +- %.0f", k, counts[k], n, want, 5*sd))
		}
	}
	return out
}

func TestSchedulerRates(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := [nStreams]float64{streamSend: 5, streamLoop: 2, streamDrop: 1}
	s := newScheduler(testRand(1), r, start)
	const seconds = 4000
	counts, slots := simulate(s, start, seconds*time.Second)
	for _, p := range scheduleProblems(r, seconds, counts, slots) {
		t.Error(p)
	}
}

// The check above must be able to fail: a schedule at the wrong rate, streams in the wrong
// proportion, or Poisson events instead of a grid are caught.
func TestSchedulerCheckCatchesWrongLaw(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	want := [nStreams]float64{5, 2, 1}
	counts, slots := simulate(newScheduler(testRand(2), [nStreams]float64{5.5, 2, 1}, start), start, 4000*time.Second)
	if len(scheduleProblems(want, 4000, counts, slots)) == 0 {
		t.Error("a 6% rate error passed the check")
	}
	counts, slots = simulate(newScheduler(testRand(2), [nStreams]float64{4.5, 2.5, 1}, start), start, 4000*time.Second)
	if len(scheduleProblems(want, 4000, counts, slots)) == 0 {
		t.Error("streams in the wrong proportion passed the check")
	}
	rng := testRand(3)
	var poisson []time.Time
	var pc [nStreams]int
	for at := start; at.Sub(start) < 4000*time.Second; at = at.Add(time.Duration(rng.ExpFloat64() / 8 * float64(time.Second))) {
		poisson = append(poisson, at)
		pc[streamSend]++
	}
	if len(scheduleProblems([nStreams]float64{8, 0, 0}, 4000, pc, poisson)) == 0 {
		t.Error("Poisson events passed as a fixed grid")
	}
}

// The first slot is drawn uniformly within one period: links started at the same moment do not
// share a phase, and the phase says nothing.
func TestSchedulerPhase(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := [nStreams]float64{2, 0.5, 0.5}
	period := time.Second / 3
	const n, bins = 20000, 10
	var hist [bins]int
	rng := testRand(5)
	for range n {
		at := newScheduler(rng, r, start).peek()
		off := at.Sub(start)
		if off < 0 || off >= period {
			t.Fatalf("first slot %v after the start, want within one period %v", off, period)
		}
		hist[int(off*bins/period)]++
	}
	// Chi-square with 9 degrees of freedom: 27.9 is its 0.001 quantile from the top.
	chi := 0.0
	for _, h := range hist {
		chi += math.Pow(float64(h)-n/bins, 2) / (n / bins)
	}
	if chi > 27.9 {
		t.Errorf("first slots not uniform within the period: chi-square %.1f over %v", chi, hist)
	}
}

// A caller that fell behind (a stalled machine) gets the latest slot on the same grid, not a
// burst of the slots it missed.
func TestSchedulerSkipsMissedSlots(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newScheduler(testRand(6), [nStreams]float64{2, 0.5, 0.5}, start)
	first := s.peek()
	period := s.period
	now := first.Add(10*period + period/2)
	_, at := s.pop(now)
	if at.After(now) || now.Sub(at) > period {
		t.Fatalf("after a stall the slot is %v before now, want within one period (%v)", now.Sub(at), period)
	}
	if off := at.Sub(first); off%period != 0 {
		t.Fatalf("the slot left the grid: %v after the first, not a multiple of %v", off, period)
	}
	if _, next := s.pop(now); next.Sub(at) != period {
		t.Fatalf("the slot after it is %v later, want %v", next.Sub(at), period)
	}
	// A caller late by less than a period keeps its slot: a short delay is not a skip.
	_, at2 := s.pop(s.peek().Add(period / 2))
	if at2.Sub(at) != 2*period {
		t.Fatalf("a slot late by half a period was skipped")
	}
}

func TestSchedulerSetRates(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newScheduler(testRand(3), [nStreams]float64{1, 1, 1}, start)
	simulate(s, start, 100*time.Second)
	// A longer period keeps the phase: the next slot stays where it was.
	mid := s.peek().Add(-time.Millisecond)
	before := s.peek()
	s.setRates([nStreams]float64{1, 0.5, 0.5}, mid)
	if s.peek() != before {
		t.Fatalf("a longer period moved the next slot from %v to %v", before, s.peek())
	}
	// A shorter one starts within one new period.
	mid = s.peek()
	r := [nStreams]float64{10, 0, 3}
	s.setRates(r, mid)
	if d := s.peek().Sub(mid); d < 0 || d >= s.period {
		t.Fatalf("after a shorter period the next slot is %v away, want within %v", d, s.period)
	}
	from := s.peek()
	counts, slots := simulate(s, from, 2000*time.Second)
	if counts[streamLoop] != 0 {
		t.Fatalf("a stream of rate 0 had %d slots", counts[streamLoop])
	}
	for _, p := range scheduleProblems(r, 2000, counts, slots) {
		t.Error(p)
	}
	// No rate at all: no slot in any foreseeable time.
	s.setRates([nStreams]float64{}, mid)
	if _, at := s.pop(mid); at.Sub(mid) < 100*365*24*time.Hour {
		t.Fatalf("with every rate 0 a slot came %v later", at.Sub(mid))
	}
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
