package entropy

import (
	"math"
	"strconv"
	"testing"
)

// FuzzEvents applies arbitrary event streams (from the capture of a real network, a stream may
// be cut short, reordered or corrupt): the tracker refuses what is inconsistent without
// panicking, and what it keeps stays a set of probability distributions.
func FuzzEvents(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 0, 1, 2, 0, 1, 0, 1, 0, 1, 1, 2, 0, 3, 0, 1, 1})
	f.Add([]byte{0, 0, 1, 0, 0, 1, 2, 0, 1, 0, 1, 0, 2, 0, 1, 9, 1, 1, 9, 0, 3, 1, 9, 3})
	f.Add([]byte{0, 2, 1, 0, 1, 0, 1, 1, 2, 0, 0, 7, 1, 0, 7, 0, 3, 0, 1, 5})
	f.Fuzz(func(t *testing.T, b []byte) {
		tr := New(Config{Made: map[string]float64{"n0": 0.5, "n1": 0.1}})
		users := map[string]bool{}
		for i := 0; i+4 <= len(b) && i < 4*500; i += 4 {
			op, who, id, arg := b[i]%4, b[i+1]%3, PacketID(b[i+2]%16), b[i+3]
			node := "n" + strconv.Itoa(int(who))
			at := ms(i)
			var err error
			switch op {
			case 0:
				u := "u" + strconv.Itoa(int(who))
				users[u] = true
				err = tr.Send(Send{At: at, Packet: id, Sender: u, Kind: Kind(arg%3 + 1)})
			case 1:
				err = tr.Receive(Receive{At: at, Node: node, Packet: id, FromClient: arg%2 == 1})
			case 2:
				err = tr.Emit(Emit{At: at, Node: node, In: id, Out: PacketID(arg % 16), Made: arg >= 128})
			case 3:
				var d Delivered
				d, err = tr.Deliver(Deliver{At: at, Node: node, Packet: id, Real: arg%2 == 1, Reply: PacketID(arg / 2 % 16)})
				if err == nil && arg%2 == 1 {
					if d.Bits < 0 || d.Bits > math.Log2(float64(max(d.Support, 1)))+1e-6 || d.Support > len(users) {
						t.Fatalf("delivered %+v with %d users", d, len(users))
					}
				}
			}
			_ = err // refusals are expected; the checks below are what matters
		}
		for id := range tr.packets {
			d, _ := tr.Distribution(id)
			sum := 0.0
			for name, p := range d {
				if !(p > 0 && p <= 1+1e-6) {
					t.Fatalf("packet %d: %s at %g", id, name, p)
				}
				sum += p
			}
			if math.Abs(sum-1) > 1e-5 {
				t.Fatalf("packet %d: probabilities sum to %g", id, sum)
			}
		}
		for name, n := range tr.nodes {
			for k, pl := range n.pools {
				if pl.k < 0 || (pl.k == 0 && len(pl.support) != 0) {
					t.Fatalf("node %s pool %d: %d packets, support %d", name, k, pl.k, len(pl.support))
				}
			}
		}
	})
}
