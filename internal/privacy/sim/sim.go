// Package sim is a discrete-event simulator of the mixnet's traffic as this code sends it, built
// to predict the sender entropy, latency and bandwidth of a set of parameters where the testnet
// cannot go (thousands of users), and to draw how they trade against each other (sweep.go,
// report.go).
//
// What it models, and where the code says so:
//   - Clients (docs/spec/client.md section 3): send slots at a fixed period
//     1/(lambda_P + lambda_L + lambda_D) from a random phase per user, each slot drawn in
//     proportion to the rates as a lambda_P slot (the next real message if one is queued, else
//     a drop), a loop (to a provider drawn uniformly and back through a SURB) or a drop (to a
//     provider drawn uniformly).
//     Real messages arrive at each user as a Poisson process of RealRate and wait in a FIFO
//     queue for a lambda_P slot; each is one fragment, to a recipient drawn uniformly among the
//     other users.
//   - Routes (client.md section 2): forward provider A -> L1 -> L2 -> L3 -> provider B, a mix
//     drawn uniformly in each layer; SURB routes L1 -> L2 -> L3 -> the user's provider. Every
//     hop, providers included, holds the packet min(X, MaxDelay) rounded down to whole
//     milliseconds, X exponential of mean MeanDelay (pki.md section 3; mixd's node process).
//   - Providers (DESIGN.md section 3, services.md): a real message's final hop is stored and
//     acknowledged through its SURB at once; a loop is echoed through its SURB at once; a drop
//     ends; a reply ends at the user's provider (in the user's queue).
//   - Mixes: their own loops at lambda_M, through one mix of each other layer and back to
//     themselves (mixd/internal/node sendLoop).
//
// Not modelled: link latency and bandwidth, losses and retransmissions (no packet is lost),
// epoch changes, retrievals (a fixed-rate exchange that carries no information), several
// fragments per message. Every packet's path is reported to an entropy.Tracker, or recorded by an
// entropy.Backward, which computes the sender entropy of each real message
// (internal/privacy/entropy).
//
// Cost: forward (entropy.Tracker), every packet's distribution spans up to all users, so a
// simulated second costs time and memory in proportion to the square of the users online.
// Backward (entropy.Backward: MethodBackward, and MethodAuto above BackwardUsers users),
// the events are recorded, a few dozen bytes each, and each batch of measured messages costs one
// pass over them: memory and time grow with the events, in proportion to the users. Measured on
// the shared two-core machine of the report (BenchmarkSim*; docs/BENCHMARKS.md): 50 users, 11
// minutes simulated, 0.7 to 2.6 s; 500 users, 70 s simulated, 5 to 11 s; 10,000 users, 15 s
// simulated, forward 12 to 17 minutes of wall time and a 5.9 GB peak, backward 26 s (13.22
// bits); 100,000 users, 10.3 s simulated and 286 messages measured, backward 3 min 40 s and a
// 5.3 GB peak, 16.54 bits against log2(100,000) = 16.61.
package sim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/privacy/entropy"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// Params are a simulated network and its traffic.
type Params struct {
	Users         int
	Providers     int
	MixesPerLayer int
	// Rates per second, as in pki.Parameters.
	LambdaP, LambdaL, LambdaD, LambdaM float64
	MeanDelay, MaxDelay                time.Duration
	// RealRate is the rate of real messages per user per second.
	RealRate float64
	// Messages enqueued in [Warmup, Duration) are measured; traffic goes on until they are
	// delivered.
	Duration, Warmup time.Duration
	// Prune is the entropy tracker's threshold (0: its default).
	Prune float64
	// Method is how the sender entropies are computed (MethodAuto: by the number of users).
	Method Method
}

// Method is how a run computes the sender entropies; the two give the same measures to float32
// rounding and pruning (TestBackwardMatchesForward: 5e-9 bits).
type Method uint8

// Methods.
const (
	// MethodAuto is MethodForward up to BackwardUsers users, MethodBackward above.
	MethodAuto Method = iota
	// MethodForward tracks every packet's distribution over the users as it goes
	// (entropy.Tracker): memory grows with the square of the users.
	MethodForward
	// MethodBackward records the events and measures each message afterwards by carrying its
	// mass back through them (entropy.Backward): memory grows with the events.
	MethodBackward
)

