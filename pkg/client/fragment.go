package client

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// Sizes and limits of the fragment and ack formats (docs/spec/fragment.md).
const (
	// FragmentVersion is the only fragment and ack version this package reads and writes.
	FragmentVersion = 1
	// MessageIDSize is the size of a message id.
	MessageIDSize = 16
	// FragmentHeaderSize is version, message id, index, count and total length.
	FragmentHeaderSize = 1 + MessageIDSize + 2 + 2 + 4
	// MaxFragments bounds the fragments of one message, so that a receiver's reassembly state
	// per message is bounded (spec section 2).
	MaxFragments = 4096
	// AckSize is the exact size of an ack without an answer.
	AckSize = 1 + MessageIDSize + 2 + 1
	// MaxAckAnswer bounds the answer a service may put in an ack (a vote receipt, the reason
	// of a refusal), so that an ack always fits a SURB reply of the default geometry.
	MaxAckAnswer = 512
)

// ErrMalformed is wrapped by every fragment and ack parsing error.
var ErrMalformed = errors.New("client: malformed")

// MessageID names a message; every fragment of a message, and every retransmission of a
// fragment, carries the same id, so that the receiver can deduplicate by (id, index).
type MessageID [MessageIDSize]byte

// String returns the id in lowercase hex.
func (id MessageID) String() string { return hex.EncodeToString(id[:]) }

// ParseMessageID parses the lowercase hex form of String.
func ParseMessageID(s string) (MessageID, error) {
	var id MessageID
	if len(s) != 2*MessageIDSize {
		return id, fmt.Errorf("message id %q: want %d hex digits", s, 2*MessageIDSize)
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return id, fmt.Errorf("message id %q: want lowercase hex", s)
		}
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("message id %q: %w", s, err)
	}
	return id, nil
}

// FragmentCapacity is the number of message bytes one fragment carries with geometry g: the
// service envelope's data capacity with a SURB (docs/spec/services.md section 1) less the
// fragment header. It is the same whether or not a given fragment carries a SURB, so that a
// receiver can check the fragment sizes knowing only the geometry.
func FragmentCapacity(g sphinx.Geometry) int {
	return service.Capacity(g.PayloadSize, g.SURBSize(), true) - FragmentHeaderSize
}

// Fragment is one piece of a message (docs/spec/fragment.md section 2).
type Fragment struct {
	ID MessageID
	// Index is the fragment's position, 0 <= Index < Count.
	Index uint16
	// Count is the number of fragments of the message, 1 <= Count <= MaxFragments.
	Count uint16
	// TotalLength is the length of the whole message.
	TotalLength uint32
	// Data is the fragment's share of the message: capacity bytes, except in the last
	// fragment, which holds the rest.
	Data []byte
}

// Marshal returns the encoding of f. It does not check f; Split and ParseFragment only make
// valid fragments.
func (f *Fragment) Marshal() []byte {
	b := make([]byte, FragmentHeaderSize, FragmentHeaderSize+len(f.Data))
	b[0] = FragmentVersion
	copy(b[1:], f.ID[:])
	binary.BigEndian.PutUint16(b[17:], f.Index)
	binary.BigEndian.PutUint16(b[19:], f.Count)
	binary.BigEndian.PutUint32(b[21:], f.TotalLength)
	return append(b, f.Data...)
}

// fragmentDataLen is the data length fragment index of a message of total bytes in count
// fragments must have, or -1 when (total, count) is not a valid pair for capacity.
func fragmentDataLen(total uint64, count, index, capacity int) int {
	c := uint64(capacity)
	// The last fragment holds at least one byte, except for the empty message (one empty
	// fragment): so count is exactly ceil(total / capacity), or 1 for total 0.
	want := uint64(1)
	if total > 0 {
		want = (total + c - 1) / c
	}
	if uint64(count) != want {
		return -1
	}
	if index < count-1 {
		return capacity
	}
	return int(total - uint64(count-1)*c)
}

