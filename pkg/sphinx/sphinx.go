package sphinx

import (
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"sync"

	"filippo.io/edwards25519"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx/internal/primitives"
)

// Errors of §11. Unwrap and the other functions wrap them with detail; test with errors.Is.
var (
	ErrLength       = errors.New("sphinx: wrong length")
	ErrGroupElement = errors.New("sphinx: invalid group element")
	ErrHeaderMAC    = errors.New("sphinx: header MAC mismatch")
	ErrPayloadTag   = errors.New("sphinx: payload tag mismatch")
	ErrRoute        = errors.New("sphinx: invalid route")
)

// KDF labels of §6. They are the spec's own strings; changing one is a new format version.
const (
	labelHeaderMAC    = "panoramix-sphinx-v1 header-mac"
	labelHeaderStream = "panoramix-sphinx-v1 header-stream"
	labelPayload      = "panoramix-sphinx-v1 payload-lioness"
	labelBlinding     = "panoramix-sphinx-v1 blinding"
	labelReplayTag    = "panoramix-sphinx-v1 replay-tag"
	labelSURBPayload  = "panoramix-sphinx-v1 surb-payload"
)

// ReplayTagSize is the size of the replay tag Unwrap returns.
const ReplayTagSize = 32

// Sphinx creates and processes packets of one geometry. It holds no secrets and is safe for
// concurrent use.
type Sphinx struct {
	g    Geometry
	salt [32]byte
}

// New validates g and returns a Sphinx for it.
func New(g Geometry) (*Sphinx, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return &Sphinx{g: g, salt: g.Hash()}, nil
}

// Geometry returns the geometry s was made for.
func (s *Sphinx) Geometry() Geometry { return s.g }

// Hop is one node of a route as the sender knows it from the consensus.
type Hop struct {
	ID        NodeID
	PublicKey keys.SphinxPublicKey
	// DelayMS is how long this hop holds the packet (§5 Delay), in milliseconds.
	DelayMS uint32
}

// hopKeys are the per-hop keys of §6.
type hopKeys struct {
	mac      [32]byte
	stream   [32]byte
	payload  [primitives.LionessKeySize]byte
	blinding [32]byte
	tag      [ReplayTagSize]byte
}

func (k *hopKeys) wipe() {
	primitives.Wipe(k.mac[:])
	primitives.Wipe(k.stream[:])
	primitives.Wipe(k.payload[:])
	primitives.Wipe(k.blinding[:])
}

// hmacPool holds the HMAC states of the operations in flight: a Sphinx is shared by every
// goroutine of a mix, and an HMAC allocated per operation was most of an unwrap's allocations.
var hmacPool = sync.Pool{New: func() any { return primitives.NewHMAC() }}

func getHMAC() *primitives.HMAC { return hmacPool.Get().(*primitives.HMAC) }

// putHMAC scrubs m of the last keys' traces before the pool keeps it.
func putHMAC(m *primitives.HMAC) {
	m.Scrub()
	hmacPool.Put(m)
}

func (s *Sphinx) deriveKeys(m *primitives.HMAC, secret *[32]byte, k *hopKeys) {
	kdf := m.KDF(s.salt[:], secret[:])
	kdf.Expand(k.mac[:], labelHeaderMAC)
	kdf.Expand(k.stream[:], labelHeaderStream)
	kdf.Expand(k.payload[:], labelPayload)
	kdf.Expand(k.blinding[:], labelBlinding)
	kdf.Expand(k.tag[:], labelReplayTag)
	kdf.Wipe()
}

func (s *Sphinx) checkRoute(route []Hop, to Recipient) error {
	if len(route) < 1 || len(route) > s.g.Hops {
		return fmt.Errorf("%w: %d hops, geometry allows 1..%d", ErrRoute, len(route), s.g.Hops)
	}
	if err := to.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrRoute, err)
	}
	return nil
}

// finalCommands are the commands of the last hop (§8 step 4).
func finalCommands(route []Hop, to Recipient, surbID *[SURBIDSize]byte) *Commands {
	rc := to
	return &Commands{Recipient: &rc, SURBID: surbID, HasDelay: true, DelayMS: route[len(route)-1].DelayMS}
}

// paddingLen is padLen of §8 step 4.
func (s *Sphinx) paddingLen(n int, final *Commands) int {
	return s.g.RoutingSize() - (n-1)*PerHopSize - len(appendCommands(nil, final))
}

// header is the per-hop keys of §8 steps 1 to 6; the header bytes are written where the caller
// wants them (into the packet or the SURB, without a copy).
type header struct {
	keys []hopKeys
}

func (h *header) wipe() {
	for i := range h.keys {
		h.keys[i].wipe()
	}
}

