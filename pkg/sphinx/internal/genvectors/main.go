// Command genvectors writes pkg/sphinx/testdata/vectors.json (docs/spec/sphinx.md §12). It is
// run only on purpose, by `make vectors`; the tests replay the committed file and never
// regenerate it. Its randomness is a deterministic generator so that a re-run reproduces the
// same file unless the format changed.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx/internal/vectors"
)

// drbg is SHA-256 in counter mode over a label: deterministic test randomness, never used
// outside vector generation.
type drbg struct {
	label   string
	counter uint64
	buf     []byte
}

func (d *drbg) Read(p []byte) (int, error) {
	for len(d.buf) < len(p) {
		var c [8]byte
		binary.BigEndian.PutUint64(c[:], d.counter)
		d.counter++
		h := sha256.Sum256(append([]byte(d.label), c[:]...))
		d.buf = append(d.buf, h[:]...)
	}
	copy(p, d.buf)
	d.buf = d.buf[len(p):]
	return len(p), nil
}

// recorder remembers every byte the sphinx package drew, to write them into the vector.
type recorder struct {
	r   io.Reader
	got []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.got = append(r.got, p[:n]...)
	return n, err
}

type gen struct {
	rng *drbg
	out []vectors.Vector
}

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "genvectors:", err)
		os.Exit(1)
	}
}

func (g *gen) bytes(n int) []byte {
	b := make([]byte, n)
	g.rng.Read(b)
	return b
}

func vgeom(geo sphinx.Geometry) vectors.Geometry {
	h := geo.Hash()
	return vectors.Geometry{Hops: geo.Hops, PayloadSize: geo.PayloadSize, Hash: h[:]}
}

type node struct {
	hop vectors.Hop
	key *keys.SphinxPrivateKey
}

func (g *gen) route(n int) ([]node, []sphinx.Hop) {
	nodes := make([]node, n)
	route := make([]sphinx.Hop, n)
	for i := range nodes {
		k, err := keys.NewSphinxPrivateKey(g.bytes(32))
		must(err)
		pub := k.Public()
		id := g.bytes(32)
		nodes[i] = node{key: k, hop: vectors.Hop{ID: id, PrivateKey: bytes.Clone(k.Scalar()[:]), PublicKey: pub[:], DelayMS: uint32(50 * (i + 1))}}
		route[i] = sphinx.Hop{ID: sphinx.NodeID(id), PublicKey: pub, DelayMS: nodes[i].hop.DelayMS}
	}
	return nodes, route
}

// walk unwraps pkt along nodes and records each hop's result.
func walk(s *sphinx.Sphinx, nodes []node, pkt []byte) []vectors.HopResult {
	pkt = bytes.Clone(pkt)
	var res []vectors.HopResult
	for _, n := range nodes {
		u, err := s.Unwrap(n.key, pkt)
		must(err)
		r := vectors.HopResult{ReplayTag: bytes.Clone(u.ReplayTag[:]), DelayMS: u.DelayMS}
		if u.NextHop != nil {
			r.NextHop = bytes.Clone(u.NextHop[:])
			r.NextPacket = bytes.Clone(u.Packet)
			pkt = u.Packet
		} else {
			r.Delivered = bytes.Clone(u.Payload)
			if u.SURBID != nil {
				r.SURBID = bytes.Clone(u.SURBID[:])
			}
		}
		res = append(res, r)
	}
	return res
}

func (g *gen) packet(geo sphinx.Geometry, n int, payloadLen int) (vectors.Vector, []node) {
	s, err := sphinx.New(geo)
	must(err)
	nodes, route := g.route(n)
	to := sphinx.Recipient{Service: "mailbox", ID: fmt.Sprintf("user%d", n)}
	payload := g.bytes(payloadLen)
	rec := &recorder{r: g.rng}
	pkt, err := s.NewPacket(rec, route, to, payload)
	must(err)
	v := vectors.Vector{
		Name: fmt.Sprintf("packet-%dhop-p%d", n, geo.PayloadSize), Kind: "packet", Expect: "ok",
		Geometry: vgeom(geo), Recipient: &vectors.Recipient{Service: to.Service, ID: to.ID},
		Payload: payload, Ephemeral: rec.got[:32], Padding: rec.got[32:], Packet: pkt,
		Hops: walk(s, nodes, pkt),
	}
	for _, nd := range nodes {
		v.Route = append(v.Route, nd.hop)
	}
	return v, nodes
}