// BackwardUsers is the number of users above which MethodAuto measures backward: forward,
// 10,000 users took 12 to 17 minutes and a 5.9 GB peak, backward 26 s; 2,000 users, 10.4 s
// forward and 1.3 s backward, the same entropies to 3e-10 bits. Small runs stay forward, the
// reference that the testnet's capture uses too.
const BackwardUsers = 1000

// Limits of a simulation, so that a typo does not take the machine's memory.
const (
	MaxUsers         = 1_000_000
	MaxNodes         = 1000 // providers, and mixes per layer
	MaxDuration      = 24 * time.Hour
	maxDrain         = time.Hour
	DefaultUsers     = 50
	DefaultProviders = 2 // pkg/testnet's default: alpha and beta
	DefaultMixes     = 1 // pkg/testnet's default MixesPerLayer
	// DefaultRealRate is one mail per 100 s per user: more than a person writes, so that ten
	// minutes give enough messages to measure; a real message takes a lambda_P slot a drop
	// would have used, so the traffic barely changes (one acknowledgement more).
	DefaultRealRate = 0.01
)

// DefaultParams returns the network's default parameters (pki.DefaultParameters) on the
// testnet's shape with DefaultUsers users, ten minutes measured after one of warm-up.
func DefaultParams() Params {
	return FromPKI(pki.DefaultParameters(), DefaultUsers, DefaultProviders, DefaultMixes)
}

// FromPKI returns Params with the rates and delays of a consensus's parameters.
func FromPKI(pp pki.Parameters, users, providers, mixesPerLayer int) Params {
	return Params{
		Users: users, Providers: providers, MixesPerLayer: mixesPerLayer,
		LambdaP: pp.LambdaP, LambdaL: pp.LambdaL, LambdaD: pp.LambdaD, LambdaM: pp.LambdaM,
		MeanDelay: pp.MeanDelay, MaxDelay: pp.MaxDelay,
		RealRate: DefaultRealRate,
		Duration: 11 * time.Minute, Warmup: time.Minute,
	}
}

// Validate checks p.
func (p Params) Validate() error {
	switch {
	case p.Users < 2 || p.Users > MaxUsers:
		return fmt.Errorf("sim: users %d not in [2, %d]", p.Users, MaxUsers)
	case p.Providers < 1 || p.Providers > MaxNodes:
		return fmt.Errorf("sim: providers %d not in [1, %d]", p.Providers, MaxNodes)
	case p.MixesPerLayer < 1 || p.MixesPerLayer > MaxNodes:
		return fmt.Errorf("sim: mixes per layer %d not in [1, %d]", p.MixesPerLayer, MaxNodes)
	case p.MeanDelay < time.Millisecond || p.MaxDelay < p.MeanDelay:
		return fmt.Errorf("sim: need 1 ms <= mean delay (%v) <= max delay (%v)", p.MeanDelay, p.MaxDelay)
	case p.Warmup < 0 || p.Duration <= p.Warmup || p.Duration > MaxDuration:
		return fmt.Errorf("sim: need 0 <= warmup (%v) < duration (%v) <= %v", p.Warmup, p.Duration, MaxDuration)
	case p.Method > MethodBackward:
		return fmt.Errorf("sim: unknown method %d", p.Method)
	case p.RealRate < 0 || p.RealRate >= p.LambdaP:
		return fmt.Errorf("sim: real rate %g must be in [0, lambda_P = %g) or the queues grow without end", p.RealRate, p.LambdaP)
	}
	for _, r := range []struct {
		name string
		v    float64
	}{{"lambda_p", p.LambdaP}, {"lambda_l", p.LambdaL}, {"lambda_d", p.LambdaD}, {"lambda_m", p.LambdaM}} {
		if !(r.v >= 0 && r.v <= 1000) {
			return fmt.Errorf("sim: %s %g not in [0, 1000]", r.name, r.v)
		}
	}
	return nil
}

// Counts are the events of the measured window [Warmup, Duration).
type Counts struct {
	Slots, Reals, Loops, Drops, MixLoops, Arrivals int
}

