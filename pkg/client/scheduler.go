package client

import (
	"math"
	"math/rand/v2"
	"time"
)

// stream is one of the client's independent Poisson send processes (docs/spec/client.md
// section 3).
type stream int

const (
	// streamSend fires at lambda_P: the next real packet if one is due, else a drop packet.
	streamSend stream = iota
	// streamLoop fires at lambda_L: a loop packet that comes back to the client.
	streamLoop
	// streamDrop fires at lambda_D: a drop packet.
	streamDrop
	nStreams
)

func (s stream) String() string {
	return [...]string{"send", "loop", "drop"}[s]
}

// scheduler merges the Poisson streams: each has exponential gaps of mean 1/rate, drawn
// independently, so the sum is a Poisson process of rate lambda_P + lambda_L + lambda_D whose
// events say nothing about which stream, or whether real data, caused them. It uses no clock:
// callers feed it the current time, which makes it testable with virtual time.
type scheduler struct {
	rng   *rand.Rand
	rates [nStreams]float64
	next  [nStreams]time.Time
}

func newScheduler(rng *rand.Rand, rates [nStreams]float64, now time.Time) *scheduler {
	s := &scheduler{rng: rng}
	s.setRates(rates, now)
	return s
}

// setRates changes the rates (a new consensus) and redraws every stream from now. Because
// exponential gaps are memoryless, redrawing does not change the law of the process.
func (s *scheduler) setRates(rates [nStreams]float64, now time.Time) {
	s.rates = rates
	for i := range s.next {
		s.next[i] = now.Add(s.gap(rates[i]))
	}
}

// gap draws an exponential gap of mean 1/rate; a stream of rate 0 (or not finite) never fires.
func (s *scheduler) gap(rate float64) time.Duration {
	if !(rate > 0) || math.IsInf(rate, 0) {
		return time.Duration(math.MaxInt64 / 2)
	}
	return time.Duration(s.rng.ExpFloat64() / rate * float64(time.Second))
}

// peek returns the stream that fires next and when.
func (s *scheduler) peek() (stream, time.Time) {
	k := stream(0)
	for i := stream(1); i < nStreams; i++ {
		if s.next[i].Before(s.next[k]) {
			k = i
		}
	}
	return k, s.next[k]
}

// pop returns the stream that fires next and when, and draws that stream's following event.
func (s *scheduler) pop() (stream, time.Time) {
	k, at := s.peek()
	s.next[k] = at.Add(s.gap(s.rates[k]))
	return k, at
}

// hopDelay draws a per-hop delay: exponential with the consensus mean (1/mu), capped at the
// consensus maximum (docs/spec/pki.md section 3: senders never pick a delay above it), in whole
// milliseconds as the Sphinx Delay command carries it.
func hopDelay(rng *rand.Rand, mean, maxDelay time.Duration) uint32 {
	d := time.Duration(rng.ExpFloat64() * float64(mean))
	d = min(d, maxDelay)
	return uint32(d / time.Millisecond)
}
