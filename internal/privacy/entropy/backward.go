package entropy

import (
	"fmt"
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
// event, whatever the pools' sizes. [Backward.Measure] carries a batch of messages in one pass
// over the events before them, each in its own column.
//
// The results equal the Tracker's but for rounding: the Tracker stores float32 probabilities and
// prunes mass below Config.Prune at every output, Backward carries float64 mass and prunes only
// the final distribution (TestBackwardMatchesTracker).
type Backward struct {
	cfg Config
	senders
	clock
	nodes map[string]int32 // node name -> node number
	self  []int32          // node number -> its sender index
	made  []float64        // node number -> Config.Made
	count [][2]int32       // node number -> pool sizes while recording
	live  map[PacketID]liveRef
	hops  []bhop
	log   []brec
	roots []broot
	// Slots: a float64 per packet inside a node (hops) or on a link (links) while a measure
	// runs, numbered at recording so that packets whose stays do not overlap share one.
	freeHops, freeLinks []int32
	hopSlots, linkSlots int32
	maxEvents           int
}

// liveRef is a packet alive in the recording: inside a node (hop >= 0) or on a link, where
// origin says where its mass goes (>= 0: the log entry that made it; < 0: user -origin-1).
type liveRef struct {
	hop    int32
	origin int32
	link   int32 // on a link from a node's output: its link slot
	truth  int32
}

// bhop is one stay of a packet in a node, from its Receive to its Emit or Deliver.
type bhop struct {
	node     int32 // node number
	kind     uint8
	arr, dep int32 // log indices; dep -1 while inside
	origin   int32 // as liveRef.origin
	slot     int32 // hop slot
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
	link   int32 // the output's link slot
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
	cfg = cfg.withDefaults()
	return &Backward{cfg: cfg, senders: newSenders(cfg.MaxSenders), nodes: map[string]int32{}, live: map[PacketID]liveRef{}, maxEvents: DefaultMaxEvents}
}

// DefaultMaxEvents bounds the recorded events (about 50 bytes each with their packets' stays):
// 7 GB, seven times what 100,000 users make in 10 s; log and hop indices are int32 in any case.
const DefaultMaxEvents = 1 << 28

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
	if len(b.log) >= b.maxEvents {
		return fmt.Errorf("%w: %d events", ErrLimit, b.maxEvents)
	}
	return b.next(at)
}