// Result is what a run measured.
type Result struct {
	Params Params
	Seed   uint64
	// Messages is the number of real messages measured.
	Messages int
	// Sender entropy (bits) of the measured messages.
	MeanEntropy, MedianEntropy, P10Entropy float64
	Entropy                                entropy.Summary
	// Latency of the measured messages, from enqueue to delivery at the recipient's provider.
	LatencyMean, LatencyP50, LatencyP99 time.Duration
	// PacketsPerUser is the packets a client sends per second (its upstream bandwidth, in
	// packets of the geometry's size), measured.
	PacketsPerUser float64
	Counts         Counts
	// Elapsed is the wall-clock time of the run.
	Elapsed time.Duration
}

// ExpectedLatency is the analytic mean latency of a real message: the wait for a lambda_P slot
// plus five hops of floor(min(X, MaxDelay)) ms, whose mean is sum_{k=1..c} e^(-k/m) with m
// and c in ms.
//
// The lambda_P slots are a grid of period T = 1/(lambda_P + lambda_L + lambda_D) of which each
// point is kept with probability q = lambda_P T, so the gap X between two of them is T times a
// geometric count: E[X] = 1/lambda_P, E[X^2] = T^2 (2-q)/q^2. A message that finds its queue
// empty waits the residual gap E[X^2] / (2 E[X]) = T (2-q) / (2q); with others queued ahead,
// at load rho = RealRate/lambda_P, the sojourn is taken as that over (1 - rho), which is exact
// for Poisson slots (the M/M/1 sojourn) and matches the simulation at the loads used here
// (TestLatency).
func ExpectedLatency(p Params) time.Duration {
	m := float64(p.MeanDelay) / float64(time.Millisecond)
	c := math.Floor(float64(p.MaxDelay) / float64(time.Millisecond))
	q := math.Exp(-1 / m)
	hop := q * (1 - math.Pow(q, c)) / (1 - q) // milliseconds
	sec := slotWait(p)/(1-p.RealRate/p.LambdaP) + 5*hop/1000
	return time.Duration(sec * float64(time.Second))
}

// Run simulates p with the random seed seed; the same p and seed give the same Result (but
// Elapsed).
func Run(p Params, seed uint64) (Result, error) {
	if err := p.Validate(); err != nil {
		return Result{}, err
	}
	start := time.Now()
	s := newSim(p, seed)
	if err := s.run(); err != nil {
		return Result{}, err
	}
	if err := s.measure(); err != nil {
		return Result{}, err
	}
	r := s.result()
	r.Seed = seed
	r.Elapsed = time.Since(start)
	return r, nil
}

// Event kinds of the simulation's queue.
const (
	evSlot    = iota // a user's slot drawn as lambda_P's
	evLoop           // a user's slot drawn as a loop
	evDrop           // a user's slot drawn as a drop
	evTick           // a user's send slot, not yet drawn
	evArrival        // a real message reaches a user's queue
	evMixLoop        // a mix's lambda_M tick
	evHop            // a packet's delay at its node ends
)

type event struct {
	t    float64 // seconds
	seq  uint64  // ties in creation order, for determinism
	kind uint8
	who  int32 // user or node
	pkt  *packet
}

// Packet kinds.
const (
	pkReal = iota
	pkDrop
	pkLoop
	pkReply
	pkMixLoop
)

type packet struct {
	id    entropy.PacketID
	kind  uint8
	route []int32   // node indices: the hops still to come, the current one first
	delay []float64 // seconds, per hop
	user  int32     // the sending user (reals, loops), or -1
	msg   *message  // reals
	surb  bool      // the final hop answers through a SURB
}

type message struct {
	id       int
	enqueued float64
	measured bool
}

type sim struct {
	p        Params
	rng      *rand.Rand
	q        evHeap
	seq      uint64
	nextID   entropy.PacketID
	tr       *entropy.Tracker  // forward, or nil
	bw       *entropy.Backward // backward, or nil
	roots    []int             // bw's indices of the measured messages
	nodeName []string
	userName []string
	layer    [3][]int32 // node indices of each layer's mixes
	provOf   []int32    // user -> provider node index
	queue    [][]*message
	mixLayer []int   // node index -> layer (0 for providers)
	period   float64 // seconds between a user's send slots; 0: none
	pending  int
	msgs     int
	end      float64
	warm     float64
	counts   Counts
	lat      []float64
	res      []entropy.Delivered
}

