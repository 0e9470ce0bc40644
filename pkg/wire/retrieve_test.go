package wire

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// retrieveKey names one scripted exchange: the retrieve's command and sequence number.
type retrieveKey struct {
	cmd Command
	seq uint32
}

// provider answers retrieves from a fixed script and reads everything else.
func provider(script map[retrieveKey][]*Frame) func(context.Context, *Conn) {
	return func(ctx context.Context, c *Conn) {
		for {
			f, err := c.ReadFrame()
			if err != nil {
				return
			}
			if f.Cmd != CmdRetrieve && f.Cmd != CmdRetrieveMail {
				continue
			}
			for _, a := range script[retrieveKey{f.Cmd, f.Seq}] {
				if c.WriteFrame(a) != nil {
					return
				}
			}
		}
	}
}

func TestRetrieve(t *testing.T) {
	n := networks()[1]
	skey, ckey := newLinkKey(t), newLinkKey(t)
	surb := [16]byte{9, 9, 9}
	msg := func(seq, hint uint32) *Frame { return &Frame{Cmd: CmdMessage, Seq: seq, QueueHint: hint} }
	empty := func(seq uint32) *Frame { return &Frame{Cmd: CmdEmpty, Seq: seq} }
	script := map[retrieveKey][]*Frame{
		{CmdRetrieve, 1}: {{Cmd: CmdNoOp}, {Cmd: CmdMessage, Seq: 1, QueueHint: 2, Body: []byte("mail")}},
		{CmdRetrieve, 2}: {{Cmd: CmdAck, Seq: 5, QueueHint: 1, SURBID: surb, Body: []byte("ack")}},
		{CmdRetrieve, 3}: {empty(3)},
		// Four answers: two items, then empties; four items with a gap in their numbers.
		{CmdRetrieve, 10}:     {msg(10, 1), {Cmd: CmdNoOp}, msg(11, 0), empty(10), empty(10)},
		{CmdRetrieve, 20}:     {msg(21, 4), msg(22, 3), msg(23, 2), msg(25, 0)},
		{CmdRetrieveMail, 30}: {{Cmd: CmdMail, Seq: 30, QueueHint: 1, Body: []byte("c1")}, {Cmd: CmdMail, Seq: 31, Body: []byte("c2")}, empty(30)},
		{CmdRetrieveMail, 40}: {empty(40), empty(40)},
	}
	srv := serve(t, n, "", ServerConfig{Key: skey, Authorize: allow(ckey.Public()), Handle: provider(script)})
	c := mustDial(t, dialCfg(n, srv.addr, ckey, skey.Public()))

	fs, err := c.Retrieve(CmdRetrieve, 1, 1, 5*time.Second)
	if err != nil || len(fs) != 1 || fs[0].Cmd != CmdMessage || fs[0].QueueHint != 2 || string(fs[0].Body) != "mail" {
		t.Fatalf("retrieve 1: %+v, %v", fs, err)
	}
	fs, err = c.Retrieve(CmdRetrieve, 2, 1, 5*time.Second)
	if err != nil || fs[0].Cmd != CmdAck || fs[0].Seq != 5 || fs[0].SURBID != surb || !bytes.Equal(fs[0].Body, []byte("ack")) {
		t.Fatalf("retrieve 2: %+v, %v", fs, err)
	}
	if fs, err = c.Retrieve(CmdRetrieve, 3, 1, 5*time.Second); err != nil || fs[0].Cmd != CmdEmpty {
		t.Fatalf("retrieve 3: %+v, %v", fs, err)
	}
	cmds := func(fs []*Frame) (out []string) {
		for _, f := range fs {
			out = append(out, f.Cmd.String())
		}
		return out
	}
	if fs, err = c.Retrieve(CmdRetrieve, 10, 4, 5*time.Second); err != nil || strings.Join(cmds(fs), " ") != "message message empty empty" || fs[1].Seq != 11 {
		t.Fatalf("retrieve 10 for 4: %v, %v", cmds(fs), err)
	}
	if fs, err = c.Retrieve(CmdRetrieve, 20, 4, 5*time.Second); err != nil || len(fs) != 4 || fs[3].Seq != 25 {
		t.Fatalf("retrieve 20 for 4: %v, %v", cmds(fs), err)
	}
	if fs, err = c.Retrieve(CmdRetrieveMail, 30, 3, 5*time.Second); err != nil || strings.Join(cmds(fs), " ") != "mail mail empty" || string(fs[1].Body) != "c2" {
		t.Fatalf("retrieve-mail 30 for 3: %v, %v", cmds(fs), err)
	}
	if fs, err = c.Retrieve(CmdRetrieveMail, 40, 2, 5*time.Second); err != nil || strings.Join(cmds(fs), " ") != "empty empty" {
		t.Fatalf("retrieve-mail 40 for 2: %v, %v", cmds(fs), err)
	}

	// Counts out of range and commands that are no retrieve are refused before anything is
	// sent, so the link stays usable.
	for _, bad := range []struct {
		cmd   Command
		count int
	}{{CmdRetrieve, 0}, {CmdRetrieve, MaxRetrieveBatch + 1}, {CmdRetrieveMail, -1}, {CmdSendPacket, 1}, {CmdEmpty, 1}} {
		if _, err := c.Retrieve(bad.cmd, 3, bad.count, 5*time.Second); err == nil {
			t.Errorf("%v for %d answers accepted", bad.cmd, bad.count)
		}
	}
	if fs, err = c.Retrieve(CmdRetrieve, 3, 1, 5*time.Second); err != nil || fs[0].Cmd != CmdEmpty {
		t.Fatalf("retrieve 3 after the refused ones: %+v, %v", fs, err)
	}
}

