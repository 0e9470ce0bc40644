package entropy

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Backward computes the same measures as [Tracker] with memory linear in the events instead of
// in packets times users: it records the events and, for each delivered real message, carries
// its probability mass back through them.
//
// The pool model is linear: an output of a node is the average of the packets inside it at that
// moment (and the node's own weight Made), so the mass of one delivered message splits equally
// over the packets inside its node at delivery, each of which carries its share back to the
// output of the previous node that made it, and so on until the mass reaches a client's send (a
// user) or a node's own weight. A packet's share at a node is the sum, over the outputs of the
// node while it was inside, of each output's mass over the pool's size at that output; sweeping
// the events backward with one running sum per node and pool kind gives it in constant time per
// event, so one message costs one pass over the events before it, whatever the pools' sizes.
//
// The results equal the Tracker's but for rounding: the Tracker stores float32 probabilities and
// prunes mass below Config.Prune at every output, Backward carries float64 mass and prunes only
// the final distribution (TestBackwardMatchesTracker).
type Backward struct {
	cfg    Config
	names  []string
	isUser []bool
	index  map[string]int32
	nodes  map[string]int32 // node name -> node number
	self   []int32          // node number -> its sender index
	made   []float64        // node number -> Config.Made
	count  [][2]int32       // node number -> pool sizes while recording
	live   map[PacketID]liveRef
	hops   []bhop
	log    []brec
	roots  []broot
	last   time.Duration
	start  bool
}

// liveRef is a packet alive in the recording: inside a node (hop >= 0) or on a link, where
// origin says where its mass goes (>= 0: the log entry that made it; < 0: user -origin-1).
type liveRef struct {
	hop    int32
	origin int32
	truth  int32
}

// bhop is one stay of a packet in a node, from its Receive to its Emit or Deliver.
type bhop struct {
	node     int32 // node number
	kind     uint8
	arr, dep int32 // log indices; dep -1 while inside
	origin   int32 // as liveRef.origin
}

// Log entry operations.
const (
	opReceive = iota
	opEmit
	opDeliver
)

// brec is one event of the log. For an Emit or a Deliver, kc and kn are the node's pool sizes
// just before it (the packet that leaves included), and out the hop its output became (-1: none,
// or never received).
type brec struct {
	op     uint8
	node   int32 // node number
	hop    int32 // Receive: the hop that starts; Emit, Deliver: the hop that ends (-1: Made)
	out    int32
	kc, kn int32
}

// broot is a delivered real message.
type broot struct {
	at      int32 // log index of its Deliver
	message string
	packet  PacketID
	time    time.Duration
	node    string
	truth   int32
}

// NewBackward returns a Backward with the adversary knowledge cfg.
func NewBackward(cfg Config) *Backward {
	if cfg.Prune == 0 {
		cfg.Prune = 1e-9
	}
	if cfg.MaxSenders == 0 {
		cfg.MaxSenders = DefaultMaxSenders
	}
	if cfg.MaxPackets == 0 {
		cfg.MaxPackets = DefaultMaxPackets
	}
	return &Backward{cfg: cfg, index: map[string]int32{}, nodes: map[string]int32{}, live: map[PacketID]liveRef{}}
}

// maxLog bounds the recorded events: log and hop indices are int32.
const maxLog = math.MaxInt32 - 1

// Apply records one event.
func (b *Backward) Apply(e Event) error {
	switch e := e.(type) {
	case Send:
		return b.Send(e)
	case Receive:
		return b.Receive(e)
	case Emit:
		return b.Emit(e)
	case Deliver:
		_, err := b.Deliver(e)
		return err
	}
	return fmt.Errorf("entropy: unknown event %T", e)
}

// Messages returns the number of real messages delivered so far.
func (b *Backward) Messages() int { return len(b.roots) }

// Events returns the number of events recorded (a measure of the memory held).
func (b *Backward) Events() int { return len(b.log) }

func (b *Backward) order(at time.Duration) error {
	if b.start && at < b.last {
		return fmt.Errorf("%w: %v after %v", ErrOrder, at, b.last)
	}
	if len(b.log) >= maxLog {
		return fmt.Errorf("%w: %d events", ErrLimit, maxLog)
	}
	b.start, b.last = true, at
	return nil
}

func (b *Backward) sender(name string, user bool) (int32, error) {
	if i, ok := b.index[name]; ok {
		if user {
			b.isUser[i] = true
		}
		return i, nil
	}
	if len(b.names) >= b.cfg.MaxSenders {
		return 0, fmt.Errorf("%w: %d senders", ErrLimit, b.cfg.MaxSenders)
	}
	i := int32(len(b.names))
	b.names = append(b.names, name)
	b.isUser = append(b.isUser, user)
	b.index[name] = i
	return i, nil
}