func newSim(p Params, seed uint64) *sim {
	s := &sim{
		p:   p,
		rng: rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)),
		end: p.Duration.Seconds(), warm: p.Warmup.Seconds(),
	}
	if sum := p.LambdaP + p.LambdaL + p.LambdaD; sum > 0 {
		s.period = 1 / sum
	}
	made := map[string]float64{}
	for i := range p.Providers {
		s.nodeName = append(s.nodeName, "provider"+strconv.Itoa(i))
		s.mixLayer = append(s.mixLayer, 0)
	}
	for l := range 3 {
		for j := range p.MixesPerLayer {
			name := "mix" + strconv.Itoa(l+1) + "." + strconv.Itoa(j)
			s.layer[l] = append(s.layer[l], int32(len(s.nodeName)))
			s.nodeName = append(s.nodeName, name)
			s.mixLayer = append(s.mixLayer, l+1)
			made[name] = p.LambdaM * p.MeanDelay.Seconds()
		}
	}
	cfg := entropy.Config{Made: made, Prune: p.Prune}
	if p.Method == MethodBackward || (p.Method == MethodAuto && p.Users > BackwardUsers) {
		s.bw = entropy.NewBackward(cfg)
	} else {
		s.tr = entropy.New(cfg)
	}
	s.queue = make([][]*message, p.Users)
	for u := range p.Users {
		s.userName = append(s.userName, "user"+strconv.Itoa(u))
		s.provOf = append(s.provOf, int32(u%p.Providers))
	}
	return s
}

func (s *sim) push(t float64, kind uint8, who int32, pkt *packet) {
	s.seq++
	s.q.push(event{t: t, seq: s.seq, kind: kind, who: who, pkt: pkt})
}

func (s *sim) exp(rate float64) float64 { return s.rng.ExpFloat64() / rate }

func (s *sim) at(t float64) time.Duration { return time.Duration(t * float64(time.Second)) }

// delay draws one hop's delay as senders do: min(X, max) in whole milliseconds.
func (s *sim) delay() float64 {
	d := s.rng.ExpFloat64() * float64(s.p.MeanDelay)
	d = min(d, float64(s.p.MaxDelay))
	return math.Floor(d/float64(time.Millisecond)) / 1000
}

func (s *sim) mix(l int) int32 { return s.layer[l][s.rng.IntN(len(s.layer[l]))] }

func (s *sim) id() entropy.PacketID { s.nextID++; return s.nextID }

func (s *sim) run() error {
	for u := range s.p.Users {
		if s.period > 0 {
			s.push(s.rng.Float64()*s.period, evTick, int32(u), nil)
		}
		if s.p.RealRate > 0 {
			s.push(s.exp(s.p.RealRate), evArrival, int32(u), nil)
		}
	}
	if s.p.LambdaM > 0 {
		for l := range 3 {
			for _, m := range s.layer[l] {
				s.push(s.exp(s.p.LambdaM), evMixLoop, m, nil)
			}
		}
	}
	limit := s.end + maxDrain.Seconds()
	for s.q.len() > 0 {
		e := s.q.pop()
		if e.t >= s.end && s.pending == 0 {
			break
		}
		if e.t > limit {
			return fmt.Errorf("sim: %d measured messages not delivered %v after the end", s.pending, maxDrain)
		}
		if err := s.handle(e); err != nil {
			return err
		}
	}
	return nil
}

// draw picks a slot's stream in proportion to the rates, as pkg/client's scheduler does.
func (s *sim) draw() uint8 {
	u := s.rng.Float64() * (s.p.LambdaP + s.p.LambdaL + s.p.LambdaD)
	if u < s.p.LambdaP {
		return evSlot
	}
	if u < s.p.LambdaP+s.p.LambdaL {
		return evLoop
	}
	return evDrop
}

// slotWait is the mean wait of a message that finds its queue empty for the next lambda_P
// slot (ExpectedLatency).
func slotWait(p Params) float64 {
	T := 1 / (p.LambdaP + p.LambdaL + p.LambdaD)
	q := p.LambdaP * T
	return T * (2 - q) / (2 * q)
}

func (s *sim) window(t float64) bool { return t >= s.warm && t < s.end }

