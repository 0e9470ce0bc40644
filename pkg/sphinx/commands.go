package sphinx

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Command types (§5).
const (
	cmdEnd       byte = 0x00
	cmdNextHop   byte = 0x01
	cmdDelay     byte = 0x02
	cmdRecipient byte = 0x03
	cmdSURBReply byte = 0x04
)

// Field sizes of the commands (§5).
const (
	// MaxServiceSize is the service name field.
	MaxServiceSize = 16
	// MaxRecipientSize is the recipient field (a mail local part is at most 64 octets).
	MaxRecipientSize = 64

	nextHopSize   = 1 + NodeIDSize + MACSize
	delaySize     = 1 + 4
	recipientSize = 1 + MaxServiceSize + MaxRecipientSize
	surbReplySize = 1 + SURBIDSize
)

// NodeID identifies a node: its Ed25519 identity public key.
type NodeID [NodeIDSize]byte

// Recipient names the service and recipient at the final hop.
type Recipient struct {
	// Service is the provider service, e.g. "mailbox" or "loop".
	Service string
	// ID is what the service delivers to: a mail local part or a user queue name.
	ID string
}

// Commands is the decoded routing information of one hop. A forward hop has NextHop; the final
// hop has Recipient and, for a SURB reply, SURBID.
type Commands struct {
	NextHop    *NodeID
	NextMAC    [MACSize]byte
	HasDelay   bool
	DelayMS    uint32
	Recipient  *Recipient
	SURBID     *[SURBIDSize]byte
	encodedLen int
}

// ErrCommands reports malformed routing commands (§11).
var ErrCommands = errors.New("sphinx: malformed routing commands")

func validService(s string) error {
	if len(s) == 0 || len(s) > MaxServiceSize {
		return fmt.Errorf("service name length %d outside 1..%d", len(s), MaxServiceSize)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("service name %q: byte %#x not a letter, digit or '-'", s, c)
		}
	}
	return nil
}

func validRecipientID(s string) error {
	if len(s) == 0 || len(s) > MaxRecipientSize {
		return fmt.Errorf("recipient length %d outside 1..%d", len(s), MaxRecipientSize)
	}
	if bytes.IndexByte([]byte(s), 0) >= 0 {
		return errors.New("recipient contains a NUL byte")
	}
	return nil
}

// Validate checks the recipient against §5.
func (r Recipient) Validate() error {
	if err := validService(r.Service); err != nil {
		return fmt.Errorf("sphinx: %w", err)
	}
	if err := validRecipientID(r.ID); err != nil {
		return fmt.Errorf("sphinx: %w", err)
	}
	return nil
}

// appendCommands encodes c in the sender's order (§5) and returns the bytes, End included
// when they are shorter than PerHopSize.
func appendCommands(dst []byte, c *Commands) []byte {
	start := len(dst)
	if c.NextHop != nil {
		dst = append(dst, cmdNextHop)
		dst = append(dst, c.NextHop[:]...)
		dst = append(dst, c.NextMAC[:]...)
	}
	if c.Recipient != nil {
		dst = append(dst, cmdRecipient)
		var f [MaxServiceSize + MaxRecipientSize]byte
		copy(f[:MaxServiceSize], c.Recipient.Service)
		copy(f[MaxServiceSize:], c.Recipient.ID)
		dst = append(dst, f[:]...)
	}
	if c.SURBID != nil {
		dst = append(dst, cmdSURBReply)
		dst = append(dst, c.SURBID[:]...)
	}
	if c.HasDelay {
		dst = append(dst, cmdDelay)
		dst = binary.BigEndian.AppendUint32(dst, c.DelayMS)
	}
	if len(dst)-start < PerHopSize {
		dst = append(dst, cmdEnd)
	}
	return dst
}

// EncodeCommands returns the encoding of c (§5), without padding. It fails when c is not a valid
// forward or final hop.
func EncodeCommands(c *Commands) ([]byte, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	return appendCommands(nil, c), nil
}

func (c *Commands) check() error {
	switch {
	case c.NextHop != nil && c.Recipient != nil:
		return fmt.Errorf("%w: both next hop and recipient", ErrCommands)
	case c.NextHop == nil && c.Recipient == nil:
		return fmt.Errorf("%w: neither next hop nor recipient", ErrCommands)
	case c.SURBID != nil && c.Recipient == nil:
		return fmt.Errorf("%w: SURB reply without recipient", ErrCommands)
	}
	if c.Recipient != nil {
		if err := c.Recipient.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrCommands, err)
		}
	}
	return nil
}

// trimField returns the field up to its NUL padding, and fails if anything non-zero follows
// the first NUL.
func trimField(f []byte) ([]byte, bool) {
	i := bytes.IndexByte(f, 0)
	if i < 0 {
		return f, true
	}
	for _, b := range f[i:] {
		if b != 0 {
			return nil, false
		}
	}
	return f[:i], true
}

// commandRank gives the canonical position and size of a known command type.
func commandRank(t byte) (rank, size int) {
	switch t {
	case cmdNextHop:
		return 0, nextHopSize
	case cmdRecipient:
		return 0, recipientSize
	case cmdSURBReply:
		return 1, surbReplySize
	default: // cmdDelay
		return 2, delaySize
	}
}

// ParseCommands decodes one hop's routing block (§5). block must be PerHopSize bytes.
func ParseCommands(block []byte) (*Commands, error) {
	if len(block) != PerHopSize {
		return nil, fmt.Errorf("%w: block of %d bytes, want %d", ErrCommands, len(block), PerHopSize)
	}
	c := &Commands{}
	rank := -1
	i := 0
loop:
	for i < len(block) {
		t := block[i]
		if t == cmdEnd {
			i++
			break loop
		}
		if t > cmdSURBReply {
			return nil, fmt.Errorf("%w: unknown command %#x", ErrCommands, t)
		}
		// Commands must come in the sender's order, each at most once, so that a block has one
		// encoding (§5).
		r, size := commandRank(t)
		if r <= rank {
			return nil, fmt.Errorf("%w: command %#x repeated or out of order", ErrCommands, t)
		}
		rank = r
		if i+size > len(block) {
			return nil, fmt.Errorf("%w: command %#x truncated", ErrCommands, t)
		}
		body := block[i+1 : i+size]
		switch t {
		case cmdNextHop:
			var id NodeID
			copy(id[:], body[:NodeIDSize])
			c.NextHop = &id
			copy(c.NextMAC[:], body[NodeIDSize:])
		case cmdDelay:
			c.HasDelay = true
			c.DelayMS = binary.BigEndian.Uint32(body)
		case cmdRecipient:
			svc, ok1 := trimField(body[:MaxServiceSize])
			rcpt, ok2 := trimField(body[MaxServiceSize:])
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%w: bytes after field padding", ErrCommands)
			}
			c.Recipient = &Recipient{Service: string(svc), ID: string(rcpt)}
		case cmdSURBReply:
			var id [SURBIDSize]byte
			copy(id[:], body)
			c.SURBID = &id
		}
		i += size
	}
	c.encodedLen = i
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// EncodedLen is the number of bytes ParseCommands consumed (End included).
func (c *Commands) EncodedLen() int { return c.encodedLen }
