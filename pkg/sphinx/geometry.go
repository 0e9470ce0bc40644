package sphinx

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Constants of format version 1 (§4).
const (
	// Version is the format version that the geometry hash commits to.
	Version = 1
	// GroupElementSize is the size of an X25519 u-coordinate.
	GroupElementSize = 32
	// MACSize is the header MAC size.
	MACSize = 32
	// PerHopSize is the routing information per hop (§5): the largest final-hop command block
	// (Recipient, SURBReply, Delay) is 103 bytes plus End.
	PerHopSize = 104
	// TagSize is the zero tag that starts every payload block.
	TagSize = 16
	// NodeIDSize is the size of a node identifier (its Ed25519 identity public key).
	NodeIDSize = 32
	// SURBIDSize is the size of a SURB reply id.
	SURBIDSize = 16

	// MaxHops bounds Geometry.Hops.
	MaxHops = 10
	// MinPayloadSize and MaxPayloadSize bound Geometry.PayloadSize.
	MinPayloadSize = 32
	MaxPayloadSize = 1 << 20
)

// Geometry fixes every size of a packet (§4). It is a value type; two parties agree on a
// geometry by comparing Hash values, which the consensus document carries.
type Geometry struct {
	// Hops is the maximum route length.
	Hops int
	// PayloadSize is the number of user payload bytes per packet.
	PayloadSize int
}

// DefaultGeometry is the geometry chosen in §4.1: five hops (provider, three mix layers,
// provider) and 16 KiB of payload, enough for a typical mail in one packet.
func DefaultGeometry() Geometry { return Geometry{Hops: 5, PayloadSize: 16384} }

// Validate reports whether g is within the limits of §4.
func (g Geometry) Validate() error {
	if g.Hops < 1 || g.Hops > MaxHops {
		return fmt.Errorf("sphinx: geometry hops %d outside 1..%d", g.Hops, MaxHops)
	}
	if g.PayloadSize < MinPayloadSize || g.PayloadSize > MaxPayloadSize {
		return fmt.Errorf("sphinx: geometry payload size %d outside %d..%d", g.PayloadSize, MinPayloadSize, MaxPayloadSize)
	}
	return nil
}

// RoutingSize is B, the size of the routing information (beta).
func (g Geometry) RoutingSize() int { return g.Hops * PerHopSize }

// HeaderSize is alpha || beta || gamma.
func (g Geometry) HeaderSize() int { return GroupElementSize + g.RoutingSize() + MACSize }

// PayloadBlockSize is the zero tag plus the user payload.
func (g Geometry) PayloadBlockSize() int { return TagSize + g.PayloadSize }

// PacketSize is the size of every packet of this geometry.
func (g Geometry) PacketSize() int { return g.HeaderSize() + g.PayloadBlockSize() }

// SURBSize is the size of a SURB (§10.1): first hop, seed, header.
func (g Geometry) SURBSize() int { return NodeIDSize + 32 + g.HeaderSize() }

// geometryHashLabel domain-separates the geometry hash (§4).
const geometryHashLabel = "panoramix-sphinx-geometry-v1"

// Hash is the geometry hash of §4. It is stable: it depends only on the spec version and the
// sizes, never on Go struct layout.
func (g Geometry) Hash() [32]byte {
	h := sha256.New()
	h.Write([]byte(geometryHashLabel))
	var b [4]byte
	for _, v := range []int{Version, g.Hops, g.PayloadSize, PerHopSize, g.HeaderSize(), g.PacketSize()} {
		binary.BigEndian.PutUint32(b[:], uint32(v))
		h.Write(b[:])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// String describes the geometry for logs and status pages.
func (g Geometry) String() string {
	return fmt.Sprintf("sphinx v%d: %d hops, %d payload bytes, %d-byte packets", Version, g.Hops, g.PayloadSize, g.PacketSize())
}
