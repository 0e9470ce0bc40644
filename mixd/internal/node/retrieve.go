package node

import (
	"math"

	"github.com/panoramix-mixnet/panoramix/mixd/internal/provider"
	"github.com/panoramix-mixnet/panoramix/pkg/wire"
)

// answerRetrieve answers a retrieve (seq, count) with exactly count frames
// (docs/spec/wire.md section 7): the items numbered seq or more, oldest first, each with its
// own number and what still waits after it, then empty frames echoing seq. count was checked
// when the frame was decoded (1 to wire.MaxRetrieveBatch). The frames leave in one write.
func (n *Node) answerRetrieve(c *wire.Conn, user string, seq uint32, count int) error {
	items, remaining, err := n.store.FetchN(user, uint64(seq), count)
	if err != nil {
		return err
	}
	answers := make([]*wire.Frame, 0, count)
	for i, it := range items {
		f := &wire.Frame{Seq: uint32(it.Seq), QueueHint: hint(remaining[i]), Body: it.Body}
		if it.Kind == provider.ItemReply {
			f.Cmd = wire.CmdAck
			f.SURBID = it.SURBID
		} else {
			f.Cmd = wire.CmdMessage
		}
		answers = append(answers, f)
	}
	return c.WriteFrames(padEmpty(answers, seq, count))
}

// answerRetrieveMail answers a retrieve-mail exactly as answerRetrieve answers a retrieve, from
// the user's mail queue (docs/spec/wire.md section 7.1).
func (n *Node) answerRetrieveMail(c *wire.Conn, user string, seq uint32, count int) error {
	items, remaining, err := n.store.FetchMailN(user, uint64(seq), count)
	if err != nil {
		return err
	}
	answers := make([]*wire.Frame, 0, count)
	for i, it := range items {
		answers = append(answers, &wire.Frame{Cmd: wire.CmdMail, Seq: uint32(it.Seq), QueueHint: hint(remaining[i]), Body: it.Chunk})
	}
	if err := c.WriteFrames(padEmpty(answers, seq, count)); err != nil {
		return err
	}
	n.m.mailServed.Add(float64(len(items)))
	return nil
}

// padEmpty fills answers up to count frames with empty answers echoing seq: the number of
// frames never depends on the queue (docs/spec/wire.md section 9).
func padEmpty(answers []*wire.Frame, seq uint32, count int) []*wire.Frame {
	for len(answers) < count {
		answers = append(answers, &wire.Frame{Cmd: wire.CmdEmpty, Seq: seq})
	}
	return answers
}

// hint is a queue hint: the items waiting after one, capped at what the field holds.
func hint(remaining int) uint32 { return uint32(min(remaining, math.MaxUint32)) }
