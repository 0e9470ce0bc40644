package entropy

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// ref is the pool model computed the slow way: every output averages the stored distributions
// of the packets inside, with no running sums, counts or supports to keep right.
type ref struct {
	made   map[string]float64
	dist   map[PacketID]map[string]float64
	at     map[PacketID]string // node, "" on a link
	client map[PacketID]bool   // entered its node from a client link
	user   map[string]bool
}

func (r *ref) average(node string, both bool, made float64) map[string]float64 {
	out := map[string]float64{}
	total := made
	for id, n := range r.at {
		if n == node && (both || !r.client[id]) {
			total++
			for s, p := range r.dist[id] {
				out[s] += p
			}
		}
	}
	if total == 0 {
		return map[string]float64{node: 1}
	}
	out[node] += made
	for s := range out {
		out[s] /= total
		if out[s] == 0 {
			delete(out, s)
		}
	}
	return out
}

func (r *ref) bits(d map[string]float64) float64 {
	users := 0.0
	for s, p := range d {
		if r.user[s] {
			users += p
		}
	}
	h := 0.0
	for s, p := range d {
		if r.user[s] {
			q := p / users
			h -= q * math.Log2(q)
		}
	}
	return h
}

// Random consistent streams through a few nodes give the same distributions and entropies in the
// tracker as in the slow reference.
func TestAgainstReference(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		nodes := []string{"p0", "p1", "m1", "m2", "m3"}
		made := map[string]float64{"m1": 0.3, "m2": 1.5}
		tr := New(Config{Made: made, Prune: 1e-300})
		r := &ref{made: made, dist: map[PacketID]map[string]float64{}, at: map[PacketID]string{}, client: map[PacketID]bool{}, user: map[string]bool{}}
		next := PacketID(1)
		pick := func(f func(id PacketID) bool) (PacketID, bool) {
			var ids []PacketID
			for id := range r.dist {
				if f(id) {
					ids = append(ids, id)
				}
			}
			if len(ids) == 0 {
				return 0, false
			}
			slices.Sort(ids) // map order is random; the choice must depend on the seed only
			return ids[rng.IntN(len(ids))], true
		}
		delivered := 0
		for step := range 3000 {
			at := ms(step)
			switch rng.IntN(5) {
			case 0: // a user sends
				u := "u" + strconv.Itoa(rng.IntN(8))
				r.user[u] = true
				r.dist[next], r.at[next] = map[string]float64{u: 1}, ""
				if err := tr.Send(Send{At: at, Packet: next, Sender: u, Kind: Drop}); err != nil {
					t.Fatal(err)
				}
				next++
			case 1: // a node takes in a packet from a link
				id, ok := pick(func(id PacketID) bool { return r.at[id] == "" })
				if !ok {
					continue
				}
				n := nodes[rng.IntN(len(nodes))]
				fc := n[0] == 'p' && rng.IntN(2) == 0
				r.at[id], r.client[id] = n, fc
				if err := tr.Receive(Receive{At: at, Node: n, Packet: id, FromClient: fc}); err != nil {
					t.Fatal(err)
				}
			case 2: // a node sends a packet on, or a mix makes one
				n := nodes[rng.IntN(len(nodes))]
				if made[n] > 0 && rng.IntN(4) == 0 {
					r.dist[next], r.at[next] = r.average(n, true, made[n]), ""
					if err := tr.Emit(Emit{At: at, Node: n, Out: next, Made: true}); err != nil {
						t.Fatal(err)
					}
					next++
					continue
				}
				id, ok := pick(func(id PacketID) bool { return r.at[id] == n })
				if !ok {
					continue
				}
				d := r.average(n, true, made[n])
				delete(r.dist, id)
				delete(r.at, id)
				r.dist[next], r.at[next] = d, ""
				if err := tr.Emit(Emit{At: at, Node: n, In: id, Out: next}); err != nil {
					t.Fatal(err)
				}
				next++
			case 3, 4: // a final hop, maybe a real message, maybe answered
				n := nodes[rng.IntN(len(nodes))]
				id, ok := pick(func(id PacketID) bool { return r.at[id] == n && !r.client[id] })
				if !ok {
					continue
				}
				real := rng.IntN(2) == 0
				want := r.bits(r.average(n, false, 0))
				var reply PacketID
				var replyDist map[string]float64
				if rng.IntN(2) == 0 {
					reply, replyDist = next, r.average(n, true, 0)
					next++
				}
				delete(r.dist, id)
				delete(r.at, id)
				if reply != 0 {
					r.dist[reply], r.at[reply] = replyDist, ""
				}
				got, err := tr.Deliver(Deliver{At: at, Node: n, Packet: id, Real: real, Reply: reply})
				if err != nil {
					t.Fatal(err)
				}
				if real {
					delivered++
					if math.Abs(got.Bits-want) > 1e-5 {
						t.Fatalf("seed %d step %d: %g bits, reference %g", seed, step, got.Bits, want)
					}
				}
			}
		}
		for id, want := range r.dist {
			got, _ := tr.Distribution(id)
			if len(got) != len(want) {
				t.Fatalf("seed %d packet %d: support %d, reference %d", seed, id, len(got), len(want))
			}
			for s, p := range want {
				if math.Abs(got[s]-p) > 1e-5 {
					t.Fatalf("seed %d packet %d: %s at %g, reference %g", seed, id, s, got[s], p)
				}
			}
		}
		if delivered < 100 {
			t.Fatalf("seed %d: only %d real deliveries compared", seed, delivered)
		}
	}
}
