package plugin

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// Frame constants (docs/spec/plugin.md section 2).
const (
	// Version is the only protocol version this package speaks.
	Version = 1
	// headerSize is version, type and request id: the smallest length a frame has.
	headerSize = 1 + 1 + 8
	// MaxFrame bounds any frame's length: one Sphinx payload of the largest geometry and its
	// recipient fit.
	MaxFrame = sphinx.MaxPayloadSize + 4096
	// MaxPluginFrame bounds the length of frames read from a plugin: the largest valid one is
	// an ANSWER carrying a full ACK answer, so anything longer is refused before it is read.
	MaxPluginFrame = headerSize + 1 + client.MaxAckAnswer
	// maxStatus is the largest ACK status a plugin may answer with.
	maxStatus = client.AckRefused
)

// Frame types.
const (
	TypeHello   = 1
	TypeRequest = 2
	TypeAnswer  = 3
)

// flagReply marks a request whose sender waits for an answer (it carried a SURB).
const flagReply = 0x01

// ErrFrame is wrapped by every frame decoding error.
var ErrFrame = errors.New("plugin: malformed frame")

// Frame is one decoded frame; Body aliases the decoded bytes.
type Frame struct {
	Type      uint8
	RequestID uint64
	Body      []byte
}

// Marshal encodes f with its length prefix.
func (f *Frame) Marshal() []byte {
	out := make([]byte, 0, 4+headerSize+len(f.Body))
	out = binary.BigEndian.AppendUint32(out, uint32(headerSize+len(f.Body)))
	out = append(out, Version, f.Type)
	out = binary.BigEndian.AppendUint64(out, f.RequestID)
	return append(out, f.Body...)
}

// ParseFrame decodes one whole frame (length prefix included) of at most maxLen bytes after
// the prefix. It checks the header only; the body is checked by the Parse function of its type.
func ParseFrame(b []byte, maxLen int) (*Frame, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: %d bytes", ErrFrame, len(b))
	}
	n := binary.BigEndian.Uint32(b)
	if err := checkLength(n, maxLen); err != nil {
		return nil, err
	}
	if int(n) != len(b)-4 {
		return nil, fmt.Errorf("%w: length %d, %d bytes follow", ErrFrame, n, len(b)-4)
	}
	return parseHeader(b[4:])
}

func checkLength(n uint32, maxLen int) error {
	if n < headerSize {
		return fmt.Errorf("%w: length %d under %d", ErrFrame, n, headerSize)
	}
	if uint64(n) > uint64(maxLen) {
		return fmt.Errorf("%w: length %d over %d", ErrOversize, n, maxLen)
	}
	return nil
}

// ErrOversize is wrapped by the error of a frame whose length is over the reader's limit.
var ErrOversize = errors.New("plugin: frame too large")

func parseHeader(b []byte) (*Frame, error) {
	if b[0] != Version {
		return nil, fmt.Errorf("%w: version %d", ErrFrame, b[0])
	}
	t := b[1]
	if t < TypeHello || t > TypeAnswer {
		return nil, fmt.Errorf("%w: type %d", ErrFrame, t)
	}
	return &Frame{Type: t, RequestID: binary.BigEndian.Uint64(b[2:]), Body: b[headerSize:]}, nil
}

