package entropy

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// both applies every event to a Tracker and a Backward; they must accept and refuse alike.
type both struct {
	tr *Tracker
	bw *Backward
}

func newBoth(cfg Config) *both { return &both{tr: New(cfg), bw: NewBackward(cfg)} }

func (b *both) apply(t *testing.T, e Event) error {
	t.Helper()
	err1, err2 := b.tr.Apply(e), b.bw.Apply(e)
	if (err1 == nil) != (err2 == nil) {
		t.Fatalf("event %+v: tracker %v, backward %v", e, err1, err2)
	}
	return err1
}

// compare checks that the two measured the same messages alike: tol bits of entropy, and the
// probabilities to tol too.
func (b *both) compare(t *testing.T, tol float64) float64 {
	t.Helper()
	want := b.tr.Results()
	got, err := b.bw.Results()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("backward measured %d messages, tracker %d", len(got), len(want))
	}
	worst := 0.0
	for i := range want {
		w, g := want[i], got[i]
		worst = max(worst, math.Abs(g.Bits-w.Bits))
		if math.Abs(g.Bits-w.Bits) > tol || math.Abs(g.SenderProb-w.SenderProb) > tol || math.Abs(g.WatchProb-w.WatchProb) > tol ||
			g.Sender != w.Sender || g.Message != w.Message || g.Packet != w.Packet || g.At != w.At || g.Node != w.Node ||
			(g.Guess != w.Guess && math.Abs(g.GuessProb-w.GuessProb) > tol) {
			t.Fatalf("message %d: backward %+v, tracker %+v", i, g, w)
		}
	}
	return worst
}

// The hand-made streams of entropy_test.go, through both.
func TestBackwardHandMade(t *testing.T) {
	b := newBoth(Config{Made: map[string]float64{"m": 1}, Watch: "bob"})
	for _, e := range []Event{
		Send{At: ms(0), Packet: 1, Sender: "alice", Kind: Real},
		Send{At: ms(1), Packet: 2, Sender: "bob", Kind: Drop},
		Send{At: ms(1), Packet: 3, Sender: "carol", Kind: Loop},
		Receive{At: ms(2), Node: "p", Packet: 1, FromClient: true},
		Receive{At: ms(2), Node: "p", Packet: 2, FromClient: true},
		Emit{At: ms(3), Node: "p", In: 1, Out: 11},
		Receive{At: ms(4), Node: "m", Packet: 11},
		Receive{At: ms(4), Node: "m", Packet: 3},
		Emit{At: ms(5), Node: "m", Out: 21, Made: true},
		Emit{At: ms(6), Node: "m", In: 11, Out: 12},
		Receive{At: ms(7), Node: "q", Packet: 12},
		Receive{At: ms(7), Node: "q", Packet: 21},
		Deliver{At: ms(8), Node: "q", Packet: 12, Real: true, Message: "x", Reply: 31},
		Emit{At: ms(9), Node: "p", In: 2, Out: 13},
		Receive{At: ms(10), Node: "p", Packet: 31},
		Receive{At: ms(10), Node: "p", Packet: 13},
		Deliver{At: ms(11), Node: "p", Packet: 13, Real: true, Message: "y"},
		Deliver{At: ms(12), Node: "q", Packet: 21, Real: true, Message: "z"},
	} {
		if err := b.apply(t, e); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(b.tr.Results()); n != 3 {
		t.Fatalf("%d messages measured, want 3", n)
	}
	b.compare(t, 1e-6)
}

// Random consistent streams through providers and mixes with loops and replies measure alike.
func TestBackwardMatchesTrackerRandom(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 2))
		nodes := []string{"p0", "p1", "m1", "m2", "m3"}
		b := newBoth(Config{Made: map[string]float64{"m1": 0.3, "m2": 1.5}, Prune: 1e-300, Watch: "u3"})
		where := map[PacketID]string{} // "" on a link
		client := map[PacketID]bool{}
		next := PacketID(1)
		pick := func(f func(id PacketID) bool) (PacketID, bool) {
			var ids []PacketID
			for id := range where {
				if f(id) {
					ids = append(ids, id)
				}
			}
			if len(ids) == 0 {
				return 0, false
			}
			slices.Sort(ids)
			return ids[rng.IntN(len(ids))], true
		}
		for step := range 3000 {
			at := ms(step / 2) // ties in time too
			var err error
			switch rng.IntN(5) {
			case 0:
				where[next] = ""
				err = b.apply(t, Send{At: at, Packet: next, Sender: "u" + strconv.Itoa(rng.IntN(8)), Kind: Drop})
				next++
			case 1:
				id, ok := pick(func(id PacketID) bool { return where[id] == "" })
				if !ok {
					continue
				}
				n := nodes[rng.IntN(len(nodes))]
				where[id], client[id] = n, n[0] == 'p' && rng.IntN(2) == 0
				err = b.apply(t, Receive{At: at, Node: n, Packet: id, FromClient: client[id]})
			case 2:
				n := nodes[rng.IntN(len(nodes))]
				if rng.IntN(4) == 0 {
					where[next] = ""
					err = b.apply(t, Emit{At: at, Node: n, Out: next, Made: true})
					next++
					break
				}
				id, ok := pick(func(id PacketID) bool { return where[id] == n })
				if !ok {
					continue
				}
				delete(where, id)
				where[next] = ""
				err = b.apply(t, Emit{At: at, Node: n, In: id, Out: next})
				next++
			case 3, 4:
				n := nodes[rng.IntN(len(nodes))]
				id, ok := pick(func(id PacketID) bool { return where[id] == n && !client[id] })
				if !ok {
					continue
				}
				delete(where, id)
				var reply PacketID
				if rng.IntN(2) == 0 {
					reply = next
					where[reply] = ""
					next++
				}
				err = b.apply(t, Deliver{At: at, Node: n, Packet: id, Real: rng.IntN(2) == 0, Message: strconv.Itoa(step), Reply: reply})
			}
			if err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
		}
		if n := len(b.tr.Results()); n < 100 {
			t.Fatalf("seed %d: only %d messages compared", seed, n)
		}
		b.compare(t, 1e-5)
	}
}

