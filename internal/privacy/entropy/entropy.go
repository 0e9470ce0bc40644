package entropy

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"
)

// PacketID names a packet between two hops (for example a hash of its bytes); 0 means none.
type PacketID uint64

// Kind is what a client's packet is; the adversary does not see it.
type Kind uint8

// Kinds of client packets.
const (
	Real Kind = iota + 1 // a fragment of a real message
	Drop                 // a drop packet (lambda_P with nothing due, or lambda_D)
	Loop                 // a loop packet (lambda_L)
)

// Event is one of [Send], [Receive], [Emit], [Deliver].
type Event interface{ at() time.Duration }

// Send: packet Packet leaves the client of user Sender for its provider at At.
type Send struct {
	At     time.Duration
	Packet PacketID
	Sender string
	Kind   Kind
}

// Receive: node Node takes in packet Packet at At, from a client link (FromClient) or from
// another node.
type Receive struct {
	At         time.Duration
	Node       string
	Packet     PacketID
	FromClient bool
}

// Emit: node Node sends packet Out to another node at At. Out is the node's input In, unwrapped
// (ground truth), or, when Made, a packet the node made itself (a mix's loop; In is ignored).
type Emit struct {
	At   time.Duration
	Node string
	In   PacketID
	Out  PacketID
	Made bool
}

// Deliver: packet Packet ends at node Node at At. Real marks a real message (its entropy is
// measured; Message is the caller's name for it). Reply, when not 0, is a packet the node sends
// at the same moment in answer through the packet's SURB (an acknowledgement, a loop's echo).
type Deliver struct {
	At      time.Duration
	Node    string
	Packet  PacketID
	Real    bool
	Message string
	Reply   PacketID
}

func (e Send) at() time.Duration    { return e.At }
func (e Receive) at() time.Duration { return e.At }
func (e Emit) at() time.Duration    { return e.At }
func (e Deliver) at() time.Duration { return e.At }

// Delivered is the measure of one delivered real message.
type Delivered struct {
	Message string
	Packet  PacketID
	At      time.Duration
	Node    string
	// Bits is the Shannon entropy of the adversary's distribution over users.
	Bits float64
	// Support is the number of users with non-zero probability.
	Support int
	// Sender is the true sender; SenderProb the probability the adversary gives it.
	Sender     string
	SenderProb float64
	// Guess is the adversary's most likely sender (ties: the first in name order) and
	// GuessProb its probability; Guess == Sender is a success of the best-guess attack.
	Guess     string
	GuessProb float64
	// WatchProb is the probability the adversary gives Config.Watch, the user it watches (a
	// long-term disclosure attack sums it over messages: attack.PosteriorDisclosure).
	WatchProb float64
}

// Config sets the adversary's knowledge.
type Config struct {
	// Made is, for each node that makes packets of its own (a mix's loops), w = lambda_M / mu:
	// its weight, counted in packets, as the possible origin of each of its outputs.
	Made map[string]float64
	// Prune drops probabilities below it (renormalizing the rest); 0 means 1e-9.
	Prune float64
	// MaxPackets bounds the packets alive at once; 0 means DefaultMaxPackets.
	MaxPackets int
	// MaxSenders bounds the distinct users and nodes; 0 means DefaultMaxSenders.
	MaxSenders int
	// Watch names a user whose probability every delivered message reports (WatchProb).
	Watch string
}

// Limits keep a corrupt or endless event stream from exhausting memory.
const (
	DefaultMaxSenders = 1 << 22 // distinct users and nodes
	DefaultMaxPackets = 1 << 24 // packets alive at once
)

// Errors of an inconsistent event stream.
var (
	ErrOrder     = errors.New("entropy: event before the previous one")
	ErrPacket    = errors.New("entropy: packet not where the event says")
	ErrDuplicate = errors.New("entropy: packet id already alive")
	ErrLimit     = errors.New("entropy: limit reached")
)

// dist is a sparse distribution over sender indices.
type dist struct {
	idx []int32
	p   []float32 // float32 halves the memory of 10,000-user runs; sums are float64
}

type packet struct {
	d     dist
	node  int32 // -1 while on a link
	kind  uint8 // pool kind inside a node
	truth int32 // the true sender
}