func (b *Backward) node(name string) (int32, error) {
	if i, ok := b.nodes[name]; ok {
		return i, nil
	}
	s, err := b.sender(name, false)
	if err != nil {
		return 0, err
	}
	i := int32(len(b.self))
	b.nodes[name] = i
	b.self = append(b.self, s)
	b.made = append(b.made, b.cfg.Made[name])
	b.count = append(b.count, [2]int32{})
	return i, nil
}

func (b *Backward) add(id PacketID, r liveRef) error {
	if id == 0 {
		return fmt.Errorf("%w: id 0", ErrPacket)
	}
	if _, ok := b.live[id]; ok {
		return fmt.Errorf("%w: %d", ErrDuplicate, id)
	}
	if len(b.live) >= b.cfg.MaxPackets {
		return fmt.Errorf("%w: %d packets alive", ErrLimit, b.cfg.MaxPackets)
	}
	b.live[id] = r
	return nil
}

// Send records a packet leaving a client.
func (b *Backward) Send(e Send) error {
	if err := b.order(e.At); err != nil {
		return err
	}
	s, err := b.sender(e.Sender, true)
	if err != nil {
		return err
	}
	return b.add(e.Packet, liveRef{hop: -1, origin: -s - 1, truth: s})
}

// Receive records a packet on a link entering a node's pool.
func (b *Backward) Receive(e Receive) error {
	if err := b.order(e.At); err != nil {
		return err
	}
	r, ok := b.live[e.Packet]
	if !ok || r.hop >= 0 {
		return fmt.Errorf("%w: %d received by %s but not on a link", ErrPacket, e.Packet, e.Node)
	}
	n, err := b.node(e.Node)
	if err != nil {
		return err
	}
	kind := uint8(fromNode)
	if e.FromClient {
		kind = fromClient
	}
	h := int32(len(b.hops))
	at := int32(len(b.log))
	b.hops = append(b.hops, bhop{node: n, kind: kind, arr: at, dep: -1, origin: r.origin})
	if r.origin >= 0 {
		b.log[r.origin].out = h
	}
	b.log = append(b.log, brec{op: opReceive, node: n, hop: h, out: -1})
	b.count[n][kind]++
	r.hop = h
	b.live[e.Packet] = r
	return nil
}

// inside returns the packet id's record when it is inside node n.
func (b *Backward) inside(id PacketID, n int32, name string) (liveRef, error) {
	r, ok := b.live[id]
	if !ok || r.hop < 0 || b.hops[r.hop].node != n {
		return liveRef{}, fmt.Errorf("%w: %d is not inside %s", ErrPacket, id, name)
	}
	return r, nil
}

// leave ends hop h at log entry at.
func (b *Backward) leave(id PacketID, h, at int32) {
	hp := &b.hops[h]
	hp.dep = at
	b.count[hp.node][hp.kind]--
	delete(b.live, id)
}

// Emit records a node's output: In leaving it (unless Made) as Out.
func (b *Backward) Emit(e Emit) error {
	if err := b.order(e.At); err != nil {
		return err
	}
	n, err := b.node(e.Node)
	if err != nil {
		return err
	}
	in := liveRef{hop: -1, truth: b.self[n]}
	if !e.Made {
		if in, err = b.inside(e.In, n, e.Node); err != nil {
			return err
		}
	}
	if _, dup := b.live[e.Out]; dup && e.Out != e.In {
		return fmt.Errorf("%w: %d", ErrDuplicate, e.Out)
	}
	at := int32(len(b.log))
	c := b.count[n]
	b.log = append(b.log, brec{op: opEmit, node: n, hop: in.hop, out: -1, kc: c[fromClient], kn: c[fromNode]})
	if !e.Made {
		b.leave(e.In, in.hop, at)
	}
	return b.add(e.Out, liveRef{hop: -1, origin: at, truth: in.truth})
}