func (s *sim) handle(e event) error {
	switch e.kind {
	case evTick:
		s.push(e.t+s.period, evTick, e.who, nil)
		return s.userSend(e.t, s.draw(), e.who)
	case evArrival:
		s.push(e.t+s.exp(s.p.RealRate), evArrival, e.who, nil)
		m := &message{id: s.msgs, enqueued: e.t, measured: s.window(e.t)}
		s.msgs++
		if m.measured {
			s.pending++
			s.counts.Arrivals++
		}
		s.queue[e.who] = append(s.queue[e.who], m)
		return nil
	case evMixLoop:
		s.push(e.t+s.exp(s.p.LambdaM), evMixLoop, e.who, nil)
		return s.mixLoop(e.t, e.who)
	case evHop:
		return s.hop(e.t, e.pkt)
	}
	return errors.New("sim: unknown event")
}

func (s *sim) userSend(t float64, kind uint8, u int32) error {
	in := s.window(t)
	a := s.provOf[u]
	pk := &packet{id: s.id(), user: u}
	var b int32
	switch kind {
	case evSlot:
		if in {
			s.counts.Slots++
		}
		if q := s.queue[u]; len(q) > 0 {
			pk.kind, pk.msg, pk.surb = pkReal, q[0], true
			s.queue[u] = q[1:]
			r := s.rng.Int32N(int32(s.p.Users - 1))
			if r >= u {
				r++ // anyone but the sender
			}
			b = s.provOf[r]
			if in {
				s.counts.Reals++
			}
		} else {
			pk.kind = pkDrop
			b = s.rng.Int32N(int32(s.p.Providers))
		}
	case evLoop:
		pk.kind, pk.surb = pkLoop, true
		b = s.rng.Int32N(int32(s.p.Providers))
		if in {
			s.counts.Loops++
		}
	case evDrop:
		pk.kind = pkDrop
		b = s.rng.Int32N(int32(s.p.Providers))
		if in {
			s.counts.Drops++
		}
	}
	pk.route = []int32{a, s.mix(0), s.mix(1), s.mix(2), b}
	pk.delay = make([]float64, len(pk.route))
	for i := range pk.delay {
		pk.delay[i] = s.delay()
	}
	ek := entropy.Drop
	switch pk.kind {
	case pkReal:
		ek = entropy.Real
	case pkLoop:
		ek = entropy.Loop
	}
	if err := s.send(entropy.Send{At: s.at(t), Packet: pk.id, Sender: s.userName[u], Kind: ek}); err != nil {
		return err
	}
	return s.enter(t, pk, true)
}

// enter puts pk into the first node of its route and schedules its departure.
func (s *sim) enter(t float64, pk *packet, fromClient bool) error {
	n := pk.route[0]
	if err := s.receive(entropy.Receive{At: s.at(t), Node: s.nodeName[n], Packet: pk.id, FromClient: fromClient}); err != nil {
		return err
	}
	s.push(t+pk.delay[0], evHop, n, pk)
	return nil
}

func (s *sim) mixLoop(t float64, m int32) error {
	if s.window(t) {
		s.counts.MixLoops++
	}
	l := s.mixLayer[m] - 1
	pk := &packet{id: s.id(), kind: pkMixLoop, user: -1}
	pk.route = []int32{s.mix((l + 1) % 3), s.mix((l + 2) % 3), m}
	pk.delay = []float64{s.delay(), s.delay(), s.delay()}
	if err := s.emit(entropy.Emit{At: s.at(t), Node: s.nodeName[m], Out: pk.id, Made: true}); err != nil {
		return err
	}
	return s.enter(t, pk, false)
}

// hop ends pk's delay at its current node: it goes on, or ends here.
func (s *sim) hop(t float64, pk *packet) error {
	n := pk.route[0]
	if len(pk.route) > 1 {
		out := s.id()
		if err := s.emit(entropy.Emit{At: s.at(t), Node: s.nodeName[n], In: pk.id, Out: out}); err != nil {
			return err
		}
		pk.id, pk.route, pk.delay = out, pk.route[1:], pk.delay[1:]
		return s.enter(t, pk, false)
	}
	d := entropy.Deliver{At: s.at(t), Node: s.nodeName[n], Packet: pk.id, Real: pk.kind == pkReal}
	var reply *packet
	if pk.surb {
		// The SURB was made with the packet: L1, L2, L3, then the sender's provider.
		reply = &packet{id: s.id(), kind: pkReply, user: pk.user,
			route: []int32{s.mix(0), s.mix(1), s.mix(2), s.provOf[pk.user]}}
		reply.delay = []float64{s.delay(), s.delay(), s.delay(), s.delay()}
		d.Reply = reply.id
	}
	if d.Real {
		d.Message = strconv.Itoa(pk.msg.id)
	}
	var res entropy.Delivered
	var root int
	var err error
	if s.bw != nil {
		root, err = s.bw.Deliver(d)
	} else {
		res, err = s.tr.Deliver(d)
	}
	if err != nil {
		return err
	}
	if d.Real && pk.msg.measured {
		s.pending--
		s.lat = append(s.lat, t-pk.msg.enqueued)
		if s.bw != nil {
			s.roots = append(s.roots, root)
		} else {
			s.res = append(s.res, res)
		}
	}
	if reply != nil {
		return s.enter(t, reply, false)
	}
	return nil
}