func (b *Backward) sender(name string, user bool) (int32, error) {
	i, _, err := b.number(name, user)
	return i, err
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
	return addLive(b.live, id, r, b.cfg.MaxPackets)
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
	b.hops = append(b.hops, bhop{node: n, kind: kind, arr: at, dep: -1, origin: r.origin, slot: take(&b.freeHops, &b.hopSlots)})
	if r.origin >= 0 {
		b.log[r.origin].out = h
		b.freeLinks = append(b.freeLinks, r.link)
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
	b.freeHops = append(b.freeHops, hp.slot)
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
	link := take(&b.freeLinks, &b.linkSlots)
	b.log = append(b.log, brec{op: opEmit, node: n, hop: in.hop, out: -1, link: link, kc: c[fromClient], kn: c[fromNode]})
	if !e.Made {
		b.leave(e.In, in.hop, at)
	}
	return b.add(e.Out, liveRef{hop: -1, origin: at, link: link, truth: in.truth})
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
	link := int32(-1)
	if e.Reply != 0 {
		link = take(&b.freeLinks, &b.linkSlots)
	}
	b.log = append(b.log, brec{op: opDeliver, node: n, hop: r.hop, out: -1, link: link, kc: c[fromClient], kn: c[fromNode]})
	b.leave(e.Packet, r.hop, at)
	root := -1
	if e.Real {
		root = len(b.roots)
		b.roots = append(b.roots, broot{at: at, message: e.Message, packet: e.Packet, time: e.At, node: e.Node, truth: r.truth})
	}
	if e.Reply != 0 {
		if err := b.add(e.Reply, liveRef{hop: -1, origin: at, link: link, truth: b.self[n]}); err != nil {
			return -1, err
		}
	}
	return root, nil
}

// take returns a free slot, or a new one.
func take(free *[]int32, n *int32) int32 {
	if k := len(*free); k > 0 {
		i := (*free)[k-1]
		*free = (*free)[:k-1]
		return i
	}
	*n++
	return *n - 1
}

// residue is the mass left unresolved at which a measure stops: far below Prune, so the
// distribution it leaves out cannot move a probability by more than that.
const residue = 1e-12

// MaxBatch bounds the messages of one [Backward.Measure]: its memory is a float64 per message
// for every slot, sender and node.
const MaxBatch = 256

// Measure computes the measures of the real messages roots (indices from [Backward.Deliver]) in
// one backward pass over the events, each message's mass carried in its own column. Measures
// may run at once.
func (b *Backward) Measure(roots []int) ([]Delivered, error) {
	K := len(roots)
	if K == 0 {
		return nil, nil
	}
	if K > MaxBatch {
		return nil, fmt.Errorf("%w: %d messages in one measure, at most %d", ErrLimit, K, MaxBatch)
	}
	// The messages in delivery order, latest first, for the sweep to inject each at its event.
	order := make([]int, K)
	for k, i := range roots {
		if i < 0 || i >= len(b.roots) {
			return nil, fmt.Errorf("entropy: no real message %d", i)
		}
		order[k] = k
	}
	slices.SortFunc(order, func(x, y int) int { return int(b.roots[roots[y]].at) - int(b.roots[roots[x]].at) })
	top := b.roots[roots[order[0]]].at
	acc := make([]float64, len(b.self)*2*K)   // per node and pool kind: sum of output mass over pool size
	hs := make([]float64, int(b.hopSlots)*K)  // per hop slot: the running sum at its departure
	ls := make([]float64, int(b.linkSlots)*K) // per link slot: the mass of the packet on it
	mass := make([]float64, len(b.names)*K)   // per sender: the mass resolved to it
	resolved := make([]float64, K)
	next := 0
	for j := top; j >= 0; j-- {
		if j&4095 == 0 && slices.IndexFunc(resolved, func(r float64) bool { return 1-r > residue }) < 0 {
			break
		}
		e := &b.log[j]
		switch e.op {
		case opReceive:
			h := &b.hops[e.hop]
			a := acc[(int(h.node)*2+int(h.kind))*K:][:K]
			var st []float64
			if h.dep >= 0 && h.dep <= top {
				st = hs[int(h.slot)*K:][:K]
			}
			if h.origin < 0 {
				u := mass[int(-h.origin-1)*K:][:K]
				for k, m := range a {
					if st != nil {
						m -= st[k]
					}
					if m > 0 {
						u[k] += m
						resolved[k] += m
					}
				}
				continue
			}
			l := ls[int(b.log[h.origin].link)*K:][:K]
			copy(l, a)
			if st != nil {
				for k := range l {
					l[k] -= st[k]
				}
			}
		case opEmit, opDeliver:
			n := int(e.node)
			ac, an := acc[n*2*K:][:K], acc[(n*2+1)*K:][:K]
			if e.hop >= 0 {
				// The leaving packet is inside at its own output: its sum before this output's.
				src := ac
				if b.hops[e.hop].kind == fromNode {
					src = an
				}
				copy(hs[int(b.hops[e.hop].slot)*K:][:K], src)
			}
			for next < K && b.roots[roots[order[next]]].at == j {
				an[order[next]] += 1 / float64(e.kn)
				next++
			}
			if e.out < 0 || b.hops[e.out].arr > top {
				continue // no output, or one not yet swept: no mass
			}
			made := 0.0
			if e.op == opEmit {
				made = b.made[n]
			}
			total := made + float64(e.kc) + float64(e.kn)
			self := mass[int(b.self[n])*K:][:K]
			for k, m := range ls[int(e.link)*K:][:K] {
				switch {
				case m <= 0:
				case total == 0:
					self[k] += m // nothing inside: the node is the only origin
					resolved[k] += m
				default:
					if made > 0 {
						self[k] += m * made / total
						resolved[k] += m * made / total
					}
					ac[k] += m / total
					an[k] += m / total
				}
			}
		}
	}
	out := make([]Delivered, K)
	for k, i := range roots {
		root := b.roots[i]
		d := dist{}
		for s := range b.names {
			if m := mass[s*K+k]; m >= b.cfg.Prune {
				d.idx = append(d.idx, int32(s))
				d.p = append(d.p, float32(m))
			}
		}
		out[k] = measureDist(b.names, b.isUser, b.cfg.Watch, d, root.truth)
		out[k].Message, out[k].Packet, out[k].At, out[k].Node = root.message, root.packet, root.time, root.node
	}
	return out, nil
}

// Results measures every real message delivered so far, in delivery order.
func (b *Backward) Results() ([]Delivered, error) {
	out := make([]Delivered, 0, len(b.roots))
	for lo := 0; lo < len(b.roots); lo += MaxBatch {
		batch := make([]int, 0, MaxBatch)
		for i := lo; i < min(lo+MaxBatch, len(b.roots)); i++ {
			batch = append(batch, i)
		}
		r, err := b.Measure(batch)
		if err != nil {
			return nil, err
		}
		out = append(out, r...)
	}
	return out, nil
}
