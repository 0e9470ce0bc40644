// Package vectors defines the JSON form of the Sphinx test vectors (docs/spec/sphinx.md §12),
// shared by the generator (make vectors) and the tests that replay them.
package vectors

import (
	"encoding/hex"
	"fmt"
)

// Hex is a byte string written as lowercase hex in JSON.
type Hex []byte

// MarshalText encodes h as hex.
func (h Hex) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h)), nil }

// UnmarshalText decodes hex.
func (h *Hex) UnmarshalText(b []byte) error {
	d, err := hex.DecodeString(string(b))
	if err != nil {
		return fmt.Errorf("vectors: %w", err)
	}
	*h = d
	return nil
}

// Geometry is a geometry and its hash.
type Geometry struct {
	Hops        int `json:"hops"`
	PayloadSize int `json:"payload_size"`
	Hash        Hex `json:"hash"`
}

// Hop is one route node with its keys.
type Hop struct {
	ID         Hex    `json:"id"`
	PrivateKey Hex    `json:"private_key"`
	PublicKey  Hex    `json:"public_key"`
	DelayMS    uint32 `json:"delay_ms"`
}

// Recipient is the final hop's Recipient command.
type Recipient struct {
	Service string `json:"service"`
	ID      string `json:"id"`
}

// HopResult is what unwrapping at one hop must give.
type HopResult struct {
	ReplayTag  Hex    `json:"replay_tag"`
	DelayMS    uint32 `json:"delay_ms"`
	NextHop    Hex    `json:"next_hop,omitempty"`
	NextPacket Hex    `json:"next_packet,omitempty"`
	Delivered  Hex    `json:"delivered,omitempty"`
	SURBID     Hex    `json:"surb_id,omitempty"`
}

// Vector is one test vector.
type Vector struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind"` // packet, surb, unwrap, reply
	Expect   string   `json:"expect"`
	Comment  string   `json:"comment,omitempty"`
	Geometry Geometry `json:"geometry"`

	Route     []Hop      `json:"route,omitempty"`
	Recipient *Recipient `json:"recipient,omitempty"`
	SURBID    Hex        `json:"surb_id,omitempty"`
	Payload   Hex        `json:"payload,omitempty"`
	Ephemeral Hex        `json:"ephemeral,omitempty"`
	Padding   Hex        `json:"padding,omitempty"`
	Seed      Hex        `json:"seed,omitempty"`

	Packet    Hex         `json:"packet,omitempty"`
	SURB      Hex         `json:"surb,omitempty"`
	ReplyKeys Hex         `json:"reply_keys,omitempty"`
	Hops      []HopResult `json:"hops,omitempty"`
	Reply     Hex         `json:"reply,omitempty"`

	// Failure vectors: unwrap Packet with PrivateKey (under UnwrapGeometry when set), or read
	// the reply Payload with ReplyKeys; the failure is at route position Hop.
	Hop            int       `json:"hop,omitempty"`
	PrivateKey     Hex       `json:"private_key,omitempty"`
	UnwrapGeometry *Geometry `json:"unwrap_geometry,omitempty"`
}