// Pool kinds at a node: a packet from a client link, or from another node.
const (
	fromClient = 0
	fromNode   = 1
)

// pool is the running sum of the distributions of the packets of one kind inside a node.
type pool struct {
	sum     []float64 // by sender index
	cnt     []int32   // packets in the pool with that sender in their support
	support []int32   // indices with cnt > 0
	pos     []int32   // index's place in support, or -1
	k       int
}

type node struct {
	self  int32 // the node's own sender index (for packets it makes)
	made  float64
	pools [2]pool
}

// Tracker applies events and measures delivered real messages.
type Tracker struct {
	cfg Config
	senders
	clock
	nodes   map[string]*node
	packets map[PacketID]*packet
	results []Delivered
	scratch []float64
	touched []int32
	dirty   []bool
}

// New returns a Tracker with the adversary knowledge cfg.
func New(cfg Config) *Tracker {
	cfg = cfg.withDefaults()
	return &Tracker{cfg: cfg, senders: newSenders(cfg.MaxSenders), nodes: map[string]*node{}, packets: map[PacketID]*packet{}}
}

// Results returns the measures of the real messages delivered so far, in delivery order.
func (t *Tracker) Results() []Delivered { return t.results }

// Alive returns the number of packets the tracker holds (in nodes or on links).
func (t *Tracker) Alive() int { return len(t.packets) }

// Apply applies one event.
func (t *Tracker) Apply(e Event) error {
	switch e := e.(type) {
	case Send:
		return t.Send(e)
	case Receive:
		return t.Receive(e)
	case Emit:
		return t.Emit(e)
	case Deliver:
		_, err := t.Deliver(e)
		return err
	}
	return fmt.Errorf("entropy: unknown event %T", e)
}

func (t *Tracker) sender(name string, user bool) (int32, error) {
	i, isNew, err := t.number(name, user)
	if isNew {
		t.scratch = append(t.scratch, 0)
		t.dirty = append(t.dirty, false)
	}
	return i, err
}

func (t *Tracker) node(name string) (*node, int32, error) {
	if n, ok := t.nodes[name]; ok {
		return n, n.self, nil
	}
	self, err := t.sender(name, false)
	if err != nil {
		return nil, 0, err
	}
	n := &node{self: self, made: t.cfg.Made[name]}
	t.nodes[name] = n
	return n, self, nil
}

func (t *Tracker) add(id PacketID, p *packet) error {
	return addLive(t.packets, id, p, t.cfg.MaxPackets)
}

// Send records a packet leaving a client: the adversary sees which user sent it.
func (t *Tracker) Send(e Send) error {
	if err := t.next(e.At); err != nil {
		return err
	}
	s, err := t.sender(e.Sender, true)
	if err != nil {
		return err
	}
	return t.add(e.Packet, &packet{d: dist{idx: []int32{s}, p: []float32{1}}, node: -1, truth: s})
}

// Receive puts a packet on a link into a node's pool.
func (t *Tracker) Receive(e Receive) error {
	if err := t.next(e.At); err != nil {
		return err
	}
	p, ok := t.packets[e.Packet]
	if !ok || p.node >= 0 {
		return fmt.Errorf("%w: %d received by %s but not on a link", ErrPacket, e.Packet, e.Node)
	}
	n, self, err := t.node(e.Node)
	if err != nil {
		return err
	}
	p.node, p.kind = self, fromNode
	if e.FromClient {
		p.kind = fromClient
	}
	t.grow(&n.pools[p.kind])
	n.pools[p.kind].put(p.d)
	return nil
}

// Emit takes packet In out of the node (unless Made) and puts Out on a link, carrying the
// average of the node's pools at that moment.
func (t *Tracker) Emit(e Emit) error {
	if err := t.next(e.At); err != nil {
		return err
	}
	n, self, err := t.node(e.Node)
	if err != nil {
		return err
	}
	var in *packet
	if !e.Made {
		in, err = t.inside(e.In, self, e.Node)
		if err != nil {
			return err
		}
	}
	if _, dup := t.packets[e.Out]; dup && e.Out != e.In {
		return fmt.Errorf("%w: %d", ErrDuplicate, e.Out)
	}
	d := t.average(n, true, n.made)
	truth := self
	if in != nil {
		truth = in.truth
		t.remove(n, e.In, in)
	}
	return t.add(e.Out, &packet{d: d, node: -1, truth: truth})
}

