package wire

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// Command is the type of a frame (docs/spec/wire.md section 2).
type Command uint8

// Commands. The zero value is not a command, so that an all-zero buffer never decodes.
const (
	// CmdSendPacket carries one Sphinx packet (exactly Geometry.PacketSize bytes) towards the
	// next hop: client to provider, node to node.
	CmdSendPacket Command = 1
	// CmdRetrieve asks the provider for the next items of the client's queue: Seq is chosen by
	// the client, QueueHint carries the count k of answer frames it asks for (1 to
	// MaxRetrieveBatch, spec section 7).
	CmdRetrieve Command = 2
	// CmdMessage answers a retrieve with a message from the queue (Body, up to PacketSize
	// bytes) and QueueHint, the number of items still waiting.
	CmdMessage Command = 3
	// CmdAck answers a retrieve with an ACK or reply that came back through a SURB: SURBID
	// names the SURB, Body (up to PacketSize bytes) is what came back with it.
	CmdAck Command = 4
	// CmdEmpty answers a retrieve when the queue is empty.
	CmdEmpty Command = 5
	// CmdNoOp carries nothing. It pads a link and is the server's first frame on a new link
	// (the "ready" frame, spec section 4.3).
	CmdNoOp Command = 6
	// CmdDisconnect announces that the sender is closing the link on purpose.
	CmdDisconnect Command = 7
	// CmdRetrieveMail asks the provider for the next items of the client's mail queue (mail the
	// provider holds for the client, sealed to its key: spec section 7.1), as CmdRetrieve does
	// for the other queue: Seq in the mail queue's own numbering, QueueHint the count k.
	CmdRetrieveMail Command = 8
	// CmdMail answers a retrieve-mail with one chunk of sealed mail (Body, up to PacketSize
	// bytes) and QueueHint, the number of mail items still waiting.
	CmdMail Command = 9
)

// String names the command for logs.
func (c Command) String() string {
	switch c {
	case CmdSendPacket:
		return "send-packet"
	case CmdRetrieve:
		return "retrieve"
	case CmdMessage:
		return "message"
	case CmdAck:
		return "ack"
	case CmdEmpty:
		return "empty"
	case CmdNoOp:
		return "no-op"
	case CmdDisconnect:
		return "disconnect"
	case CmdRetrieveMail:
		return "retrieve-mail"
	case CmdMail:
		return "mail"
	}
	return fmt.Sprintf("command(%d)", uint8(c))
}

// Frame header layout (spec section 2.1). All integers are big-endian.
const (
	offCommand   = 0
	offReserved  = 1 // 3 bytes, zero
	offSeq       = 4
	offQueueHint = 8
	offSURBID    = 12
	offBodyLen   = offSURBID + sphinx.SURBIDSize
	// HeaderSize is the size of the frame header that precedes the body area.
	HeaderSize = offBodyLen + 4
)

// ErrFrame is wrapped by every error of EncodeFrame and DecodeFrame.
var ErrFrame = errors.New("wire: invalid frame")

// FrameSize is the size of every frame on a link that uses geometry g: the header plus a body
// area of g.PacketSize() bytes (spec section 2.1). It is 17016 for sphinx.DefaultGeometry().
func FrameSize(g sphinx.Geometry) int { return HeaderSize + g.PacketSize() }

// Frame is one decoded frame. Which fields a command may use is fixed by the spec (section
// 2.2); fields a command does not use must be zero, and encoding refuses a frame that breaks
// that rule so that nothing but the command and its own fields ever reaches the wire.
type Frame struct {
	Cmd Command
	// Seq is the retrieve sequence number, echoed in the answer (Retrieve, Message, Ack, Empty,
	// RetrieveMail, Mail).
	Seq uint32
	// QueueHint is, in answers to a retrieve, how many more items wait in the queue; in a
	// retrieve or retrieve-mail it is the count of answer frames asked for, 1 to
	// MaxRetrieveBatch (the spec's field "count", section 2.2).
	QueueHint uint32
	// SURBID names the SURB an ACK or reply came back through (Ack only).
	SURBID [sphinx.SURBIDSize]byte
	// Body is a Sphinx packet of exactly PacketSize bytes (SendPacket), up to PacketSize bytes
	// (Message, Ack, Mail), or empty (all others).
	Body []byte
}

// MaxRetrieveBatch is the most answer frames one retrieve may ask for (spec section 7): it
// bounds what one 17 KB frame from a client makes its provider read and send.
const MaxRetrieveBatch = 16

// fieldRule says which fields a command may use.
type fieldRule struct {
	seq, hint, surb bool
	count           bool // the hint field is a retrieve's count, 1 to MaxRetrieveBatch
	minBody         int  // -1: exactly PacketSize
	maxBody         bool
}

func ruleFor(c Command) (fieldRule, bool) {
	switch c {
	case CmdSendPacket:
		return fieldRule{minBody: -1}, true
	case CmdRetrieve, CmdRetrieveMail:
		return fieldRule{seq: true, count: true}, true
	case CmdMessage, CmdMail:
		return fieldRule{seq: true, hint: true, maxBody: true}, true
	case CmdAck:
		return fieldRule{seq: true, hint: true, surb: true, maxBody: true}, true
	case CmdEmpty:
		return fieldRule{seq: true, hint: true}, true
	case CmdNoOp, CmdDisconnect:
		return fieldRule{}, true
	}
	return fieldRule{}, false
}

