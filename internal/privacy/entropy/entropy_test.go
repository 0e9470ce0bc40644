package entropy

import (
	"errors"
	"math"
	"testing"
	"time"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func apply(t *testing.T, tr *Tracker, evs ...Event) {
	t.Helper()
	for i, e := range evs {
		if err := tr.Apply(e); err != nil {
			t.Fatalf("event %d (%+v): %v", i, e, err)
		}
	}
}

// near allows for the float32 storage of probabilities.
func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

// h is the Shannon entropy in bits of the probabilities ps.
func h(ps ...float64) float64 {
	s := 0.0
	for _, p := range ps {
		s -= p * math.Log2(p)
	}
	return s
}

func last(t *testing.T, tr *Tracker) Delivered {
	t.Helper()
	rs := tr.Results()
	if len(rs) == 0 {
		t.Fatal("no delivered message")
	}
	return rs[len(rs)-1]
}

// One mix, two packets from two users: the output is either with probability 1/2: one bit.
func TestOneMixTwoPackets(t *testing.T) {
	tr := New(Config{})
	apply(t, tr,
		Send{At: ms(0), Packet: 1, Sender: "alice", Kind: Real},
		Send{At: ms(1), Packet: 2, Sender: "bob", Kind: Drop},
		Receive{At: ms(2), Node: "m", Packet: 1},
		Receive{At: ms(3), Node: "m", Packet: 2},
		Deliver{At: ms(4), Node: "m", Packet: 1, Real: true, Message: "x"},
	)
	d := last(t, tr)
	if !near(d.Bits, 1) || d.Support != 2 || !near(d.SenderProb, 0.5) || d.Sender != "alice" || d.Message != "x" {
		t.Fatalf("got %+v, want 1 bit over 2 users, alice at 1/2", d)
	}
	// The pool now holds bob's packet alone: delivering it tells the sender (0 bits).
	apply(t, tr, Deliver{At: ms(5), Node: "m", Packet: 2, Real: true})
	if d := last(t, tr); d.Bits != 0 || d.Guess != "bob" || d.GuessProb != 1 {
		t.Fatalf("got %+v, want 0 bits, guess bob", d)
	}
	if tr.Alive() != 0 {
		t.Fatalf("%d packets alive after all delivered", tr.Alive())
	}
}

// Watch reports the watched user's probability for every message, the sender or not.
func TestWatch(t *testing.T) {
	tr := New(Config{Watch: "bob"})
	apply(t, tr,
		Send{At: ms(0), Packet: 1, Sender: "alice", Kind: Real},
		Send{At: ms(1), Packet: 2, Sender: "bob", Kind: Drop},
		Send{At: ms(2), Packet: 3, Sender: "carol", Kind: Drop},
		Receive{At: ms(3), Node: "m", Packet: 1},
		Receive{At: ms(4), Node: "m", Packet: 2},
		Receive{At: ms(5), Node: "m", Packet: 3},
		Deliver{At: ms(6), Node: "m", Packet: 1, Real: true, Message: "x"},
	)
	if d := last(t, tr); d.Sender != "alice" || !near(d.WatchProb, 1.0/3) || !near(d.SenderProb, 1.0/3) {
		t.Fatalf("got %+v, want bob watched at 1/3", d)
	}
	tr = New(Config{})
	apply(t, tr, Send{At: ms(0), Packet: 1, Sender: "bob", Kind: Real}, Receive{At: ms(1), Node: "m", Packet: 1},
		Deliver{At: ms(2), Node: "m", Packet: 1, Real: true})
	if d := last(t, tr); d.WatchProb != 0 || d.SenderProb != 1 {
		t.Fatalf("nobody watched, got %+v", d)
	}
}

// A packet that arrives after the output left is not in the pool.
func TestLaterArrivalNotMixed(t *testing.T) {
	tr := New(Config{})
	apply(t, tr,
		Send{At: ms(0), Packet: 1, Sender: "alice", Kind: Real},
		Receive{At: ms(0), Node: "m", Packet: 1},
		Deliver{At: ms(1), Node: "m", Packet: 1, Real: true},
		Send{At: ms(2), Packet: 2, Sender: "bob", Kind: Drop},
		Receive{At: ms(2), Node: "m", Packet: 2},
	)
	if d := last(t, tr); d.Bits != 0 || d.Guess != "alice" {
		t.Fatalf("got %+v, want 0 bits", d)
	}
}

// Two hops: {a,b} mixed at m1 (1/2 each), then with c at m2: 1/4, 1/4, 1/2 = 1.5 bits.
func TestTwoHops(t *testing.T) {
	tr := New(Config{})
	apply(t, tr,
		Send{At: ms(0), Packet: 1, Sender: "a", Kind: Real},
		Send{At: ms(0), Packet: 2, Sender: "b", Kind: Loop},
		Receive{At: ms(1), Node: "m1", Packet: 1},
		Receive{At: ms(1), Node: "m1", Packet: 2},
		Emit{At: ms(2), Node: "m1", In: 1, Out: 10},
		Send{At: ms(2), Packet: 3, Sender: "c", Kind: Drop},
		Receive{At: ms(3), Node: "m2", Packet: 10},
		Receive{At: ms(3), Node: "m2", Packet: 3},
	)
	got, _ := tr.Distribution(10)
	if len(got) != 2 || !near(got["a"], 0.5) || !near(got["b"], 0.5) {
		t.Fatalf("distribution of 10 = %v, want a, b at 1/2", got)
	}
	apply(t, tr, Deliver{At: ms(4), Node: "m2", Packet: 10, Real: true})
	d := last(t, tr)
	if !near(d.Bits, 1.5) || !near(d.SenderProb, 0.25) || d.Guess != "c" || !near(d.GuessProb, 0.5) {
		t.Fatalf("got %+v, want 1.5 bits, a at 1/4, guess c at 1/2", d)
	}
	// m1 still holds b's packet only: its output is certainly b's.
	apply(t, tr, Emit{At: ms(5), Node: "m1", In: 2, Out: 11})
	if got, _ := tr.Distribution(11); len(got) != 1 || got["b"] != 1 {
		t.Fatalf("distribution of 11 = %v, want b certain", got)
	}
}

// The ground truth says which packet left: its own distribution leaves the pool, the others
// stay. Three users at m: the first output is 1/3 each; after a's packet left, the next is b
// or c at 1/2.
func TestTruthFollowed(t *testing.T) {
	tr := New(Config{})
	apply(t, tr,
		Send{At: ms(0), Packet: 1, Sender: "a"},
		Send{At: ms(0), Packet: 2, Sender: "b"},
		Send{At: ms(0), Packet: 3, Sender: "c"},
		Receive{At: ms(0), Node: "m", Packet: 1},
		Receive{At: ms(0), Node: "m", Packet: 2},
		Receive{At: ms(0), Node: "m", Packet: 3},
		Emit{At: ms(1), Node: "m", In: 1, Out: 11},
		Emit{At: ms(2), Node: "m", In: 3, Out: 13},
		Receive{At: ms(3), Node: "n", Packet: 11},
		Receive{At: ms(3), Node: "n", Packet: 13},
		Deliver{At: ms(4), Node: "n", Packet: 13, Real: true},
	)
	// At n: 11 = {a,b,c: 1/3}, 13 = {b,c: 1/2}; the average: a 1/6, b 5/12, c 5/12.
	d := last(t, tr)
	if want := h(1.0/6, 5.0/12, 5.0/12); !near(d.Bits, want) || d.Sender != "c" || !near(d.SenderProb, 5.0/12) {
		t.Fatalf("got %+v, want %.6f bits, sender c at 5/12", d, want)
	}
	if d.Guess != "b" {
		t.Fatalf("guess %s, want b (tie broken by name)", d.Guess)
	}
}

// A mix's own loop: with w = 1 and one packet of a inside, an output is a or the mix at 1/2.
// Mixed with b's packet at n, a real message's distribution over users drops the mix's mass.
func TestMadePackets(t *testing.T) {
	tr := New(Config{Made: map[string]float64{"m": 1}})
	apply(t, tr,
		Send{At: ms(0), Packet: 1, Sender: "a"},
		Receive{At: ms(0), Node: "m", Packet: 1},
		Emit{At: ms(1), Node: "m", Out: 20, Made: true},
	)
	got, _ := tr.Distribution(20)
	if len(got) != 2 || !near(got["a"], 0.5) || !near(got["m"], 0.5) {
		t.Fatalf("made packet = %v, want a and m at 1/2", got)
	}
	// The made packet took nothing out of m: a's packet is still inside, and the next output
	// is again a or m at 1/2.
	apply(t, tr, Emit{At: ms(2), Node: "m", In: 1, Out: 21})
	got, _ = tr.Distribution(21)
	if len(got) != 2 || !near(got["a"], 0.5) || !near(got["m"], 0.5) {
		t.Fatalf("forwarded packet = %v, want a and m at 1/2", got)
	}
	apply(t, tr,
		Send{At: ms(3), Packet: 2, Sender: "b"},
		Receive{At: ms(3), Node: "n", Packet: 2},
		Receive{At: ms(3), Node: "n", Packet: 21},
		Deliver{At: ms(4), Node: "n", Packet: 21, Real: true},
	)
	// At n: b 1/2, a 1/4, m 1/4; over users: b 2/3, a 1/3.
	d := last(t, tr)
	if want := h(2.0/3, 1.0/3); !near(d.Bits, want) || !near(d.SenderProb, 1.0/3) || d.Sender != "a" {
		t.Fatalf("got %+v, want %.6f bits, a at 1/3", d, want)
	}
	// The made packet's truth is the mix.
	apply(t, tr, Receive{At: ms(5), Node: "m", Packet: 20}, Deliver{At: ms(6), Node: "m", Packet: 20})
}

// A provider: a delivery is one of the packets from mixes only; the reply it sends at the same
// moment is any packet inside, its clients' included.
func TestProviderKinds(t *testing.T) {
	tr := New(Config{})
	apply(t, tr,
		Send{At: ms(0), Packet: 1, Sender: "a"},
		Send{At: ms(0), Packet: 2, Sender: "b"},
		Send{At: ms(0), Packet: 3, Sender: "c"},
		Receive{At: ms(1), Node: "p", Packet: 1},
		Receive{At: ms(1), Node: "p", Packet: 2},
		Receive{At: ms(1), Node: "p", Packet: 3, FromClient: true},
		Deliver{At: ms(2), Node: "p", Packet: 1, Real: true, Reply: 30},
	)
	if d := last(t, tr); !near(d.Bits, 1) || d.Support != 2 {
		t.Fatalf("got %+v, want 1 bit over a and b (c's packet is a first hop)", d)
	}
	got, _ := tr.Distribution(30)
	if len(got) != 3 || !near(got["a"], 1.0/3) || !near(got["c"], 1.0/3) {
		t.Fatalf("reply = %v, want a, b, c at 1/3", got)
	}
	// A client's packet cannot be delivered where it enters.
	if _, err := tr.Deliver(Deliver{At: ms(3), Node: "p", Packet: 3, Real: true}); !errors.Is(err, ErrPacket) {
		t.Fatalf("delivering a first hop: %v, want ErrPacket", err)
	}
}

func TestPrune(t *testing.T) {
	tr := New(Config{Made: map[string]float64{"m": 0.1}, Prune: 0.1})
	apply(t, tr,
		Send{At: ms(0), Packet: 1, Sender: "a"},
		Receive{At: ms(0), Node: "m", Packet: 1},
		Emit{At: ms(1), Node: "m", In: 1, Out: 2},
	)
	// a at 1/1.1, m at 0.1/1.1 < 0.1: m is dropped and a renormalized to 1.
	if got, _ := tr.Distribution(2); len(got) != 1 || got["a"] != 1 {
		t.Fatalf("got %v, want a certain", got)
	}
}

func TestBadStreams(t *testing.T) {
	for _, c := range []struct {
		name string
		evs  []Event
		want error
	}{
		{"order", []Event{Send{At: ms(2), Packet: 1, Sender: "a"}, Send{At: ms(1), Packet: 2, Sender: "a"}}, ErrOrder},
		{"duplicate send", []Event{Send{Packet: 1, Sender: "a"}, Send{Packet: 1, Sender: "b"}}, ErrDuplicate},
		{"id zero", []Event{Send{Packet: 0, Sender: "a"}}, ErrPacket},
		{"receive unknown", []Event{Receive{Node: "m", Packet: 7}}, ErrPacket},
		{"receive twice", []Event{Send{Packet: 1, Sender: "a"}, Receive{Node: "m", Packet: 1}, Receive{Node: "n", Packet: 1}}, ErrPacket},
		{"emit from wrong node", []Event{Send{Packet: 1, Sender: "a"}, Receive{Node: "m", Packet: 1}, Emit{Node: "n", In: 1, Out: 2}}, ErrPacket},
		{"emit on link", []Event{Send{Packet: 1, Sender: "a"}, Emit{Node: "m", In: 1, Out: 2}}, ErrPacket},
		{"emit onto live id", []Event{Send{Packet: 1, Sender: "a"}, Send{Packet: 2, Sender: "a"}, Receive{Node: "m", Packet: 1}, Emit{Node: "m", In: 1, Out: 2}}, ErrDuplicate},
		{"deliver on link", []Event{Send{Packet: 1, Sender: "a"}, Deliver{Node: "m", Packet: 1}}, ErrPacket},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := New(Config{})
			var err error
			for _, e := range c.evs {
				if err = tr.Apply(e); err != nil {
					break
				}
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

// A stream that never ends packets is stopped at MaxPackets, not at the memory's end.
func TestPacketLimit(t *testing.T) {
	const limit = 1000
	tr := New(Config{MaxPackets: limit})
	var err error
	for i := 1; i <= 2*limit && err == nil; i++ {
		err = tr.Send(Send{Packet: PacketID(i), Sender: "a"})
	}
	if !errors.Is(err, ErrLimit) || tr.Alive() != limit {
		t.Fatalf("got %v with %d alive, want ErrLimit at %d", err, tr.Alive(), limit)
	}
}

// Senders (users and nodes) are bounded too.
func TestSenderLimit(t *testing.T) {
	tr := New(Config{MaxSenders: 3})
	apply(t, tr, Send{Packet: 1, Sender: "a"}, Send{Packet: 2, Sender: "b"}, Receive{Node: "m", Packet: 1})
	if err := tr.Send(Send{Packet: 3, Sender: "c"}); !errors.Is(err, ErrLimit) {
		t.Fatalf("fourth sender: %v, want ErrLimit", err)
	}
	if err := tr.Receive(Receive{Node: "n", Packet: 2}); !errors.Is(err, ErrLimit) {
		t.Fatalf("fourth node: %v, want ErrLimit", err)
	}
}

func TestSummarize(t *testing.T) {
	ds := []Delivered{
		{Bits: 1, Sender: "a", Guess: "a", SenderProb: 0.5, Support: 2},
		{Bits: 2, Sender: "a", Guess: "b", SenderProb: 0.25, Support: 4},
		{Bits: 3, Sender: "c", Guess: "c", SenderProb: 0.125, Support: 8},
		{Bits: 4, Sender: "c", Guess: "d", SenderProb: 0.0625, Support: 16},
	}
	s := Summarize(ds)
	if s.N != 4 || s.Mean != 2.5 || s.Median != 2 || s.P10 != 1 || s.Min != 1 || s.Max != 4 || s.AttackSuccess != 0.5 || s.MeanSupport != 7.5 || !near(s.SD, math.Sqrt(5.0/3)) {
		t.Fatalf("got %+v", s)
	}
	if s := Summarize(nil); s.N != 0 || s.Mean != 0 {
		t.Fatalf("empty: %+v", s)
	}
}