// ParseFragment decodes a fragment strictly for a geometry whose FragmentCapacity is capacity:
// every field is range-checked, and the data length must be exactly what the index, count and
// total length imply, so that a fragment has one encoding and a successful parse re-encodes to
// the same bytes. The returned Data aliases b.
func ParseFragment(b []byte, capacity int) (*Fragment, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("%w: fragment: capacity %d", ErrMalformed, capacity)
	}
	if len(b) < FragmentHeaderSize {
		return nil, fmt.Errorf("%w: fragment: %d bytes, shorter than its header", ErrMalformed, len(b))
	}
	if b[0] != FragmentVersion {
		return nil, fmt.Errorf("%w: fragment: version %d", ErrMalformed, b[0])
	}
	f := &Fragment{
		Index:       binary.BigEndian.Uint16(b[17:]),
		Count:       binary.BigEndian.Uint16(b[19:]),
		TotalLength: binary.BigEndian.Uint32(b[21:]),
		Data:        b[FragmentHeaderSize:],
	}
	copy(f.ID[:], b[1:])
	if f.Count < 1 || f.Count > MaxFragments {
		return nil, fmt.Errorf("%w: fragment: count %d outside 1..%d", ErrMalformed, f.Count, MaxFragments)
	}
	if f.Index >= f.Count {
		return nil, fmt.Errorf("%w: fragment: index %d of %d", ErrMalformed, f.Index, f.Count)
	}
	n := fragmentDataLen(uint64(f.TotalLength), int(f.Count), int(f.Index), capacity)
	if n < 0 {
		return nil, fmt.Errorf("%w: fragment: %d fragments cannot carry %d bytes at %d per fragment", ErrMalformed, f.Count, f.TotalLength, capacity)
	}
	if len(f.Data) != n {
		return nil, fmt.Errorf("%w: fragment %d of %d: %d data bytes, want %d", ErrMalformed, f.Index, f.Count, len(f.Data), n)
	}
	return f, nil
}

// FragmentIDs reads the message id and fragment index at the front of b and checks nothing
// else, so that a service can answer a fragment that did not parse with a "malformed" ACK the
// sender can match to what it sent. ok is false when even those are missing or the index is
// out of range.
func FragmentIDs(b []byte) (id MessageID, index uint16, ok bool) {
	if len(b) < 1+MessageIDSize+2 {
		return id, 0, false
	}
	copy(id[:], b[1:])
	index = binary.BigEndian.Uint16(b[1+MessageIDSize:])
	if index >= MaxFragments {
		return id, 0, false
	}
	return id, index, true
}

// MaxMessageSize is the largest message Split accepts for a fragment capacity.
func MaxMessageSize(capacity int) int { return MaxFragments * capacity }

// Split cuts data into fragments of capacity bytes (the last one holds the rest). The
// fragments' Data alias data.
func Split(id MessageID, data []byte, capacity int) ([]*Fragment, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("split: capacity %d", capacity)
	}
	if len(data) > MaxMessageSize(capacity) {
		return nil, fmt.Errorf("split: message of %d bytes is over the limit of %d (%d fragments of %d bytes)", len(data), MaxMessageSize(capacity), MaxFragments, capacity)
	}
	count := max(1, (len(data)+capacity-1)/capacity)
	out := make([]*Fragment, count)
	for i := range count {
		lo := i * capacity
		hi := min(lo+capacity, len(data))
		out[i] = &Fragment{ID: id, Index: uint16(i), Count: uint16(count), TotalLength: uint32(len(data)), Data: data[lo:hi]}
	}
	return out, nil
}

// Join reassembles a message from all its fragments, given in any order. It checks that they
// agree on id, count and length and that each index appears once.
func Join(frags []*Fragment) ([]byte, error) {
	if len(frags) == 0 {
		return nil, errors.New("join: no fragments")
	}
	first := frags[0]
	if len(frags) != int(first.Count) {
		return nil, fmt.Errorf("join: %d fragments of %d", len(frags), first.Count)
	}
	byIndex := make([]*Fragment, first.Count)
	for _, f := range frags {
		if f.ID != first.ID || f.Count != first.Count || f.TotalLength != first.TotalLength {
			return nil, errors.New("join: fragments of different messages")
		}
		if int(f.Index) >= len(byIndex) || byIndex[f.Index] != nil {
			return nil, fmt.Errorf("join: index %d repeated or out of range", f.Index)
		}
		byIndex[f.Index] = f
	}
	out := make([]byte, 0, first.TotalLength)
	for _, f := range byIndex {
		out = append(out, f.Data...)
	}
	if len(out) != int(first.TotalLength) {
		return nil, fmt.Errorf("join: %d bytes, want %d", len(out), first.TotalLength)
	}
	return out, nil
}