// check applies the field rules of spec section 2.2 to f.
func (f *Frame) check(g sphinx.Geometry) error {
	r, ok := ruleFor(f.Cmd)
	if !ok {
		return fmt.Errorf("%w: unknown command %d", ErrFrame, uint8(f.Cmd))
	}
	if !r.seq && f.Seq != 0 {
		return fmt.Errorf("%w: %v frame with non-zero seq", ErrFrame, f.Cmd)
	}
	if r.count && (f.QueueHint == 0 || f.QueueHint > MaxRetrieveBatch) {
		return fmt.Errorf("%w: %v frame asks for %d answers, want 1 to %d", ErrFrame, f.Cmd, f.QueueHint, MaxRetrieveBatch)
	}
	if !r.hint && !r.count && f.QueueHint != 0 {
		return fmt.Errorf("%w: %v frame with non-zero queue hint", ErrFrame, f.Cmd)
	}
	if !r.surb && f.SURBID != [sphinx.SURBIDSize]byte{} {
		return fmt.Errorf("%w: %v frame with non-zero SURB id", ErrFrame, f.Cmd)
	}
	n, p := len(f.Body), g.PacketSize()
	switch {
	case r.minBody == -1 && n != p:
		return fmt.Errorf("%w: %v body is %d bytes, want exactly %d", ErrFrame, f.Cmd, n, p)
	case r.maxBody && n > p:
		return fmt.Errorf("%w: %v body is %d bytes, limit %d", ErrFrame, f.Cmd, n, p)
	case r.minBody == 0 && !r.maxBody && n != 0:
		return fmt.Errorf("%w: %v frame with a %d-byte body, want none", ErrFrame, f.Cmd, n)
	}
	return nil
}

// EncodeFrame returns the FrameSize(g) bytes of f. It refuses an invalid geometry and a frame
// that breaks the field rules of spec section 2.2.
func EncodeFrame(g sphinx.Geometry, f *Frame) ([]byte, error) {
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("wire: %w", err)
	}
	buf := make([]byte, FrameSize(g))
	if err := encodeInto(buf, g, f); err != nil {
		return nil, err
	}
	return buf, nil
}

// encodeInto writes f into buf, which must be FrameSize(g) bytes; buf may hold an earlier
// frame, every byte is overwritten. g must be valid.
func encodeInto(buf []byte, g sphinx.Geometry, f *Frame) error {
	if f == nil {
		return fmt.Errorf("%w: nil frame", ErrFrame)
	}
	if err := f.check(g); err != nil {
		return err
	}
	if len(buf) != FrameSize(g) {
		panic("wire: encode buffer of the wrong size")
	}
	buf[offCommand] = byte(f.Cmd)
	clear(buf[offReserved:offSeq])
	binary.BigEndian.PutUint32(buf[offSeq:], f.Seq)
	binary.BigEndian.PutUint32(buf[offQueueHint:], f.QueueHint)
	copy(buf[offSURBID:offBodyLen], f.SURBID[:])
	binary.BigEndian.PutUint32(buf[offBodyLen:], uint32(len(f.Body)))
	n := copy(buf[HeaderSize:], f.Body)
	clear(buf[HeaderSize+n:])
	return nil
}

// DecodeFrame parses exactly one frame of geometry g. It is strict (spec section 2.3): the
// input must be exactly FrameSize(g) bytes, the command known, the reserved bytes and the
// padding after the body zero, the body length within the body area and allowed for the
// command, and fields the command does not use zero. So a frame that decodes re-encodes to
// the identical bytes. The returned Body is a copy; b is not retained.
func DecodeFrame(g sphinx.Geometry, b []byte) (*Frame, error) {
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("wire: %w", err)
	}
	return decode(g, b)
}

// decode is DecodeFrame for a geometry already validated.
func decode(g sphinx.Geometry, b []byte) (*Frame, error) {
	f, err := decodeAlias(g, b)
	if err != nil {
		return nil, err
	}
	if f.Body != nil {
		f.Body = append([]byte(nil), f.Body...)
	}
	return f, nil
}

// decodeAlias is decode with Body aliasing b instead of a copy: the read path of a mix hands
// the packet on in its read buffer, sparing an allocation and a copy of every packet.
func decodeAlias(g sphinx.Geometry, b []byte) (*Frame, error) {
	if len(b) != FrameSize(g) {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrFrame, len(b), FrameSize(g))
	}
	if b[offReserved]|b[offReserved+1]|b[offReserved+2] != 0 {
		return nil, fmt.Errorf("%w: non-zero reserved bytes", ErrFrame)
	}
	bodyLen := binary.BigEndian.Uint32(b[offBodyLen:])
	if uint64(bodyLen) > uint64(g.PacketSize()) {
		return nil, fmt.Errorf("%w: body length %d exceeds the body area of %d bytes", ErrFrame, bodyLen, g.PacketSize())
	}
	end := HeaderSize + int(bodyLen)
	for _, c := range b[end:] {
		if c != 0 {
			return nil, fmt.Errorf("%w: non-zero padding after the body", ErrFrame)
		}
	}
	f := &Frame{
		Cmd:       Command(b[offCommand]),
		Seq:       binary.BigEndian.Uint32(b[offSeq:]),
		QueueHint: binary.BigEndian.Uint32(b[offQueueHint:]),
	}
	copy(f.SURBID[:], b[offSURBID:offBodyLen])
	if bodyLen > 0 {
		f.Body = b[HeaderSize:end:end]
	}
	if err := f.check(g); err != nil {
		return nil, err
	}
	return f, nil
}
