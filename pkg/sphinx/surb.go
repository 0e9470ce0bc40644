package sphinx

import (
	"fmt"
	"io"

	"github.com/panoramix-mixnet/panoramix/pkg/sphinx/internal/primitives"
)

// replyKeysVersion is the first byte of the reply keys (§10.1).
const replyKeysVersion = 0x01

// ReplyKeysSize is the size of the reply keys for a SURB of n hops.
func ReplyKeysSize(n int) int { return 2 + primitives.LionessKeySize*(n+1) }

// surbPayloadKey writes Kr (§10.1) into k.
func (s *Sphinx) surbPayloadKey(m *primitives.HMAC, k *[primitives.LionessKeySize]byte, seed []byte) {
	kdf := m.KDF(s.salt[:], seed)
	kdf.Expand(k[:], labelSURBPayload)
	kdf.Wipe()
}

// NewSURB builds a single-use reply block for route, whose last hop delivers the reply to the
// recipient (the owner's queue) with the given SURB id (§10.1). It returns the SURB, to give to
// the replier, and the reply keys, which the owner keeps secret (and wipes after use) to read the
// reply with ReadReply.
func (s *Sphinx) NewSURB(rng io.Reader, route []Hop, to Recipient, id [SURBIDSize]byte) (surb, replyKeys []byte, err error) {
	if err := s.checkRoute(route, to); err != nil {
		return nil, nil, err
	}
	final := finalCommands(route, to, &id)
	eph, pad, err := s.readRandom(rng, len(route), final)
	if err != nil {
		return nil, nil, err
	}
	defer primitives.Wipe(eph[:])
	var seed [32]byte
	if _, err := io.ReadFull(rng, seed[:]); err != nil {
		return nil, nil, fmt.Errorf("sphinx: reading randomness: %w", err)
	}
	defer primitives.Wipe(seed[:])
	return s.newSURB(route, final, eph, pad, &seed)
}

func (s *Sphinx) newSURB(route []Hop, final *Commands, eph *[32]byte, pad []byte, seed *[32]byte) ([]byte, []byte, error) {
	surb := make([]byte, s.g.SURBSize())
	copy(surb, route[0].ID[:])
	copy(surb[NodeIDSize:], seed[:])
	h, err := s.createHeader(surb[NodeIDSize+32:], route, final, eph, pad)
	if err != nil {
		return nil, nil, err
	}
	defer h.wipe()

	var kr [primitives.LionessKeySize]byte
	m := getHMAC()
	s.surbPayloadKey(m, &kr, seed[:])
	putHMAC(m)
	rk := make([]byte, 0, ReplyKeysSize(len(route)))
	rk = append(rk, replyKeysVersion, byte(len(route)))
	rk = append(rk, kr[:]...)
	primitives.Wipe(kr[:])
	for i := range h.keys {
		rk = append(rk, h.keys[i].payload[:]...)
	}
	return surb, rk, nil
}

// SURB is a parsed single-use reply block (§10.1).
type SURB struct {
	FirstHop NodeID
	Seed     [32]byte
	Header   []byte
}

// ParseSURB splits a SURB received from its owner. Only the length can be checked: the header is
// opaque to the replier.
func (s *Sphinx) ParseSURB(b []byte) (*SURB, error) {
	if len(b) != s.g.SURBSize() {
		return nil, fmt.Errorf("%w: SURB of %d bytes, want %d", ErrLength, len(b), s.g.SURBSize())
	}
	x := &SURB{Header: append([]byte(nil), b[NodeIDSize+32:]...)}
	copy(x.FirstHop[:], b[:NodeIDSize])
	copy(x.Seed[:], b[NodeIDSize:NodeIDSize+32])
	return x, nil
}

// Bytes encodes the SURB.
func (x *SURB) Bytes() []byte {
	out := make([]byte, 0, NodeIDSize+32+len(x.Header))
	out = append(out, x.FirstHop[:]...)
	out = append(out, x.Seed[:]...)
	return append(out, x.Header...)
}