// Deliver ends a packet at a node; for a real message it returns its measure.
func (t *Tracker) Deliver(e Deliver) (Delivered, error) {
	if err := t.next(e.At); err != nil {
		return Delivered{}, err
	}
	n, self, err := t.node(e.Node)
	if err != nil {
		return Delivered{}, err
	}
	p, err := t.inside(e.Packet, self, e.Node)
	if err != nil {
		return Delivered{}, err
	}
	if e.Reply != 0 {
		if _, dup := t.packets[e.Reply]; dup {
			return Delivered{}, fmt.Errorf("%w: reply %d", ErrDuplicate, e.Reply)
		}
	}
	var res Delivered
	if e.Real {
		if p.kind != fromNode {
			return Delivered{}, fmt.Errorf("%w: real message %d delivered from a client link", ErrPacket, e.Packet)
		}
		res = t.measure(t.average(n, false, 0), p.truth)
		res.Message, res.Packet, res.At, res.Node = e.Message, e.Packet, e.At, e.Node
		t.results = append(t.results, res)
	}
	var reply dist
	if e.Reply != 0 {
		reply = t.average(n, true, 0)
	}
	t.remove(n, e.Packet, p)
	if e.Reply != 0 {
		if err := t.add(e.Reply, &packet{d: reply, node: -1, truth: self}); err != nil {
			return Delivered{}, err
		}
	}
	return res, nil
}

func (t *Tracker) inside(id PacketID, self int32, name string) (*packet, error) {
	p, ok := t.packets[id]
	if !ok || p.node != self {
		return nil, fmt.Errorf("%w: %d is not inside %s", ErrPacket, id, name)
	}
	return p, nil
}

func (t *Tracker) remove(n *node, id PacketID, p *packet) {
	n.pools[p.kind].take(p.d)
	delete(t.packets, id)
}

// average returns the adversary's distribution for an output of n: over the packets from
// nodes, and from clients too when both, plus the node itself with weight made.
func (t *Tracker) average(n *node, both bool, made float64) dist {
	var pools []*pool
	total := made
	for k := range n.pools {
		if pl := &n.pools[k]; pl.k > 0 && (k == fromNode || both) {
			pools = append(pools, pl)
			total += float64(pl.k)
		}
	}
	if total == 0 {
		// Nothing inside and no weight of its own: the only possible origin is the node.
		return dist{idx: []int32{n.self}, p: []float32{1}}
	}
	// One pool (a mix; a provider's delivery) is read in place; two are summed in scratch.
	var idx []int32
	var sum []float64
	if len(pools) == 1 {
		idx, sum = pools[0].support, pools[0].sum
	} else {
		t.touched = t.touched[:0]
		for _, pl := range pools {
			for _, i := range pl.support {
				if !t.dirty[i] {
					t.dirty[i] = true
					t.touched = append(t.touched, i)
				}
				t.scratch[i] += pl.sum[i]
			}
		}
		idx, sum = t.touched, t.scratch
	}
	d := dist{idx: make([]int32, 0, len(idx)+1), p: make([]float32, 0, len(idx)+1)}
	kept, selfSeen := 0.0, false
	for _, i := range idx {
		v := sum[i]
		if i == n.self {
			v += made
			selfSeen = true
		}
		v /= total
		if v < t.cfg.Prune {
			continue // also drops the tiny negatives left by subtracting sums
		}
		d.idx = append(d.idx, i)
		d.p = append(d.p, float32(v))
		kept += float64(float32(v))
	}
	if made > 0 && !selfSeen {
		if v := made / total; v >= t.cfg.Prune {
			d.idx = append(d.idx, n.self)
			d.p = append(d.p, float32(v))
			kept += float64(float32(v))
		}
	}
	if len(pools) > 1 {
		for _, i := range t.touched {
			t.scratch[i], t.dirty[i] = 0, false
		}
	}
	for j := range d.p {
		d.p[j] = float32(float64(d.p[j]) / kept)
	}
	return d
}

// measure computes the entropy over users of d, renormalized, and the attack figures.
func (t *Tracker) measure(d dist, truth int32) Delivered {
	return measureDist(t.names, t.isUser, t.cfg.Watch, d, truth)
}

