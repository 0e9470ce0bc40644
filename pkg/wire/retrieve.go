package wire

import (
	"errors"
	"fmt"
	"time"
)

// ErrDisconnected is returned when the peer ended the link with a disconnect frame.
var ErrDisconnected = errors.New("wire: peer disconnected")

// Retrieve runs one retrieve exchange of spec section 7 on a client's link to its provider:
// cmd is CmdRetrieve (the queue of ACKs, replies and messages) or CmdRetrieveMail (the mail
// queue, section 7.1). It sends the retrieve with sequence number seq, which acknowledges
// every item numbered below seq, asking for count answers (1 to MaxRetrieveBatch), and waits
// up to timeout in all (no limit when timeout <= 0) for exactly count answer frames, skipping
// no-op frames. It returns them in order: first the items, each carrying its own number, at
// least seq and strictly increasing, then empty frames echoing seq. The next retrieve should
// ask for the last item's number plus one (seq again when there was none). Anything else is a
// protocol error and the link should be closed. Retrieve assumes the caller is the link's
// only reader; sending packets from another goroutine at the same time is fine.
func (c *Conn) Retrieve(cmd Command, seq uint32, count int, timeout time.Duration) ([]*Frame, error) {
	var item func(Command) bool
	switch cmd {
	case CmdRetrieve:
		item = func(a Command) bool { return a == CmdMessage || a == CmdAck }
	case CmdRetrieveMail:
		item = func(a Command) bool { return a == CmdMail }
	default:
		return nil, fmt.Errorf("wire: %v is not a retrieve command", cmd)
	}
	if count < 1 || count > MaxRetrieveBatch {
		return nil, fmt.Errorf("wire: %v for %d answers, want 1 to %d", cmd, count, MaxRetrieveBatch)
	}
	if err := c.WriteFrame(&Frame{Cmd: cmd, Seq: seq, QueueHint: uint32(count)}); err != nil {
		return nil, err
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
	}
	if err := c.SetReadDeadline(deadline); err != nil {
		return nil, err
	}
	answers := make([]*Frame, 0, count)
	next := uint64(seq) // the lowest number the next item may carry
	for len(answers) < count {
		f, err := c.ReadFrame()
		if err != nil {
			return nil, err
		}
		switch {
		case f.Cmd == CmdNoOp:
			continue
		case f.Cmd == CmdDisconnect:
			return nil, ErrDisconnected
		case f.Cmd == CmdEmpty:
			if f.Seq != seq {
				return nil, fmt.Errorf("wire: empty answer to %v %d carries sequence number %d", cmd, seq, f.Seq)
			}
		case item(f.Cmd):
			// Items come oldest first, each with its own number, never below the one asked
			// for, and before every empty answer.
			if n := len(answers); n > 0 && answers[n-1].Cmd == CmdEmpty {
				return nil, fmt.Errorf("wire: %v after an empty answer to %v %d", f.Cmd, cmd, seq)
			}
			if uint64(f.Seq) < next {
				return nil, fmt.Errorf("wire: answer %d to %v %d carries item number %d, want at least %d", len(answers)+1, cmd, seq, f.Seq, next)
			}
			next = uint64(f.Seq) + 1
		default:
			return nil, fmt.Errorf("wire: %v frame where an answer to %v %d was due", f.Cmd, cmd, seq)
		}
		answers = append(answers, f)
	}
	return answers, nil
}
