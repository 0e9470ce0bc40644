// Package sealmail seals the mail a provider holds for a user's client and cuts it into the
// chunks the client fetches over its link (docs/spec/services.md section 6).
//
// A provider that holds mail for a client (the client reads its mail through its link instead of
// the provider's IMAP server, issue 20) stores it only sealed: HPKE (RFC 9180) in base mode with
// DHKEM(X25519, HKDF-SHA256), HKDF-SHA256 and ChaCha20-Poly1305, to the X25519 form of the
// user's link key (keys.LinkPublicKey.X25519), with the mail id in the info string so that a
// sealed mail cannot be passed off under another id. The provider keeps no key that opens it.
//
// The package does no I/O.
package sealmail

import (
	"crypto/hpke"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

// IDSize is the size of a mail id.
const IDSize = 16

// ID names one mail for the client. The provider uses the sender's message id (the mailbox
// service's delivery key), so that a delivery repeated after a crash has the same id and the
// client stores it once.
type ID [IDSize]byte

// Chunk layout (services.md section 6.2).
const (
	// Version is the chunk format version.
	Version = 1
	// HeaderSize is a chunk's header: version, id, index, count, total.
	HeaderSize = 1 + IDSize + 4 + 4 + 4
	// Overhead is what sealing adds to a mail: the 32-byte encapsulated key and the 16-byte tag.
	Overhead = 32 + 16
	// MaxChunks bounds the chunks of one mail whatever the chunk size.
	MaxChunks = 1 << 16
)

// infoPrefix starts the HPKE info string; the mail id follows.
const infoPrefix = "panoramix sealed mail v1"

// ErrChunk is wrapped by every chunk parsing error.
var ErrChunk = errors.New("sealmail: malformed chunk")

// ErrOpen is wrapped when a sealed mail does not open with the key.
var ErrOpen = errors.New("sealmail: sealed mail does not open")

func suite() (hpke.KDF, hpke.AEAD) { return hpke.HKDFSHA256(), hpke.ChaCha20Poly1305() }

func info(id ID) []byte { return append([]byte(infoPrefix), id[:]...) }

// Seal seals msg for the holder of the link key to, under id.
func Seal(to keys.LinkPublicKey, id ID, msg []byte) ([]byte, error) {
	x, err := to.X25519()
	if err != nil {
		return nil, fmt.Errorf("sealmail: %w", err)
	}
	pk, err := hpke.NewDHKEMPublicKey(x)
	if err != nil {
		return nil, fmt.Errorf("sealmail: %w", err)
	}
	kdf, aead := suite()
	out, err := hpke.Seal(pk, kdf, aead, info(id), msg)
	if err != nil {
		return nil, fmt.Errorf("sealmail: seal: %w", err)
	}
	return out, nil
}

// Open opens a mail sealed by Seal under id with the link private key k.
func Open(k *keys.LinkPrivateKey, id ID, sealed []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d sealing adds", ErrOpen, len(sealed), Overhead)
	}
	x, err := k.X25519()
	if err != nil {
		return nil, fmt.Errorf("sealmail: %w", err)
	}
	sk, err := hpke.NewDHKEMPrivateKey(x)
	if err != nil {
		return nil, fmt.Errorf("sealmail: %w", err)
	}
	kdf, aead := suite()
	msg, err := hpke.Open(sk, kdf, aead, info(id), sealed)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrOpen, err)
	}
	return msg, nil
}

// Chunk is one piece of a sealed mail.
type Chunk struct {
	ID ID
	// Index counts from 0; Count is the number of chunks of the mail.
	Index, Count uint32
	// Total is the sealed mail's length in bytes.
	Total uint32
	// Data is this chunk's part of the sealed mail.
	Data []byte
}

// Capacity is the sealed-mail bytes one chunk of at most bodySize bytes carries.
func Capacity(bodySize int) int { return bodySize - HeaderSize }

// Split cuts a sealed mail into chunks of at most bodySize bytes each (header included),
// encoded. Every chunk but the last is full.
func Split(id ID, sealed []byte, bodySize int) ([][]byte, error) {
	c := Capacity(bodySize)
	if c < 1 {
		return nil, fmt.Errorf("sealmail: chunk size %d leaves no room for data", bodySize)
	}
	if len(sealed) == 0 || len(sealed) > 1<<32-1 {
		return nil, fmt.Errorf("sealmail: sealed mail of %d bytes", len(sealed))
	}
	n := (len(sealed) + c - 1) / c
	if n > MaxChunks {
		return nil, fmt.Errorf("sealmail: sealed mail of %d bytes needs %d chunks, limit %d", len(sealed), n, MaxChunks)
	}
	out := make([][]byte, 0, n)
	for i := range n {
		data := sealed[i*c : min((i+1)*c, len(sealed))]
		b := make([]byte, 0, HeaderSize+len(data))
		b = append(b, Version)
		b = append(b, id[:]...)
		b = binary.BigEndian.AppendUint32(b, uint32(i))
		b = binary.BigEndian.AppendUint32(b, uint32(n))
		b = binary.BigEndian.AppendUint32(b, uint32(len(sealed)))
		out = append(out, append(b, data...))
	}
	return out, nil
}

// ParseChunk decodes one chunk whose body was at most bodySize bytes, for a mail of at most
// maxTotal sealed bytes. It checks everything one chunk can show: the version, index < count,
// count <= MaxChunks, the count that total and the chunk capacity imply, and the data length
// the chunk's position implies. Data aliases b.
func ParseChunk(b []byte, bodySize, maxTotal int) (*Chunk, error) {
	if len(b) < HeaderSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrChunk, len(b), HeaderSize)
	}
	if len(b) > bodySize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrChunk, len(b), bodySize)
	}
	if b[0] != Version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrChunk, b[0], Version)
	}
	c := &Chunk{}
	copy(c.ID[:], b[1:1+IDSize])
	p := b[1+IDSize:]
	c.Index = binary.BigEndian.Uint32(p)
	c.Count = binary.BigEndian.Uint32(p[4:])
	c.Total = binary.BigEndian.Uint32(p[8:])
	c.Data = b[HeaderSize:]
	capacity := Capacity(bodySize)
	switch {
	case capacity < 1:
		return nil, fmt.Errorf("%w: chunk size %d leaves no room for data", ErrChunk, bodySize)
	case c.Total == 0 || int64(c.Total) > int64(maxTotal):
		return nil, fmt.Errorf("%w: sealed mail of %d bytes, limit %d", ErrChunk, c.Total, maxTotal)
	case c.Count == 0 || c.Count > MaxChunks || c.Index >= c.Count:
		return nil, fmt.Errorf("%w: chunk %d of %d", ErrChunk, c.Index, c.Count)
	}
	if want := (int64(c.Total) + int64(capacity) - 1) / int64(capacity); int64(c.Count) != want {
		return nil, fmt.Errorf("%w: %d chunks for %d bytes, want %d", ErrChunk, c.Count, c.Total, want)
	}
	want := capacity
	if c.Index == c.Count-1 {
		want = int(int64(c.Total) - int64(c.Count-1)*int64(capacity))
	}
	if len(c.Data) != want {
		return nil, fmt.Errorf("%w: chunk %d of %d carries %d bytes, want %d", ErrChunk, c.Index, c.Count, len(c.Data), want)
	}
	return c, nil
}