// send, receive and emit give an event to the forward tracker or the backward recorder (not
// through Apply: an interface would allocate each event).
func (s *sim) send(e entropy.Send) error {
	if s.bw != nil {
		return s.bw.Send(e)
	}
	return s.tr.Send(e)
}

func (s *sim) receive(e entropy.Receive) error {
	if s.bw != nil {
		return s.bw.Receive(e)
	}
	return s.tr.Receive(e)
}

func (s *sim) emit(e entropy.Emit) error {
	if s.bw != nil {
		return s.bw.Emit(e)
	}
	return s.tr.Emit(e)
}

// measure computes the backward measures of the measured messages, in batches of at most
// entropy.MaxBatch (one pass over the recorded events each) on GOMAXPROCS goroutines.
func (s *sim) measure() error {
	if s.bw == nil {
		return nil
	}
	s.res = make([]entropy.Delivered, len(s.roots))
	n := len(s.roots)
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers == 0 {
		return nil
	}
	batches := max(workers, (n+entropy.MaxBatch-1)/entropy.MaxBatch)
	size := (n + batches - 1) / batches
	next := make(chan int)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for lo := range next {
				hi := min(lo+size, n)
				r, err := s.bw.Measure(s.roots[lo:hi])
				if err != nil {
					errs[w] = err
					continue
				}
				copy(s.res[lo:hi], r)
			}
		})
	}
	for lo := 0; lo < n; lo += size {
		next <- lo
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

func (s *sim) result() Result {
	r := Result{Params: s.p, Messages: len(s.res), Counts: s.counts}
	r.Entropy = entropy.Summarize(s.res)
	r.MeanEntropy, r.MedianEntropy, r.P10Entropy = r.Entropy.Mean, r.Entropy.Median, r.Entropy.P10
	if len(s.lat) > 0 {
		sort.Float64s(s.lat)
		sum := 0.0
		for _, l := range s.lat {
			sum += l
		}
		d := func(x float64) time.Duration { return time.Duration(x * float64(time.Second)) }
		r.LatencyMean = d(sum / float64(len(s.lat)))
		r.LatencyP50 = d(entropy.Quantile(s.lat, 0.5))
		r.LatencyP99 = d(entropy.Quantile(s.lat, 0.99))
	}
	window := s.end - s.warm
	c := s.counts
	r.PacketsPerUser = float64(c.Slots+c.Loops+c.Drops) / window / float64(s.p.Users)
	return r
}

// evHeap is a binary min-heap of events by (t, seq), typed so that events are not boxed in
// interfaces as container/heap would.
type evHeap struct{ a []event }

func (h *evHeap) len() int { return len(h.a) }

func (h *evHeap) less(i, j int) bool {
	if h.a[i].t != h.a[j].t {
		return h.a[i].t < h.a[j].t
	}
	return h.a[i].seq < h.a[j].seq
}

func (h *evHeap) push(e event) {
	h.a = append(h.a, e)
	i := len(h.a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h.a[i], h.a[p] = h.a[p], h.a[i]
		i = p
	}
}

func (h *evHeap) pop() event {
	top := h.a[0]
	last := len(h.a) - 1
	h.a[0] = h.a[last]
	h.a[last] = event{}
	h.a = h.a[:last]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(h.a) && h.less(l, m) {
			m = l
		}
		if r < len(h.a) && h.less(r, m) {
			m = r
		}
		if m == i {
			return top
		}
		h.a[i], h.a[m] = h.a[m], h.a[i]
		i = m
	}
}