// createHeader runs §8 steps 1 to 6 with explicit randomness: the ephemeral secret and the
// final padding (exactly paddingLen bytes). It writes the header into out (HeaderSize bytes).
func (s *Sphinx) createHeader(out []byte, route []Hop, final *Commands, ephemeral *[32]byte, padding []byte) (*header, error) {
	n := len(route)
	B, r := s.g.RoutingSize(), PerHopSize
	if len(out) != s.g.HeaderSize() {
		panic("sphinx: header buffer of the wrong size")
	}
	if len(padding) != s.paddingLen(n, final) {
		return nil, fmt.Errorf("%w: padding of %d bytes, want %d", ErrLength, len(padding), s.paddingLen(n, final))
	}
	h := &header{keys: make([]hopKeys, n)}
	m := getHMAC()
	defer putHMAC(m)

	// Step 1, with the scalar-product form of §3.2: the shared secrets one after the other (each
	// c_{i+1} needs b_i, so s_i), then every alpha_i = c_i * G at once with one inversion.
	cs := make([]edwards25519.Scalar, n)
	defer func() {
		for i := range cs {
			cs[i] = edwards25519.Scalar{}
		}
	}()
	cs[0] = *primitives.ClampedScalar(ephemeral[:])
	for i := range route {
		if i > 0 {
			cs[i].Multiply(&cs[i-1], primitives.ClampedScalar(h.keys[i-1].blinding[:]))
		}
		y := [32]byte(route[i].PublicKey)
		var secret [32]byte
		if err := primitives.ScalarMultReduced(&secret, &cs[i], &y); err != nil {
			h.wipe()
			return nil, fmt.Errorf("%w: shared secret with hop %d", ErrGroupElement, i)
		}
		s.deriveKeys(m, &secret, &h.keys[i])
		primitives.Wipe(secret[:])
	}
	alphas := make([][32]byte, n)
	if err := primitives.BaseMultiples(alphas, cs); err != nil {
		h.wipe()
		return nil, fmt.Errorf("%w: alpha", ErrGroupElement)
	}

	// Step 2: key streams, and step 3: the filler.
	// One buffer for the streams, the filler, both betas and the final block: fewer
	// allocations for the collector to chase.
	buf := make([]byte, n*(B+r)+(n-1)*r+3*B)
	rho := make([][]byte, n)
	for i := range route {
		rho[i] = buf[i*(B+r) : (i+1)*(B+r)]
		primitives.XORKeyStream(rho[i], rho[i], h.keys[i].stream[:])
	}
	buf = buf[n*(B+r):]
	phi := buf[: 0 : (n-1)*r]
	buf = buf[(n-1)*r:]
	for i := 1; i < n; i++ {
		phi = phi[:i*r] // the new r bytes are zero
		xorInto(phi, rho[i-1][B-(i-1)*r:B+r])
	}

	// Step 4: the final hop.
	beta, next, fb := buf[:B], buf[B:2*B], buf[2*B:2*B:3*B]
	fb = appendCommands(fb, final)
	fb = append(fb, padding...)
	tail := B - (n-1)*r
	for j := 0; j < tail; j++ {
		beta[j] = fb[j] ^ rho[n-1][j]
	}
	copy(beta[tail:], phi)
	var gamma [MACSize]byte
	m.MAC(&gamma, h.keys[n-1].mac[:], alphas[n-1][:], beta)

	// Step 5: the other hops, from the last but one to the first.
	var block [PerHopSize]byte
	for i := n - 2; i >= 0; i-- {
		id := route[i+1].ID
		cmds := &Commands{NextHop: &id, NextMAC: gamma, HasDelay: true, DelayMS: route[i].DelayMS}
		clear(block[:])
		appendCommands(block[:0], cmds) // at most 71 bytes: fits, zeros follow
		copy(next[:r], block[:])
		copy(next[r:], beta[:B-r])
		for j := 0; j < B; j++ {
			next[j] ^= rho[i][j]
		}
		beta, next = next, beta
		m.MAC(&gamma, h.keys[i].mac[:], alphas[i][:], beta)
	}

	// Step 6.
	copy(out[:32], alphas[0][:])
	copy(out[32:32+B], beta)
	copy(out[32+B:], gamma[:])
	return h, nil
}

func xorInto(dst, src []byte) {
	for i := range dst {
		dst[i] ^= src[i]
	}
}

// readRandom draws the randomness of §8 in its order: the ephemeral secret, then the padding.
func (s *Sphinx) readRandom(rng io.Reader, n int, final *Commands) (*[32]byte, []byte, error) {
	var eph [32]byte
	pad := make([]byte, s.paddingLen(n, final))
	if _, err := io.ReadFull(rng, eph[:]); err != nil {
		return nil, nil, fmt.Errorf("sphinx: reading randomness: %w", err)
	}
	if _, err := io.ReadFull(rng, pad); err != nil {
		return nil, nil, fmt.Errorf("sphinx: reading randomness: %w", err)
	}
	return &eph, pad, nil
}

// checkPayload refuses a user payload longer than P (§8).
func (s *Sphinx) checkPayload(m []byte) error {
	if len(m) > s.g.PayloadSize {
		return fmt.Errorf("%w: payload of %d bytes exceeds %d", ErrLength, len(m), s.g.PayloadSize)
	}
	return nil
}