// Bad streams are refused alike, and what was accepted measures alike (FuzzEvents' encoding).
func FuzzBackward(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 0, 1, 2, 0, 1, 0, 1, 0, 1, 1, 2, 0, 3, 0, 1, 1})
	f.Add([]byte{0, 0, 1, 0, 0, 1, 2, 0, 1, 0, 1, 0, 2, 0, 1, 9, 1, 1, 9, 0, 3, 1, 9, 3})
	f.Add([]byte{0, 2, 1, 0, 1, 0, 1, 1, 2, 0, 0, 7, 1, 0, 7, 0, 3, 0, 1, 5})
	f.Fuzz(func(t *testing.T, in []byte) {
		b := newBoth(Config{Made: map[string]float64{"n0": 0.5, "n1": 0.1}, Prune: 1e-300})
		for i := 0; i+4 <= len(in) && i < 4*500; i += 4 {
			op, who, id, arg := in[i]%4, in[i+1]%3, PacketID(in[i+2]%16), in[i+3]
			node := "n" + strconv.Itoa(int(who))
			at := ms(i)
			switch op {
			case 0:
				b.apply(t, Send{At: at, Packet: id, Sender: "u" + strconv.Itoa(int(who)), Kind: Kind(arg%3 + 1)})
			case 1:
				b.apply(t, Receive{At: at, Node: node, Packet: id, FromClient: arg%2 == 1})
			case 2:
				b.apply(t, Emit{At: at, Node: node, In: id, Out: PacketID(arg % 16), Made: arg >= 128})
			case 3:
				b.apply(t, Deliver{At: at, Node: node, Packet: id, Real: arg%2 == 1, Reply: PacketID(arg / 2 % 16)})
			}
		}
		b.compare(t, 1e-5)
	})
}

func TestBackwardMeasureRange(t *testing.T) {
	bw := NewBackward(Config{})
	if _, err := bw.Measure([]int{0}); err == nil {
		t.Fatal("measure of a message never delivered: no error")
	}
	if _, err := bw.Measure(make([]int, MaxBatch+1)); !errors.Is(err, ErrLimit) {
		t.Fatalf("a batch of %d: %v, want ErrLimit", MaxBatch+1, err)
	}
}

// The recording stops at its event limit with ErrLimit and keeps what it has.
func TestBackwardEventLimit(t *testing.T) {
	bw := NewBackward(Config{})
	bw.maxEvents = 3
	for i := range 3 {
		if err := bw.Send(Send{At: ms(i), Packet: PacketID(i + 1), Sender: "u", Kind: Drop}); err != nil {
			t.Fatal(err)
		}
		if err := bw.Receive(Receive{At: ms(i), Node: "p", Packet: PacketID(i + 1), FromClient: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Receive(Receive{At: ms(4), Node: "p", Packet: 9}); !errors.Is(err, ErrLimit) {
		t.Fatalf("event past the limit: %v, want ErrLimit", err)
	}
	if bw.Events() != 3 {
		t.Fatalf("%d events kept, want 3", bw.Events())
	}
}