// AckStatus is what the receiving service says about a fragment (docs/spec/fragment.md
// section 3). Anything but AckStored is a permanent failure of the whole message.
type AckStatus uint8

// Ack statuses.
const (
	AckStored           AckStatus = 0
	AckUnknownRecipient AckStatus = 1
	AckOverQuota        AckStatus = 2
	AckMalformed        AckStatus = 3
	AckTooLarge         AckStatus = 4
	// AckRefused: the service refused the content (a ballot that does not verify, a cast
	// outside the voting period); the ack's answer says why.
	AckRefused AckStatus = 5
)

const maxAckStatus = AckRefused

// String says what the status means, for status displays and bounces.
func (s AckStatus) String() string {
	switch s {
	case AckStored:
		return "stored"
	case AckUnknownRecipient:
		return "unknown recipient"
	case AckOverQuota:
		return "recipient over quota"
	case AckMalformed:
		return "refused as malformed"
	case AckTooLarge:
		return "message too large"
	case AckRefused:
		return "refused by the service"
	}
	return fmt.Sprintf("status %d", uint8(s))
}

// Ack is the answer of the receiving service to one fragment, sent back through the
// fragment's SURB (docs/spec/fragment.md section 3). Answer is optional service data (at most
// MaxAckAnswer bytes): a vote receipt, or the reason of a refusal.
type Ack struct {
	ID     MessageID
	Index  uint16
	Status AckStatus
	Answer []byte
}

// Marshal returns the ack: AckSize bytes, then, when there is an answer, u16 length || answer.
// It panics on an answer over MaxAckAnswer, which no service may send.
func (a *Ack) Marshal() []byte {
	if len(a.Answer) > MaxAckAnswer {
		panic(fmt.Sprintf("client: ack answer of %d bytes, at most %d", len(a.Answer), MaxAckAnswer))
	}
	b := make([]byte, AckSize, AckSize+2+len(a.Answer))
	b[0] = FragmentVersion
	copy(b[1:], a.ID[:])
	binary.BigEndian.PutUint16(b[17:], a.Index)
	b[19] = byte(a.Status)
	if len(a.Answer) > 0 {
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.Answer)))
		b = append(b, a.Answer...)
	}
	return b
}

// ParseAck decodes an ack strictly: version 1, a known status, and either exactly AckSize bytes
// or an answer of 1 to MaxAckAnswer bytes whose length prefix matches the rest exactly.
func ParseAck(b []byte) (*Ack, error) {
	if len(b) < AckSize {
		return nil, fmt.Errorf("%w: ack: %d bytes, want at least %d", ErrMalformed, len(b), AckSize)
	}
	if len(b) > AckSize+2+MaxAckAnswer {
		return nil, fmt.Errorf("%w: ack: %d bytes, at most %d", ErrMalformed, len(b), AckSize+2+MaxAckAnswer)
	}
	if b[0] != FragmentVersion {
		return nil, fmt.Errorf("%w: ack: version %d", ErrMalformed, b[0])
	}
	a := &Ack{Index: binary.BigEndian.Uint16(b[17:]), Status: AckStatus(b[19])}
	copy(a.ID[:], b[1:])
	if a.Status > maxAckStatus {
		return nil, fmt.Errorf("%w: ack: unknown status %d", ErrMalformed, b[19])
	}
	if a.Index >= MaxFragments {
		return nil, fmt.Errorf("%w: ack: index %d", ErrMalformed, a.Index)
	}
	if rest := b[AckSize:]; len(rest) > 0 {
		if len(rest) < 2 {
			return nil, fmt.Errorf("%w: ack: %d bytes after the status, want none or a length and an answer", ErrMalformed, len(rest))
		}
		n := int(binary.BigEndian.Uint16(rest))
		if n == 0 || n != len(rest)-2 {
			return nil, fmt.Errorf("%w: ack: answer length %d, %d bytes follow", ErrMalformed, n, len(rest)-2)
		}
		a.Answer = bytes.Clone(rest[2:])
	}
	return a, nil
}