func (g *gen) surb(geo sphinx.Geometry, n int) vectors.Vector {
	s, err := sphinx.New(geo)
	must(err)
	nodes, route := g.route(n)
	to := sphinx.Recipient{Service: "queue", ID: "alice"}
	var id [sphinx.SURBIDSize]byte
	copy(id[:], g.bytes(sphinx.SURBIDSize))
	rec := &recorder{r: g.rng}
	surb, rk, err := s.NewSURB(rec, route, to, id)
	must(err)
	payload := g.bytes(40)
	_, pkt, err := s.NewPacketFromSURB(surb, payload)
	must(err)
	hops := walk(s, nodes, pkt)
	reply, err := s.ReadReply(rk, hops[len(hops)-1].Delivered)
	must(err)
	v := vectors.Vector{
		Name: fmt.Sprintf("surb-%dhop-p%d", n, geo.PayloadSize), Kind: "surb", Expect: "ok",
		Geometry: vgeom(geo), Recipient: &vectors.Recipient{Service: to.Service, ID: to.ID},
		SURBID: id[:], Ephemeral: rec.got[:32], Padding: rec.got[32 : len(rec.got)-32], Seed: rec.got[len(rec.got)-32:],
		SURB: surb, ReplyKeys: rk, Payload: payload, Packet: pkt, Hops: hops, Reply: reply,
	}
	for _, nd := range nodes {
		v.Route = append(v.Route, nd.hop)
	}
	return v
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func (g *gen) failures(geo sphinx.Geometry) {
	base, nodes := g.packet(geo, 3, 64)
	hs := geo.HeaderSize()
	fail := func(name, expect, comment string, hop int, pkt []byte, key []byte) {
		g.out = append(g.out, vectors.Vector{Name: name, Kind: "unwrap", Expect: expect, Comment: comment,
			Geometry: base.Geometry, Hop: hop, Packet: pkt, PrivateKey: key})
	}
	k0 := nodes[0].hop.PrivateKey
	fail("fail-header-mac", "header MAC", "one bit of gamma flipped", 0, flip(base.Packet, hs-1), k0)
	fail("fail-alpha", "header MAC", "one bit of alpha flipped", 0, flip(base.Packet, 5), k0)
	fail("fail-routing-info", "header MAC", "one bit of beta flipped (in the last hop's routing information)", 0, flip(base.Packet, 32+geo.RoutingSize()-3), k0)
	fail("fail-routing-info-next-hop", "header MAC", "one bit of the routing information flipped after hop 0, seen by hop 1", 1, flip(base.Hops[0].NextPacket, 40), nodes[1].hop.PrivateKey)
	fail("fail-wrong-key", "header MAC", "hop 1's key used on hop 0's packet", 0, base.Packet, nodes[1].hop.PrivateKey)
	fail("fail-payload-tag", "payload tag", "one payload bit flipped before the last hop", 2, flip(base.Hops[1].NextPacket, hs+100), nodes[2].hop.PrivateKey)
	fail("fail-truncated", "length", "last byte removed", 0, base.Packet[:len(base.Packet)-1], k0)
	fail("fail-extended", "length", "one byte appended", 0, append(bytes.Clone(base.Packet), 0), k0)
	zero := bytes.Clone(base.Packet)
	clear(zero[:32])
	fail("fail-zero-alpha", "group element", "alpha is the all-zero (low-order) point", 0, zero, k0)

	other := sphinx.Geometry{Hops: geo.Hops - 1, PayloadSize: geo.PayloadSize + sphinx.PerHopSize}
	og := vgeom(other)
	g.out = append(g.out, vectors.Vector{Name: "fail-wrong-geometry", Kind: "unwrap", Expect: "header MAC",
		Comment: "a geometry with the same packet size but another hash: the keys differ", Geometry: base.Geometry,
		Hop: 0, Packet: base.Packet, PrivateKey: k0, UnwrapGeometry: &og})

	sv := g.surb(geo, 3)
	last := sv.Hops[len(sv.Hops)-1].Delivered
	g.out = append(g.out, vectors.Vector{Name: "fail-reply-tampered", Kind: "reply", Expect: "payload tag",
		Comment: "one bit of a delivered reply flipped", Geometry: sv.Geometry, Hop: 2, ReplyKeys: sv.ReplyKeys,
		Payload: flip(last, 77)})
}

// commands writes routing-command blocks (§5), valid and invalid, as PerHopSize-byte blocks.
func (g *gen) commands() {
	pad := func(b []byte) []byte { return append(b, make([]byte, sphinx.PerHopSize-len(b))...) }
	enc := func(c *sphinx.Commands) []byte {
		b, err := sphinx.EncodeCommands(c)
		must(err)
		return b
	}
	var id sphinx.NodeID
	copy(id[:], g.bytes(32))
	var mac [sphinx.MACSize]byte
	copy(mac[:], g.bytes(32))
	surbID := [sphinx.SURBIDSize]byte(g.bytes(sphinx.SURBIDSize))
	rcpt := &sphinx.Recipient{Service: "mailbox", ID: "bob"}
	full := &sphinx.Recipient{Service: "abcdefghijklmnop", ID: string(bytes.Repeat([]byte("r"), 64))}
	add := func(name, expect string, block []byte) {
		g.out = append(g.out, vectors.Vector{Name: name, Kind: "commands", Expect: expect, Packet: block})
	}
	add("commands-forward", "ok", pad(enc(&sphinx.Commands{NextHop: &id, NextMAC: mac, HasDelay: true, DelayMS: 1234})))
	add("commands-forward-no-delay", "ok", pad(enc(&sphinx.Commands{NextHop: &id, NextMAC: mac})))
	add("commands-final", "ok", pad(enc(&sphinx.Commands{Recipient: rcpt, HasDelay: true, DelayMS: 7})))
	add("commands-final-surb", "ok", pad(enc(&sphinx.Commands{Recipient: rcpt, SURBID: &surbID, HasDelay: true})))
	add("commands-final-full-block", "ok", enc(&sphinx.Commands{Recipient: full, SURBID: &surbID, HasDelay: true, DelayMS: 1}))
	fwd := pad(enc(&sphinx.Commands{NextHop: &id, NextMAC: mac, HasDelay: true, DelayMS: 1234}))
	bad := bytes.Clone(fwd)
	bad[0] = 0x05
	add("commands-unknown-type", "commands", bad)
	add("commands-empty", "commands", make([]byte, sphinx.PerHopSize))
	delayFirst := pad(append([]byte{0x02, 0, 0, 0, 1}, enc(&sphinx.Commands{NextHop: &id, NextMAC: mac})...))
	add("commands-out-of-order", "commands", delayFirst)
	twice := pad(append([]byte{0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 2}, 0))
	add("commands-delay-twice", "commands", twice)
	add("commands-delay-only", "commands", pad([]byte{0x02, 0, 0, 0, 9, 0}))
	surbOnly := pad(append([]byte{0x04}, append(surbID[:], 0)...))
	add("commands-surb-without-recipient", "commands", surbOnly)
	junk := pad(enc(&sphinx.Commands{Recipient: rcpt}))
	junk[1+len("mailbox")+1] = 'x' // a byte after the service field's NUL padding
	add("commands-bytes-after-padding", "commands", junk)
	badSvc := pad(enc(&sphinx.Commands{Recipient: rcpt}))
	badSvc[1] = ' '
	add("commands-bad-service", "commands", badSvc)
	// Recipient, SURBReply and Delay fill 103 bytes; a NextHop type byte in the last byte is out
	// of order (and would have no room for its body).
	over := append(bytes.Clone(enc(&sphinx.Commands{Recipient: full, SURBID: &surbID}))[:98], 0x02, 0, 0, 0, 0, 0x01)
	add("commands-type-in-last-byte", "commands", over)
}

// rules writes one failure vector per decoding rule of §5 and per precedence decision of §10.3
// that the vectors above did not pin down (issue 17): each block or reply-key string breaks
// exactly the rule its name says and satisfies every other. It draws from its own generator,
// after every older vector, so adding it left the older vectors byte-identical.
func (r *gen) rulesInto(g *gen, geo sphinx.Geometry) {
	r.rules(geo)
	g.out = r.out
}

func (g *gen) rules(geo sphinx.Geometry) {
	pad := func(b []byte) []byte { return append(b, make([]byte, sphinx.PerHopSize-len(b))...) }
	enc := func(c *sphinx.Commands) []byte {
		b, err := sphinx.EncodeCommands(c)
		must(err)
		return b
	}
	add := func(name, comment string, block []byte) {
		g.out = append(g.out, vectors.Vector{Name: name, Kind: "commands", Expect: "commands", Comment: comment, Packet: block})
	}
	var id sphinx.NodeID
	copy(id[:], g.bytes(32))
	var mac [sphinx.MACSize]byte
	copy(mac[:], g.bytes(32))
	surbID := g.bytes(sphinx.SURBIDSize)
	rcpt := &sphinx.Recipient{Service: "mailbox", ID: "bob"}
	delay := []byte{0x02, 0, 0, 0, 7}

	// NextHop, SURBReply, Delay, End: ranks increase and one of NextHop/Recipient is present.
	fwd := enc(&sphinx.Commands{NextHop: &id, NextMAC: mac})
	fwd = fwd[:len(fwd)-1] // without End
	b := append(append(append(bytes.Clone(fwd), 0x04), surbID...), delay...)
	add("commands-surb-reply-with-next-hop", "SURBReply at a forward hop (without Recipient), in order, with NextHop", pad(append(b, 0x00)))

	// Recipient, Delay, Delay, End: the second Delay has the rank of the first.
	fin := enc(&sphinx.Commands{Recipient: rcpt, HasDelay: true, DelayMS: 7})
	b = append(bytes.Clone(fin[:len(fin)-1]), delay...)
	add("commands-equal-rank", "a final hop's Delay repeated: two commands of equal rank", pad(append(b, 0x00)))

	// Recipient fields: "bob" then 0x00 then 'x' in the recipient field.
	b = pad(enc(&sphinx.Commands{Recipient: rcpt, HasDelay: true}))
	b[1+sphinx.MaxServiceSize+len("bob")+1] = 'x'
	add("commands-recipient-bytes-after-padding", "a non-zero recipient byte after the recipient's first 0x00", b)

	b = pad(enc(&sphinx.Commands{Recipient: rcpt, HasDelay: true}))
	clear(b[1 : 1+sphinx.MaxServiceSize])
	add("commands-empty-service", "a Recipient command whose service field is all 0x00", b)

	b = pad(enc(&sphinx.Commands{Recipient: rcpt, HasDelay: true}))
	clear(b[1+sphinx.MaxServiceSize : 1+sphinx.MaxServiceSize+sphinx.MaxRecipientSize])
	add("commands-empty-recipient", "a Recipient command whose recipient field is all 0x00", b)

	// §10.3: the reply keys are checked before the payload, in this order: at least 2 bytes,
	// the version byte, the hop count, the length for that hop count.
	sv := g.surb(geo, 3)
	delivered := sv.Hops[len(sv.Hops)-1].Delivered
	reply := func(name, expect, comment string, rk, payload []byte) {
		g.out = append(g.out, vectors.Vector{Name: name, Kind: "reply", Expect: expect, Comment: comment,
			Geometry: sv.Geometry, ReplyKeys: rk, Payload: payload})
	}
	rk := sv.ReplyKeys
	with := func(version, hops byte, length int) []byte {
		k := bytes.Clone(rk)
		for len(k) < length {
			k = append(k, k[len(k)-1])
		}
		k = k[:length]
		k[0], k[1] = version, hops
		return k
	}
	over := byte(geo.Hops + 1)
	reply("fail-reply-keys-short", "length", "reply keys of one byte", rk[:1], delivered)
	reply("fail-reply-keys-version", "length", "version byte 0x02, hop count and length right", with(0x02, 3, len(rk)), delivered)
	reply("fail-reply-keys-hops", "route", "hop count Hops+1 with the length for that count", with(0x01, over, sphinx.ReplyKeysSize(int(over))), delivered)
	reply("fail-reply-keys-zero-hops", "route", "hop count 0 with the length for that count", with(0x01, 0, sphinx.ReplyKeysSize(0)), delivered)
	reply("fail-reply-keys-length", "length", "one byte more than 3 hops need", append(bytes.Clone(rk), 0), delivered)
	reply("fail-reply-keys-version-before-hops", "length", "version 0x02 and hop count 0: the version is checked first", with(0x02, 0, sphinx.ReplyKeysSize(0)), delivered)
	reply("fail-reply-keys-hops-before-length", "route", "hop count Hops+1 with the length for 3 hops: the hop count is checked before the length", with(0x01, over, len(rk)), delivered)
	reply("fail-reply-keys-before-payload", "route", "hop count 0 and a payload one byte short: the keys are checked before the payload", with(0x01, 0, sphinx.ReplyKeysSize(0)), delivered[:len(delivered)-1])
	reply("fail-reply-payload-length", "length", "a delivered payload one byte short, reply keys right", rk, delivered[:len(delivered)-1])
}

func main() {
	out := flag.String("out", "pkg/sphinx/testdata", "directory to write vectors.json into")
	flag.Parse()
	g := &gen{rng: &drbg{label: "panoramix sphinx test vectors v1"}}
	small := sphinx.Geometry{Hops: 5, PayloadSize: 512}
	for n := 1; n <= 5; n++ {
		v, _ := g.packet(small, n, 500)
		g.out = append(g.out, v)
		g.out = append(g.out, g.surb(small, n))
	}
	v, _ := g.packet(sphinx.DefaultGeometry(), 5, 8000)
	g.out = append(g.out, v)
	g.failures(small)
	g.commands()
	// Vectors added later draw from their own generator, so that the ones above stay
	// byte-identical.
	(&gen{rng: &drbg{label: "panoramix sphinx test vectors v1 rules"}, out: g.out}).rulesInto(g, small)

	data, err := json.MarshalIndent(g.out, "", " ")
	must(err)
	must(os.MkdirAll(*out, 0o755))
	path := filepath.Join(*out, "vectors.json")
	must(os.WriteFile(path, append(data, '\n'), 0o644))
	fmt.Printf("wrote %d vectors to %s\n", len(g.out), path)
}