// measureDist is measure over the senders names (isUser marking the users), for [Tracker] and
// [Backward] alike.
func measureDist(names []string, isUser []bool, watch string, d dist, truth int32) Delivered {
	users := 0.0
	for j, i := range d.idx {
		if isUser[i] {
			users += float64(d.p[j])
		}
	}
	res := Delivered{Sender: names[truth]}
	if users == 0 {
		return res
	}
	best := int32(-1)
	for j, i := range d.idx {
		if !isUser[i] {
			continue
		}
		q := float64(d.p[j]) / users
		res.Bits -= q * math.Log2(q)
		res.Support++
		if i == truth {
			res.SenderProb = q
		}
		if watch != "" && names[i] == watch {
			res.WatchProb = q
		}
		if q > res.GuessProb || (q == res.GuessProb && best >= 0 && names[i] < names[best]) {
			res.GuessProb, best = q, i
		}
	}
	res.Guess = names[best]
	if res.Bits < 0 {
		res.Bits = 0 // a point mass computes as -0
	}
	return res
}

func (t *Tracker) grow(pl *pool) {
	for len(pl.sum) < len(t.names) {
		pl.sum = append(pl.sum, 0)
		pl.cnt = append(pl.cnt, 0)
		pl.pos = append(pl.pos, -1)
	}
}

func (pl *pool) put(d dist) {
	for j, i := range d.idx {
		pl.sum[i] += float64(d.p[j])
		if pl.cnt[i] == 0 {
			pl.pos[i] = int32(len(pl.support))
			pl.support = append(pl.support, i)
		}
		pl.cnt[i]++
	}
	pl.k++
}

func (pl *pool) take(d dist) {
	for j, i := range d.idx {
		pl.cnt[i]--
		if pl.cnt[i] > 0 {
			pl.sum[i] -= float64(d.p[j])
			continue
		}
		// The last packet with this sender left: the sum is exactly 0, not a rounding residue.
		pl.sum[i] = 0
		last := pl.support[len(pl.support)-1]
		pl.support[pl.pos[i]] = last
		pl.pos[last] = pl.pos[i]
		pl.support = pl.support[:len(pl.support)-1]
		pl.pos[i] = -1
	}
	pl.k--
}

// Distribution returns a packet's current distribution by sender name, for tests and reports.
func (t *Tracker) Distribution(id PacketID) (map[string]float64, bool) {
	p, ok := t.packets[id]
	if !ok {
		return nil, false
	}
	m := make(map[string]float64, len(p.d.idx))
	for j, i := range p.d.idx {
		m[t.names[i]] = float64(p.d.p[j])
	}
	return m, true
}

// Summary is the distribution of the entropies of a set of delivered messages.
type Summary struct {
	N                 int
	Mean, Median, P10 float64
	Min, Max          float64
	SD                float64 // sample standard deviation of the entropies
	MeanSupport       float64
	AttackSuccess     float64 // fraction whose best guess is the true sender
	MeanSenderProb    float64 // mean probability given to the true sender
}

// Summarize computes a Summary of ds.
func Summarize(ds []Delivered) Summary {
	s := Summary{N: len(ds)}
	if len(ds) == 0 {
		return s
	}
	bits := make([]float64, len(ds))
	for i, d := range ds {
		bits[i] = d.Bits
		s.Mean += d.Bits
		s.MeanSupport += float64(d.Support)
		s.MeanSenderProb += d.SenderProb
		if d.Guess == d.Sender {
			s.AttackSuccess++
		}
	}
	n := float64(len(ds))
	s.Mean /= n
	if len(ds) > 1 {
		for _, b := range bits {
			s.SD += (b - s.Mean) * (b - s.Mean)
		}
		s.SD = math.Sqrt(s.SD / (n - 1))
	}
	s.MeanSupport /= n
	s.MeanSenderProb /= n
	s.AttackSuccess /= n
	sort.Float64s(bits)
	s.Min, s.Max = bits[0], bits[len(bits)-1]
	s.Median = Quantile(bits, 0.5)
	s.P10 = Quantile(bits, 0.1)
	return s
}

// Quantile returns the q-quantile of sorted xs (nearest rank).
func Quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