// TestRetrieveRefusesBadAnswers checks every rule of an exchange's answers: each broken answer
// ends the exchange with an error (the caller then closes the link).
func TestRetrieveRefusesBadAnswers(t *testing.T) {
	n := networks()[1]
	skey, ckey := newLinkKey(t), newLinkKey(t)
	msg := func(seq uint32) *Frame { return &Frame{Cmd: CmdMessage, Seq: seq} }
	empty := func(seq uint32) *Frame { return &Frame{Cmd: CmdEmpty, Seq: seq} }
	cases := []struct {
		name  string
		cmd   Command
		count int
		ans   []*Frame
		want  error
	}{
		{"empty with another number", CmdRetrieve, 1, []*Frame{empty(5)}, nil},
		{"item below the request", CmdRetrieve, 1, []*Frame{msg(8)}, nil},
		{"items not increasing", CmdRetrieve, 3, []*Frame{msg(9), msg(9), empty(9)}, nil},
		{"items out of order", CmdRetrieve, 3, []*Frame{msg(11), msg(10), empty(9)}, nil},
		{"item after an empty", CmdRetrieve, 3, []*Frame{msg(9), empty(9), msg(10)}, nil},
		{"mail answering a retrieve", CmdRetrieve, 1, []*Frame{{Cmd: CmdMail, Seq: 9}}, nil},
		{"message answering a retrieve-mail", CmdRetrieveMail, 1, []*Frame{msg(9)}, nil},
		{"packet", CmdRetrieve, 1, []*Frame{{Cmd: CmdSendPacket, Body: fill(testGeometry.PacketSize(), 1)}}, nil},
		{"a retrieve", CmdRetrieve, 1, []*Frame{{Cmd: CmdRetrieve, Seq: 9, QueueHint: 1}}, nil},
		{"fewer answers than asked", CmdRetrieve, 4, []*Frame{msg(9), empty(9), empty(9)}, nil},
		{"disconnect", CmdRetrieve, 2, []*Frame{msg(9), {Cmd: CmdDisconnect}}, ErrDisconnected},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			script := map[retrieveKey][]*Frame{{tc.cmd, 9}: tc.ans}
			srv := serve(t, n, "server-"+tc.name, ServerConfig{Key: skey, Authorize: allow(ckey.Public()), Handle: provider(script)})
			c := mustDial(t, dialCfg(n, srv.addr, ckey, skey.Public()))
			fs, err := c.Retrieve(tc.cmd, 9, tc.count, 300*time.Millisecond)
			if err == nil {
				t.Fatalf("answers accepted: %+v", fs)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}
