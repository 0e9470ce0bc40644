// Package service is the plugin point of a provider (DESIGN.md section 7): a Service receives
// one payload that arrived at the final hop of the mixnet, addressed to it by name, and may answer
// through the single-use reply block (SURB) the sender put in front of the payload.
//
// The package also owns the envelope that carries an optional SURB and the service data inside
// a Sphinx payload (docs/spec/services.md). It does no networking: the provider gives each
// delivery a Replier that turns an answer into a packet and sends it.
package service

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
)

// Request is one payload delivered to a service.
type Request struct {
	// Recipient is the Recipient command's id: a mail local part, a ballot box name, ...
	Recipient string
	// Data is the service data from the envelope.
	Data []byte
}

// Replier answers a request through its SURB. A Replier, and the Request it came with, stay
// usable after Deliver returns: a service may answer once what it promises is durable, as the
// survey service does after the group commit that stores a submission.
type Replier interface {
	// CanReply reports whether the request carried a SURB.
	CanReply() bool
	// Reply sends data back to the requester. It fails when there is no SURB, when data does
	// not fit in one reply, or when the SURB was already used.
	Reply(ctx context.Context, data []byte) error
}

// Service is implemented by every provider service (loop, mailbox, vote, survey).
type Service interface {
	// Name is the name senders put in the Recipient command; it matches NamePattern.
	Name() string
	// Deliver handles one request. It must not return before whatever it promised the sender
	// (by replying) is durable. An error is logged and counted by the provider; the sender
	// learns nothing but the absence of a reply.
	Deliver(ctx context.Context, req *Request, reply Replier) error
}

// NamePattern is what a service name looks like (it must also fit the Sphinx Recipient
// command's 16-byte service field).
var NamePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,15}$`)

// Envelope constants (docs/spec/services.md section 1).
const (
	EnvelopeVersion = 1
	flagSURB        = 0x01
	// EnvelopeOverhead is the envelope's size without a SURB and without data.
	EnvelopeOverhead = 1 + 1 + 4
)

// ErrEnvelope is wrapped by every envelope decoding error.
var ErrEnvelope = errors.New("service: malformed envelope")

// Capacity is how many data bytes fit in a payload of payloadSize bytes, with or without a
// SURB of surbSize bytes.
func Capacity(payloadSize, surbSize int, withSURB bool) int {
	c := payloadSize - EnvelopeOverhead
	if withSURB {
		c -= surbSize
	}
	return c
}

// EncodeEnvelope builds a payload of exactly payloadSize bytes carrying surb (nil for none,
// else exactly surbSize bytes) and data.
func EncodeEnvelope(payloadSize, surbSize int, surb, data []byte) ([]byte, error) {
	if surb != nil && len(surb) != surbSize {
		return nil, fmt.Errorf("service: SURB of %d bytes, want %d", len(surb), surbSize)
	}
	if c := Capacity(payloadSize, surbSize, surb != nil); len(data) > c {
		return nil, fmt.Errorf("service: data of %d bytes exceeds the %d that fit in one packet", len(data), c)
	}
	out := make([]byte, 0, payloadSize)
	var flags byte
	if surb != nil {
		flags |= flagSURB
	}
	out = append(out, EnvelopeVersion, flags)
	out = append(out, surb...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
	out = append(out, data...)
	return append(out, make([]byte, payloadSize-len(out))...), nil
}

// DecodeEnvelope splits a payload into its SURB (nil if none) and data. The returned slices
// alias payload. Padding after the data must be zeros, so a payload has one decoding.
func DecodeEnvelope(payload []byte, surbSize int) (surb, data []byte, err error) {
	if len(payload) < EnvelopeOverhead {
		return nil, nil, fmt.Errorf("%w: %d bytes", ErrEnvelope, len(payload))
	}
	if payload[0] != EnvelopeVersion {
		return nil, nil, fmt.Errorf("%w: version %d", ErrEnvelope, payload[0])
	}
	flags := payload[1]
	if flags&^flagSURB != 0 {
		return nil, nil, fmt.Errorf("%w: unknown flags %#x", ErrEnvelope, flags)
	}
	rest := payload[2:]
	if flags&flagSURB != 0 {
		if len(rest) < surbSize+4 {
			return nil, nil, fmt.Errorf("%w: too short for a SURB", ErrEnvelope)
		}
		surb, rest = rest[:surbSize], rest[surbSize:]
	}
	n := binary.BigEndian.Uint32(rest)
	rest = rest[4:]
	if uint64(n) > uint64(len(rest)) {
		return nil, nil, fmt.Errorf("%w: data length %d exceeds the %d bytes left", ErrEnvelope, n, len(rest))
	}
	data, pad := rest[:n], rest[n:]
	for _, b := range pad {
		if b != 0 {
			return nil, nil, fmt.Errorf("%w: non-zero padding", ErrEnvelope)
		}
	}
	return surb, data, nil
}

// Loop is the echo service: it answers every request with its own data. Clients use it for
// loop cover traffic and health checks.
type Loop struct{}

// LoopName is the loop service's name.
const LoopName = "loop"

// Name returns "loop".
func (Loop) Name() string { return LoopName }

// Deliver echoes the data through the SURB; without a SURB there is nothing to do (a loop
// without SURB is pure cover traffic that ends here).
func (Loop) Deliver(ctx context.Context, req *Request, reply Replier) error {
	if !reply.CanReply() {
		return nil
	}
	return reply.Reply(ctx, req.Data)
}