// ReadFrame reads one frame of at most maxLen bytes after the length prefix from r, checking
// the length before it reads the rest.
func ReadFrame(r io.Reader, maxLen int) (*Frame, error) {
	var p [4]byte
	if _, err := io.ReadFull(r, p[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(p[:])
	if err := checkLength(n, maxLen); err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%w: %w", ErrFrame, err)
	}
	return parseHeader(b)
}

// Hello is a plugin's first frame.
type Hello struct {
	Name        string
	MaxInFlight uint16
}

// Frame encodes h.
func (h *Hello) Frame() *Frame {
	body := append([]byte{byte(len(h.Name))}, h.Name...)
	return &Frame{Type: TypeHello, Body: binary.BigEndian.AppendUint16(body, h.MaxInFlight)}
}

// ParseHello decodes a HELLO frame.
func ParseHello(f *Frame) (*Hello, error) {
	if f.Type != TypeHello || f.RequestID != 0 {
		return nil, fmt.Errorf("%w: want a HELLO with request id 0, got type %d id %d", ErrFrame, f.Type, f.RequestID)
	}
	b := f.Body
	if len(b) < 1 || len(b) != 1+int(b[0])+2 {
		return nil, fmt.Errorf("%w: HELLO body of %d bytes", ErrFrame, len(b))
	}
	h := &Hello{Name: string(b[1 : 1+b[0]]), MaxInFlight: binary.BigEndian.Uint16(b[1+b[0]:])}
	if !service.NamePattern.MatchString(h.Name) {
		return nil, fmt.Errorf("%w: HELLO name %q does not match %s", ErrFrame, h.Name, service.NamePattern)
	}
	if h.MaxInFlight == 0 {
		return nil, fmt.Errorf("%w: HELLO max_in_flight 0", ErrFrame)
	}
	return h, nil
}

// Request is what mixd sends a plugin for one delivered fragment.
type Request struct {
	MessageID client.MessageID
	Reply     bool
	Recipient string
	Data      []byte
}

// Frame encodes r under request id id.
func (r *Request) Frame(id uint64) *Frame {
	body := make([]byte, 0, client.MessageIDSize+2+len(r.Recipient)+len(r.Data))
	body = append(body, r.MessageID[:]...)
	var flags byte
	if r.Reply {
		flags |= flagReply
	}
	body = append(body, flags, byte(len(r.Recipient)))
	body = append(body, r.Recipient...)
	return &Frame{Type: TypeRequest, RequestID: id, Body: append(body, r.Data...)}
}

// ParseRequest decodes a REQUEST frame (the plugin side's decoder, and the tests').
func ParseRequest(f *Frame) (*Request, error) {
	b := f.Body
	if f.Type != TypeRequest || len(b) < client.MessageIDSize+2 {
		return nil, fmt.Errorf("%w: REQUEST type %d, body of %d bytes", ErrFrame, f.Type, len(b))
	}
	r := &Request{}
	copy(r.MessageID[:], b)
	flags, n := b[client.MessageIDSize], int(b[client.MessageIDSize+1])
	if flags&^flagReply != 0 {
		return nil, fmt.Errorf("%w: REQUEST flags %#x", ErrFrame, flags)
	}
	rest := b[client.MessageIDSize+2:]
	if n < 1 || n > sphinx.MaxRecipientSize || n > len(rest) {
		return nil, fmt.Errorf("%w: REQUEST recipient of %d bytes", ErrFrame, n)
	}
	r.Reply, r.Recipient, r.Data = flags&flagReply != 0, string(rest[:n]), rest[n:]
	return r, nil
}

// Answer is a plugin's answer to one request.
type Answer struct {
	Status client.AckStatus
	Answer []byte
}

// Frame encodes a under request id id.
func (a *Answer) Frame(id uint64) *Frame {
	return &Frame{Type: TypeAnswer, RequestID: id, Body: append([]byte{byte(a.Status)}, a.Answer...)}
}

// ParseAnswer decodes an ANSWER frame: a status of the ACK format and at most MaxAckAnswer
// answer bytes.
func ParseAnswer(f *Frame) (*Answer, error) {
	b := f.Body
	if f.Type != TypeAnswer || len(b) < 1 {
		return nil, fmt.Errorf("%w: ANSWER type %d, body of %d bytes", ErrFrame, f.Type, len(b))
	}
	if client.AckStatus(b[0]) > maxStatus {
		return nil, fmt.Errorf("%w: ANSWER status %d", ErrFrame, b[0])
	}
	if len(b)-1 > client.MaxAckAnswer {
		return nil, fmt.Errorf("%w: ANSWER of %d bytes, at most %d", ErrFrame, len(b)-1, client.MaxAckAnswer)
	}
	return &Answer{Status: client.AckStatus(b[0]), Answer: b[1:]}, nil
}