// Wipe erases the SURB's seed.
func (x *SURB) Wipe() { primitives.Wipe(x.Seed[:]) }

// NewPacketFromSURB builds the reply packet carrying payload with a SURB (§10.2) and returns the
// node to send it to. The packet is the one allocation: the header is copied from surb into it
// and the payload block is built and encrypted in place behind it.
func (s *Sphinx) NewPacketFromSURB(surb, payload []byte) (NodeID, []byte, error) {
	if len(surb) != s.g.SURBSize() {
		return NodeID{}, nil, fmt.Errorf("%w: SURB of %d bytes, want %d", ErrLength, len(surb), s.g.SURBSize())
	}
	if err := s.checkPayload(payload); err != nil {
		return NodeID{}, nil, err
	}
	var first NodeID
	copy(first[:], surb[:NodeIDSize])
	seed := surb[NodeIDSize : NodeIDSize+32]
	hs := s.g.HeaderSize()
	pkt := make([]byte, s.g.PacketSize())
	copy(pkt[:hs], surb[NodeIDSize+32:])
	// pkt[hs:] is 0^16 || payload || zeros: make returned zeros.
	copy(pkt[hs+TagSize:], payload)

	var kr [primitives.LionessKeySize]byte
	m := getHMAC()
	defer putHMAC(m)
	s.surbPayloadKey(m, &kr, seed)
	l := m.Lioness(kr[:])
	primitives.Wipe(kr[:])
	l.Encrypt(pkt[hs:])
	l.Wipe()
	return first, pkt, nil
}

// ParseReplyKeys checks the reply keys format (§10.3) and returns the hop count.
func (s *Sphinx) ParseReplyKeys(replyKeys []byte) (int, error) {
	if len(replyKeys) < 2 {
		return 0, fmt.Errorf("%w: reply keys of %d bytes", ErrLength, len(replyKeys))
	}
	if replyKeys[0] != replyKeysVersion {
		return 0, fmt.Errorf("%w: reply keys version %#x, want %#x", ErrLength, replyKeys[0], replyKeysVersion)
	}
	n := int(replyKeys[1])
	if n < 1 || n > s.g.Hops {
		return 0, fmt.Errorf("%w: reply keys for %d hops, geometry allows 1..%d", ErrRoute, n, s.g.Hops)
	}
	if len(replyKeys) != ReplyKeysSize(n) {
		return 0, fmt.Errorf("%w: reply keys of %d bytes, want %d for %d hops", ErrLength, len(replyKeys), ReplyKeysSize(n), n)
	}
	return n, nil
}

// ReadReply decrypts a reply payload (the PayloadBlockSize bytes the owner's provider delivered
// with the SURB id) with the SURB's reply keys and checks its zero tag (§10.3). It returns the
// PayloadSize bytes of the reply. payload is not modified.
func (s *Sphinx) ReadReply(replyKeys, payload []byte) ([]byte, error) {
	n, err := s.ParseReplyKeys(replyKeys)
	if err != nil {
		return nil, err
	}
	if len(payload) != s.g.PayloadBlockSize() {
		return nil, fmt.Errorf("%w: reply payload of %d bytes, want %d", ErrLength, len(payload), s.g.PayloadBlockSize())
	}
	d := append([]byte(nil), payload...)
	const ks = primitives.LionessKeySize
	m := getHMAC()
	defer putHMAC(m)
	for i := n - 1; i >= 0; i-- {
		l := m.Lioness(replyKeys[2+ks*(i+1) : 2+ks*(i+2)])
		l.Encrypt(d)
		l.Wipe()
	}
	l := m.Lioness(replyKeys[2 : 2+ks])
	l.Decrypt(d)
	l.Wipe()
	if !primitives.IsZero(d[:TagSize]) {
		return nil, ErrPayloadTag
	}
	return d[TagSize:], nil
}
