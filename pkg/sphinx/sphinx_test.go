package sphinx

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

type testNode struct {
	id  NodeID
	key *keys.SphinxPrivateKey
}

func newNodes(t testing.TB, n int) []testNode {
	t.Helper()
	nodes := make([]testNode, n)
	for i := range nodes {
		k, err := keys.GenerateSphinxKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i].key = k
		rand.Read(nodes[i].id[:])
	}
	return nodes
}

func routeOf(nodes []testNode) []Hop {
	route := make([]Hop, len(nodes))
	for i, n := range nodes {
		route[i] = Hop{ID: n.id, PublicKey: n.key.Public(), DelayMS: uint32(100 * (i + 1))}
	}
	return route
}

func mustNew(t testing.TB, g Geometry) *Sphinx {
	t.Helper()
	s, err := New(g)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unwrapAll follows a packet along nodes and returns the final hop's result.
func unwrapAll(t *testing.T, s *Sphinx, nodes []testNode, pkt []byte) *Unwrapped {
	t.Helper()
	for i, n := range nodes {
		u, err := s.Unwrap(n.key, pkt)
		if err != nil {
			t.Fatalf("hop %d: %v", i, err)
		}
		if u.DelayMS != uint32(100*(i+1)) {
			t.Fatalf("hop %d: delay %d", i, u.DelayMS)
		}
		if i < len(nodes)-1 {
			if u.NextHop == nil || *u.NextHop != nodes[i+1].id {
				t.Fatalf("hop %d: next hop %v", i, u.NextHop)
			}
			if len(u.Packet) != s.g.PacketSize() {
				t.Fatalf("hop %d: next packet size %d", i, len(u.Packet))
			}
			pkt = u.Packet
			continue
		}
		if u.NextHop != nil || u.Recipient == nil {
			t.Fatalf("final hop %d: not final", i)
		}
		return u
	}
	return nil
}

func TestPacketRoundTripAllHopCounts(t *testing.T) {
	for _, g := range []Geometry{{Hops: 5, PayloadSize: 2048}, DefaultGeometry(), {Hops: 1, PayloadSize: 32}, {Hops: MaxHops, PayloadSize: 100}} {
		s := mustNew(t, g)
		for n := 1; n <= g.Hops; n++ {
			t.Run(fmt.Sprintf("%d-%d/%d", g.Hops, g.PayloadSize, n), func(t *testing.T) {
				nodes := newNodes(t, n)
				msg := make([]byte, g.PayloadSize-3)
				rand.Read(msg)
				to := Recipient{Service: "mailbox", ID: "bob"}
				pkt, err := s.NewPacket(rand.Reader, routeOf(nodes), to, msg)
				if err != nil {
					t.Fatal(err)
				}
				if len(pkt) != g.PacketSize() {
					t.Fatalf("packet size %d, want %d", len(pkt), g.PacketSize())
				}
				u := unwrapAll(t, s, nodes, pkt)
				if *u.Recipient != to || u.SURBID != nil {
					t.Fatalf("recipient %+v surb %v", u.Recipient, u.SURBID)
				}
				want := append(bytes.Clone(msg), 0, 0, 0)
				if !bytes.Equal(u.Payload, want) {
					t.Fatal("payload differs")
				}
			})
		}
	}
}

func TestSURBRoundTrip(t *testing.T) {
	g := Geometry{Hops: 5, PayloadSize: 1024}
	s := mustNew(t, g)
	for n := 1; n <= g.Hops; n++ {
		nodes := newNodes(t, n)
		id := [SURBIDSize]byte{1, 2, 3}
		to := Recipient{Service: "queue", ID: "alice"}
		surb, rk, err := s.NewSURB(rand.Reader, routeOf(nodes), to, id)
		if err != nil {
			t.Fatal(err)
		}
		if len(surb) != g.SURBSize() || len(rk) != ReplyKeysSize(n) {
			t.Fatalf("sizes %d %d", len(surb), len(rk))
		}
		first, pkt, err := s.NewPacketFromSURB(surb, []byte("ack: fragment 3 of 7"))
		if err != nil {
			t.Fatal(err)
		}
		if first != nodes[0].id {
			t.Fatal("first hop")
		}
		u := unwrapAll(t, s, nodes, pkt)
		if u.SURBID == nil || *u.SURBID != id || *u.Recipient != to {
			t.Fatalf("final commands %+v", u)
		}
		if len(u.Payload) != g.PayloadBlockSize() {
			t.Fatalf("reply payload size %d", len(u.Payload))
		}
		reply, err := s.ReadReply(rk, u.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(reply, []byte("ack: fragment 3 of 7")) || len(reply) != g.PayloadSize {
			t.Fatalf("reply %q", reply[:32])
		}
		bad := bytes.Clone(u.Payload)
		bad[len(bad)/2] ^= 1
		if _, err := s.ReadReply(rk, bad); !errors.Is(err, ErrPayloadTag) {
			t.Fatalf("tampered reply: %v", err)
		}
	}
}

// A tampered bit anywhere in a packet makes unwrap fail at the hop that detects it, or makes
// the final payload tag check fail.
func TestEveryBitFlipIsDetected(t *testing.T) {
	g := Geometry{Hops: 3, PayloadSize: 32}
	s := mustNew(t, g)
	nodes := newNodes(t, 3)
	pkt, err := s.NewPacket(rand.Reader, routeOf(nodes), Recipient{Service: "loop", ID: "x"}, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	hs := g.HeaderSize()
	for bit := 0; bit < len(pkt)*8; bit++ {
		p := bytes.Clone(pkt)
		p[bit/8] ^= 1 << (bit % 8)
		var failErr error
		failHop := -1
		for i, n := range nodes {
			u, err := s.Unwrap(n.key, p)
			if err != nil {
				failErr, failHop = err, i
				break
			}
			p = u.Packet
		}
		switch {
		case bit/8 < hs:
			if failHop != 0 || !errors.Is(failErr, ErrHeaderMAC) {
				t.Fatalf("header bit %d: failed at hop %d with %v, want header MAC at hop 0", bit, failHop, failErr)
			}
		default:
			if failHop != 2 || !errors.Is(failErr, ErrPayloadTag) {
				t.Fatalf("payload bit %d: failed at hop %d with %v, want payload tag at the final hop", bit, failHop, failErr)
			}
		}
	}
}

func TestUnwrapRefusals(t *testing.T) {
	g := Geometry{Hops: 5, PayloadSize: 256}
	s := mustNew(t, g)
	nodes := newNodes(t, 5)
	pkt, err := s.NewPacket(rand.Reader, routeOf(nodes), Recipient{Service: "mailbox", ID: "bob"}, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	other := newNodes(t, 1)[0]
	if _, err := s.Unwrap(other.key, bytes.Clone(pkt)); !errors.Is(err, ErrHeaderMAC) {
		t.Errorf("wrong key: %v", err)
	}
	if _, err := s.Unwrap(nodes[0].key, pkt[:len(pkt)-1]); !errors.Is(err, ErrLength) {
		t.Errorf("truncated: %v", err)
	}
	if _, err := s.Unwrap(nodes[0].key, append(bytes.Clone(pkt), 0)); !errors.Is(err, ErrLength) {
		t.Errorf("extended: %v", err)
	}
	// The same bytes under another geometry of the same packet size... cannot exist with a
	// different hash unless sizes differ, so check a different geometry rejects by length, and
	// that a geometry differing only in its hash input would fail the MAC (the salt).
	s2 := mustNew(t, Geometry{Hops: 4, PayloadSize: 256 + PerHopSize})
	if s2.g.PacketSize() != g.PacketSize() {
		t.Fatalf("test setup: sizes %d %d", s2.g.PacketSize(), g.PacketSize())
	}
	if _, err := s2.Unwrap(nodes[0].key, bytes.Clone(pkt)); !errors.Is(err, ErrHeaderMAC) {
		t.Errorf("wrong geometry of equal size: %v", err)
	}
	zeroAlpha := bytes.Clone(pkt)
	clear(zeroAlpha[:32])
	if _, err := s.Unwrap(nodes[0].key, zeroAlpha); !errors.Is(err, ErrGroupElement) {
		t.Errorf("zero alpha: %v", err)
	}
	// Over-limit inputs on the sending side.
	if _, err := s.NewPacket(rand.Reader, routeOf(newNodes(t, 6)), Recipient{Service: "mailbox", ID: "bob"}, nil); !errors.Is(err, ErrRoute) {
		t.Errorf("6 hops: %v", err)
	}
	if _, err := s.NewPacket(rand.Reader, nil, Recipient{Service: "mailbox", ID: "bob"}, nil); !errors.Is(err, ErrRoute) {
		t.Errorf("0 hops: %v", err)
	}
	if _, err := s.NewPacket(rand.Reader, routeOf(nodes), Recipient{Service: "mailbox", ID: "bob"}, make([]byte, 257)); !errors.Is(err, ErrLength) {
		t.Errorf("oversize payload: %v", err)
	}
	for _, to := range []Recipient{{"", "bob"}, {"mail box", "bob"}, {"mailbox", ""}, {"mailbox", string(make([]byte, 65))}, {"mailbox", "a\x00b"}, {"abcdefghijklmnopq", "b"}} {
		if _, err := s.NewPacket(rand.Reader, routeOf(nodes), to, nil); !errors.Is(err, ErrRoute) {
			t.Errorf("recipient %q: %v", to, err)
		}
	}
}

func TestReplayTagStableAcrossReplays(t *testing.T) {
	s := mustNew(t, Geometry{Hops: 2, PayloadSize: 64})
	nodes := newNodes(t, 2)
	pkt, _ := s.NewPacket(rand.Reader, routeOf(nodes), Recipient{Service: "loop", ID: "a"}, nil)
	pkt2, _ := s.NewPacket(rand.Reader, routeOf(nodes), Recipient{Service: "loop", ID: "a"}, nil)
	u1, err := s.Unwrap(nodes[0].key, bytes.Clone(pkt))
	if err != nil {
		t.Fatal(err)
	}
	u2, _ := s.Unwrap(nodes[0].key, bytes.Clone(pkt))
	u3, _ := s.Unwrap(nodes[0].key, pkt2)
	if u1.ReplayTag != u2.ReplayTag {
		t.Fatal("replayed packet has a different tag")
	}
	if u1.ReplayTag == u3.ReplayTag {
		t.Fatal("two packets share a tag")
	}
}

// Every hop's view of a packet is the same size and shape: the final hop's padding is random,
// so a 1-hop and a 5-hop packet look alike at the last hop except for the command bytes.
func TestFinalPaddingIsRandom(t *testing.T) {
	g := Geometry{Hops: 5, PayloadSize: 64}
	s := mustNew(t, g)
	nodes := newNodes(t, 1)
	final := finalCommands(routeOf(nodes), Recipient{Service: "mailbox", ID: "bob"}, nil)
	if got := s.paddingLen(1, final); got != g.RoutingSize()-len(appendCommands(nil, final)) {
		t.Fatalf("padding %d", got)
	}
	// Decrypt the final block and check the bytes after End are not all zero.
	pkt, _ := s.NewPacket(rand.Reader, routeOf(nodes), Recipient{Service: "mailbox", ID: "bob"}, nil)
	u, err := s.Unwrap(nodes[0].key, bytes.Clone(pkt))
	if err != nil || u.Recipient == nil {
		t.Fatal(err)
	}
	var zeroRun int
	// With random padding a run of 32 zero bytes in the header is vanishingly unlikely.
	for _, b := range pkt[32 : 32+g.RoutingSize()] {
		if b == 0 {
			zeroRun++
			if zeroRun >= 32 {
				t.Fatal("header has a run of zero bytes")
			}
		} else {
			zeroRun = 0
		}
	}
}

func TestGeometry(t *testing.T) {
	g := DefaultGeometry()
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	if g.HeaderSize() != 584 || g.PacketSize() != 16984 {
		t.Fatalf("default sizes header %d packet %d", g.HeaderSize(), g.PacketSize())
	}
	if g.Hash() != DefaultGeometry().Hash() {
		t.Fatal("hash not stable")
	}
	if g.Hash() == (Geometry{Hops: 5, PayloadSize: 16385}).Hash() || g.Hash() == (Geometry{Hops: 4, PayloadSize: 16384}).Hash() {
		t.Fatal("different geometries share a hash")
	}
	for _, bad := range []Geometry{{0, 100}, {11, 100}, {5, 31}, {5, MaxPayloadSize + 1}, {-1, -1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
		if _, err := New(bad); err == nil {
			t.Errorf("New(%+v) accepted", bad)
		}
	}
}

// Issue 17's allocation budget: an unwrap allocated 69 times (25 of them hmac.New), a reply from
// a SURB copied its 16 KB payload and allocated 42 KB. Allocation counts are deterministic, so
// they are tested here; the times are benchmarks (docs/BENCHMARKS.md).
func TestAllocationBudget(t *testing.T) {
	s := mustNew(t, DefaultGeometry())
	nodes := newNodes(t, 5)
	to := Recipient{Service: "mailbox", ID: "bob"}
	pkt, err := s.NewPacket(rand.Reader, routeOf(nodes), to, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	work := make([]byte, len(pkt))
	if n := testing.AllocsPerRun(50, func() {
		copy(work, pkt)
		if _, err := s.Unwrap(nodes[0].key, work); err != nil {
			t.Fatal(err)
		}
	}); n > 15 {
		t.Errorf("unwrap: %v allocations, want at most 15", n)
	}

	surb, _, err := s.NewSURB(rand.Reader, routeOf(nodes), Recipient{Service: "queue", ID: "alice"}, [SURBIDSize]byte{})
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, s.g.PayloadSize)
	const runs = 50
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		if _, _, err := s.NewPacketFromSURB(surb, payload); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	perReply := (after.TotalAlloc - before.TotalAlloc) / runs
	// The packet itself, and a little for the AES and CTR states; not a second payload-sized copy.
	if limit := uint64(s.g.PacketSize() + 4096); perReply > limit {
		t.Errorf("reply from a SURB allocates %d bytes, want at most %d (one packet)", perReply, limit)
	}
}
