package wire

import (
	"errors"
	"fmt"
	"time"
)

// ErrDisconnected is returned when the peer ended the link with a disconnect frame.
var ErrDisconnected = errors.New("wire: peer disconnected")

// Retrieve runs one retrieve exchange of spec section 7 on a client's link to its provider: it
// sends a retrieve frame with sequence number seq (which also acknowledges every item numbered
// below seq) and waits up to timeout (no limit when timeout <= 0) for the answer: a message or
// ACK frame carrying the item's number (at least seq), or an empty frame echoing seq, skipping
// no-op frames. The next retrieve should ask for the item's number plus one. Any other frame is a protocol error and the link should be closed. Retrieve
// assumes the caller is the link's only reader; sending packets from another goroutine at
// the same time is fine.
func (c *Conn) Retrieve(seq uint32, timeout time.Duration) (*Frame, error) {
	if err := c.WriteFrame(&Frame{Cmd: CmdRetrieve, Seq: seq}); err != nil {
		return nil, err
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	if err := c.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	for {
		f, err := c.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch f.Cmd {
		case CmdNoOp:
			continue
		case CmdDisconnect:
			return nil, ErrDisconnected
		case CmdEmpty:
			if f.Seq != seq {
				return nil, fmt.Errorf("wire: empty answer to retrieve %d carries sequence number %d", seq, f.Seq)
			}
			return f, nil
		case CmdMessage, CmdAck:
			// The answer carries the item's own number, never below the one asked for.
			if f.Seq < seq {
				return nil, fmt.Errorf("wire: answer to retrieve %d carries the older item number %d", seq, f.Seq)
			}
			return f, nil
		default:
			return nil, fmt.Errorf("wire: %v frame where an answer to retrieve %d was due", f.Cmd, seq)
		}
	}
}