// NewPacket builds a packet that carries payload along route to the recipient at the last hop
// (§8). payload may be shorter than the geometry's PayloadSize; it is padded with zeros, and the
// final hop delivers all PayloadSize bytes. The packet is sent to route[0].
func (s *Sphinx) NewPacket(rng io.Reader, route []Hop, to Recipient, payload []byte) ([]byte, error) {
	if err := s.checkRoute(route, to); err != nil {
		return nil, err
	}
	final := finalCommands(route, to, nil)
	eph, pad, err := s.readRandom(rng, len(route), final)
	if err != nil {
		return nil, err
	}
	defer primitives.Wipe(eph[:])
	return s.newPacket(route, final, eph, pad, payload)
}

func (s *Sphinx) newPacket(route []Hop, final *Commands, eph *[32]byte, pad, payload []byte) ([]byte, error) {
	if err := s.checkPayload(payload); err != nil {
		return nil, err
	}
	// The packet is the one large allocation: the header is written into its start and the
	// payload block (§8 step 7: 0^16 || m || zeros) is encrypted in place behind it.
	hs := s.g.HeaderSize()
	pkt := make([]byte, s.g.PacketSize())
	h, err := s.createHeader(pkt[:hs], route, final, eph, pad)
	if err != nil {
		return nil, err
	}
	defer h.wipe()
	delta := pkt[hs:]
	copy(delta[TagSize:], payload)
	m := getHMAC()
	defer putHMAC(m)
	for i := len(route) - 1; i >= 0; i-- {
		l := m.Lioness(h.keys[i].payload[:])
		l.Encrypt(delta)
		l.Wipe()
	}
	return pkt, nil
}

// Unwrapped is the result of processing a packet at one hop (§9).
type Unwrapped struct {
	// ReplayTag must be checked against the replay filter of the key used, before the packet is
	// forwarded or delivered.
	ReplayTag [ReplayTagSize]byte
	// DelayMS is the delay the sender asked this hop to apply.
	DelayMS uint32

	// NextHop and Packet are set at a forward hop: send Packet to NextHop after the delay.
	NextHop *NodeID
	Packet  []byte

	// Recipient is set at the final hop. Payload is then the user payload (PayloadSize bytes,
	// tag checked) or, when SURBID is set, the reply still encrypted for the SURB's owner
	// (PayloadBlockSize bytes).
	Recipient *Recipient
	SURBID    *[SURBIDSize]byte
	Payload   []byte
}

// Unwrap processes packet with this hop's private key (§9). It works in place: on success the
// returned Packet or Payload aliases packet. On a header error packet is left unchanged.
func (s *Sphinx) Unwrap(key *keys.SphinxPrivateKey, packet []byte) (*Unwrapped, error) {
	if len(packet) != s.g.PacketSize() {
		return nil, fmt.Errorf("%w: packet of %d bytes, want %d", ErrLength, len(packet), s.g.PacketSize())
	}
	B, r := s.g.RoutingSize(), PerHopSize
	hs := s.g.HeaderSize()
	alpha := (*[32]byte)(packet[:32])
	beta := packet[32 : 32+B]
	gamma := packet[32+B : hs]
	delta := packet[hs:]

	var secret [32]byte
	if err := primitives.X25519(&secret, key.Scalar(), alpha); err != nil {
		return nil, fmt.Errorf("%w: shared secret", ErrGroupElement)
	}
	m := getHMAC()
	defer putHMAC(m)
	var k hopKeys
	s.deriveKeys(m, &secret, &k)
	primitives.Wipe(secret[:])
	defer k.wipe()

	var mac [MACSize]byte
	m.MAC(&mac, k.mac[:], alpha[:], beta)
	if !hmac.Equal(mac[:], gamma) {
		return nil, ErrHeaderMAC
	}

	var buf [(MaxHops + 1) * PerHopSize]byte
	ext := buf[:B+r]
	copy(ext, beta)
	primitives.XORKeyStream(ext, ext, k.stream[:])
	cmds, err := ParseCommands(ext[:r])
	if err != nil {
		return nil, err
	}
	out := &Unwrapped{ReplayTag: k.tag, DelayMS: cmds.DelayMS}

	l := m.Lioness(k.payload[:])
	l.Decrypt(delta)
	l.Wipe()

	if cmds.NextHop != nil {
		var next [32]byte
		if err := primitives.X25519(&next, &k.blinding, alpha); err != nil {
			return nil, fmt.Errorf("%w: blinded alpha", ErrGroupElement)
		}
		copy(packet[:32], next[:])
		copy(beta, ext[r:])
		copy(gamma, cmds.NextMAC[:])
		out.NextHop = cmds.NextHop
		out.Packet = packet
		return out, nil
	}
	out.Recipient = cmds.Recipient
	out.SURBID = cmds.SURBID
	if cmds.SURBID != nil {
		out.Payload = delta
		return out, nil
	}
	if !primitives.IsZero(delta[:TagSize]) {
		return nil, ErrPayloadTag
	}
	out.Payload = delta[TagSize:]
	return out, nil
}
