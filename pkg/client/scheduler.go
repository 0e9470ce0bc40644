package client

import (
	"math"
	"math/rand/v2"
	"time"
)

// stream is one of the client's send streams (docs/spec/client.md section 3): what a slot of
// the send schedule carries.
type stream int

const (
	// streamSend has lambda_P of the slots: the next real packet if one is due, else a drop
	// packet.
	streamSend stream = iota
	// streamLoop has lambda_L of the slots: a loop packet that comes back to the client.
	streamLoop
	// streamDrop has lambda_D of the slots: a drop packet.
	streamDrop
	nStreams
)

func (s stream) String() string {
	return [...]string{"send", "loop", "drop"}[s]
}

// scheduler is the send schedule: slots at a fixed period 1/(lambda_P + lambda_L + lambda_D),
// from a random phase, each slot given to a stream drawn independently with probability
// lambda_i over the sum. Each stream thus has its rate, and the link shows one frame per period
// whatever the user does.
//
// Fixed slots, not Poisson events (which Loopix uses): with Poisson events the sender's link
// shows a frame at the lag a delivered message took through the mixes only because one of its
// frames was that message, while other links show one there only by chance; an observer who
// learns when the message was delivered ranks the true sender above chance from that alone
// (docs/PRIVACY.md, attack (a)). With fixed slots every link has a frame at every phase of its
// period, and the lag through five exponential delays, taken modulo the period, is uniform to
// within a part in a thousand at the defaults (docs/SECURITY.md), so the same observer learns
// nothing. The mixes' delays stay exponential: that is where the memoryless property matters.
//
// It uses no clock: callers feed it the current time, which makes it testable with virtual time.
type scheduler struct {
	rng    *rand.Rand
	rates  [nStreams]float64
	total  float64
	period time.Duration // 0 when no stream has a rate: nothing is ever sent
	next   time.Time     // the next slot
}

// never is how far away the next slot is when nothing is sent.
const never = time.Duration(math.MaxInt64 / 2)

func newScheduler(rng *rand.Rand, rates [nStreams]float64, now time.Time) *scheduler {
	s := &scheduler{rng: rng}
	s.setRates(rates, now)
	return s
}

// setRates changes the rates (a new consensus). The slots keep their phase while the next one
// is no further than the new period; otherwise (a first call, a shorter period, or sending
// resumed after a zero rate) the next slot is drawn uniformly within one new period of now.
func (s *scheduler) setRates(rates [nStreams]float64, now time.Time) {
	s.rates, s.total = rates, 0
	for _, r := range rates {
		if r > 0 && !math.IsInf(r, 0) {
			s.total += r
		}
	}
	if !(s.total > 0) {
		s.period, s.next = 0, now.Add(never)
		return
	}
	s.period = time.Duration(float64(time.Second) / s.total)
	if s.period <= 0 {
		s.period = 1
	}
	if s.next.IsZero() || s.next.Sub(now) > s.period {
		s.next = now.Add(time.Duration(s.rng.Float64() * float64(s.period)))
	}
}

// peek returns when the next slot is.
func (s *scheduler) peek() time.Time { return s.next }

// pop returns the next slot's stream and time and moves to the following slot. Slots more than
// a period before now (the caller fell behind: a stalled machine, a slow disk) are skipped on
// the same grid, so that a stall is not followed by a burst.
func (s *scheduler) pop(now time.Time) (stream, time.Time) {
	if s.period == 0 {
		return streamDrop, s.next
	}
	if late := now.Sub(s.next); late > s.period {
		s.next = s.next.Add(late / s.period * s.period)
	}
	at := s.next
	s.next = at.Add(s.period)
	return s.draw(), at
}

// draw picks the stream of a slot: stream i with probability rates[i] / total.
func (s *scheduler) draw() stream {
	u := s.rng.Float64() * s.total
	last := streamSend
	for k := range nStreams {
		r := s.rates[k]
		if !(r > 0) || math.IsInf(r, 0) {
			continue
		}
		last = k
		if u < r {
			return k
		}
		u -= r
	}
	return last // rounding at the top end
}

// hopDelay draws a per-hop delay: exponential with the consensus mean (1/mu), capped at the
// consensus maximum (docs/spec/pki.md section 3: senders never pick a delay above it), in whole
// milliseconds as the Sphinx Delay command carries it.
func hopDelay(rng *rand.Rand, mean, maxDelay time.Duration) uint32 {
	d := time.Duration(rng.ExpFloat64() * float64(mean))
	d = min(d, maxDelay)
	return uint32(d / time.Millisecond)
}
