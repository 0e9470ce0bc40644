package wire

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// provider answers retrieves from a fixed script and reads everything else.
func provider(script map[uint32][]*Frame) func(context.Context, *Conn) {
	return func(ctx context.Context, c *Conn) {
		for {
			f, err := c.ReadFrame()
			if err != nil {
				return
			}
			if f.Cmd != CmdRetrieve {
				continue
			}
			for _, a := range script[f.Seq] {
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
	script := map[uint32][]*Frame{
		1: {{Cmd: CmdNoOp}, {Cmd: CmdMessage, Seq: 1, QueueHint: 2, Body: []byte("mail")}},
		2: {{Cmd: CmdAck, Seq: 5, QueueHint: 1, SURBID: surb, Body: []byte("ack")}},
		3: {{Cmd: CmdEmpty, Seq: 3}},
		4: {{Cmd: CmdEmpty, Seq: 5}},
		9: {{Cmd: CmdMessage, Seq: 8, Body: []byte("older")}},
		6: {{Cmd: CmdSendPacket, Body: fill(testGeometry.PacketSize(), 1)}},
		7: {{Cmd: CmdDisconnect}},
	}
	srv := serve(t, n, "", ServerConfig{Key: skey, Authorize: allow(ckey.Public()), Handle: provider(script)})
	c := mustDial(t, dialCfg(n, srv.addr, ckey, skey.Public()))

	f, err := c.Retrieve(1, 5*time.Second)
	if err != nil || f.Cmd != CmdMessage || f.QueueHint != 2 || string(f.Body) != "mail" {
		t.Fatalf("retrieve 1: %+v, %v", f, err)
	}
	f, err = c.Retrieve(2, 5*time.Second)
	if err != nil || f.Cmd != CmdAck || f.Seq != 5 || f.SURBID != surb || !bytes.Equal(f.Body, []byte("ack")) {
		t.Fatalf("retrieve 2: %+v, %v", f, err)
	}
	if f, err = c.Retrieve(3, 5*time.Second); err != nil || f.Cmd != CmdEmpty {
		t.Fatalf("retrieve 3: %+v, %v", f, err)
	}
	if _, err := c.Retrieve(4, 5*time.Second); err == nil {
		t.Fatal("empty answer with the wrong sequence number accepted")
	}
	c4 := mustDial(t, dialCfg(n, srv.addr, ckey, skey.Public()))
	if _, err := c4.Retrieve(9, 5*time.Second); err == nil {
		t.Fatal("an item numbered below the request accepted")
	}
	if _, err := c.Retrieve(8, 50*time.Millisecond); err == nil {
		t.Fatal("retrieve without an answer returned no error")
	}

	c2 := mustDial(t, dialCfg(n, srv.addr, ckey, skey.Public()))
	if _, err := c2.Retrieve(6, 5*time.Second); err == nil {
		t.Fatal("a packet frame accepted as an answer")
	}
	c3 := mustDial(t, dialCfg(n, srv.addr, ckey, skey.Public()))
	if _, err := c3.Retrieve(7, 5*time.Second); !errors.Is(err, ErrDisconnected) {
		t.Fatalf("disconnect: %v", err)
	}
}