// Deliver records a packet ending at a node. For a real message it returns its index for
// [Backward.Measure]; otherwise -1.
func (b *Backward) Deliver(e Deliver) (int, error) {
	if err := b.order(e.At); err != nil {
		return -1, err
	}
	n, err := b.node(e.Node)
	if err != nil {
		return -1, err
	}
	r, err := b.inside(e.Packet, n, e.Node)
	if err != nil {
		return -1, err
	}
	if e.Reply != 0 {
		if _, dup := b.live[e.Reply]; dup {
			return -1, fmt.Errorf("%w: reply %d", ErrDuplicate, e.Reply)
		}
	}
	if e.Real && b.hops[r.hop].kind != fromNode {
		return -1, fmt.Errorf("%w: real message %d delivered from a client link", ErrPacket, e.Packet)
	}
	at := int32(len(b.log))
	c := b.count[n]
	b.log = append(b.log, brec{op: opDeliver, node: n, hop: r.hop, out: -1, kc: c[fromClient], kn: c[fromNode]})
	b.leave(e.Packet, r.hop, at)
	root := -1
	if e.Real {
		root = len(b.roots)
		b.roots = append(b.roots, broot{at: at, message: e.Message, packet: e.Packet, time: e.At, node: e.Node, truth: r.truth})
	}
	if e.Reply != 0 {
		if err := b.add(e.Reply, liveRef{hop: -1, origin: at, truth: b.self[n]}); err != nil {
			return -1, err
		}
	}
	return root, nil
}

// Sweep is the working memory of [Backward.Measure]; one per goroutine.
type Sweep struct {
	slot []float64         // per hop: the running sum at its departure, then its mass
	acc  [][2]float64      // per node number and pool kind: the sum of output mass over pool size
	mass map[int32]float64 // by sender index
}

// NewSweep returns working memory for b's measures.
func (b *Backward) NewSweep() *Sweep {
	return &Sweep{mass: map[int32]float64{}}
}

// residue is the mass left unresolved at which a sweep stops: far below Prune, so the distribution
// it leaves out cannot move a probability by more than that.
const residue = 1e-12

// Measure computes the measure of real message i (from [Backward.Deliver]) with the working
// memory sw. Measures of different messages may run at once with different Sweeps.
func (b *Backward) Measure(i int, sw *Sweep) (Delivered, error) {
	if i < 0 || i >= len(b.roots) {
		return Delivered{}, fmt.Errorf("entropy: no real message %d", i)
	}
	root := b.roots[i]
	if cap(sw.slot) < len(b.hops) {
		sw.slot = make([]float64, len(b.hops))
	}
	slot := sw.slot[:len(b.hops)]
	if cap(sw.acc) < len(b.self) {
		sw.acc = make([][2]float64, len(b.self))
	}
	sw.acc = sw.acc[:len(b.self)]
	clear(sw.acc)
	clear(sw.mass)
	resolved := 0.0
	// Mass of a hop ends at its origin: a user's send, or the output that made it.
	for j := root.at; j >= 0 && 1-resolved > residue; j-- {
		e := &b.log[j]
		acc := &sw.acc[e.node]
		switch e.op {
		case opReceive:
			h := &b.hops[e.hop]
			start := 0.0
			if h.dep >= 0 && h.dep <= root.at {
				start = slot[e.hop]
			}
			m := acc[h.kind] - start
			if h.origin < 0 {
				if m > 0 {
					sw.mass[-h.origin-1] += m
					resolved += m
				}
				continue
			}
			slot[e.hop] = m
		case opEmit, opDeliver:
			if e.hop >= 0 {
				slot[e.hop] = acc[b.hops[e.hop].kind] // the leaving packet is inside at its own output
			}
			if j == root.at {
				acc[fromNode] += 1 / float64(e.kn)
				continue
			}
			if e.out < 0 || b.hops[e.out].arr > root.at {
				continue // no output, or one that has no mass yet
			}
			m := slot[e.out]
			if m <= 0 {
				continue
			}
			made := 0.0
			if e.op == opEmit {
				made = b.made[e.node]
			}
			total := made + float64(e.kc) + float64(e.kn)
			if total == 0 {
				sw.mass[b.self[e.node]] += m // nothing inside: the node is the only origin
				resolved += m
				continue
			}
			if made > 0 {
				sw.mass[b.self[e.node]] += m * made / total
				resolved += m * made / total
			}
			acc[fromClient] += m / total
			acc[fromNode] += m / total
		}
	}
	// In index order, so that the sums of measureDist do not depend on the map's order.
	d := dist{}
	for s, m := range sw.mass {
		if m >= b.cfg.Prune {
			d.idx = append(d.idx, s)
		}
	}
	slices.Sort(d.idx)
	for _, s := range d.idx {
		d.p = append(d.p, float32(sw.mass[s]))
	}
	res := measureDist(b.names, b.isUser, b.cfg.Watch, d, root.truth)
	res.Message, res.Packet, res.At, res.Node = root.message, root.packet, root.time, root.node
	return res, nil
}

// Results measures every real message delivered so far, in delivery order.
func (b *Backward) Results() ([]Delivered, error) {
	sw := b.NewSweep()
	out := make([]Delivered, 0, len(b.roots))
	for i := range b.roots {
		r, err := b.Measure(i, sw)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}
