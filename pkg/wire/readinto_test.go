package wire

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// TestReadFrameInto: frames read into the caller's buffer equal what was sent, their bodies
// alias the buffer (the point: no copy), a buffer of the wrong size is refused without losing
// the frame, and a malformed frame is refused as by ReadFrame.
func TestReadFrameInto(t *testing.T) {
	for _, n := range networks() {
		t.Run(n.name, func(t *testing.T) {
			skey, ckey := newLinkKey(t), newLinkKey(t)
			type read struct {
				f       *Frame
				aliased bool
				err     error
			}
			reads := make(chan read, 16)
			size := FrameSize(testGeometry)
			srv := serve(t, n, "", ServerConfig{Key: skey, Authorize: allow(ckey.Public()), Handle: func(ctx context.Context, c *Conn) {
				if _, err := c.ReadFrameInto(make([]byte, size-1)); err == nil {
					reads <- read{err: errors.New("a short buffer was accepted")}
					return
				}
				buf := make([]byte, size)
				for {
					f, err := c.ReadFrameInto(buf)
					if err != nil {
						reads <- read{err: err}
						return
					}
					aliased := len(f.Body) > 0 && &f.Body[0] == &buf[HeaderSize]
					// A copy, since buf is overwritten by the next read.
					g := *f
					g.Body = bytes.Clone(f.Body)
					reads <- read{f: &g, aliased: aliased}
				}
			}})
			c := mustDial(t, dialCfg(n, srv.addr, ckey, skey.Public()))
			ack := &Frame{Cmd: CmdAck, Seq: 3, QueueHint: 9, Body: []byte("reply")}
			ack.SURBID[0] = 0xaa
			sent := []*Frame{packet(1), {Cmd: CmdRetrieve, Seq: 7, QueueHint: 2}, ack, packet(2)}
			for _, f := range sent {
				if err := c.WriteFrame(f); err != nil {
					t.Fatal(err)
				}
			}
			for i, want := range sent {
				r := <-reads
				if r.err != nil {
					t.Fatalf("frame %d: %v", i, r.err)
				}
				got := r.f
				if got.Cmd != want.Cmd || got.Seq != want.Seq || got.QueueHint != want.QueueHint || got.SURBID != want.SURBID || !bytes.Equal(got.Body, want.Body) {
					t.Fatalf("frame %d: got %+v, want %+v", i, got, want)
				}
				if len(want.Body) > 0 && !r.aliased {
					t.Fatalf("frame %d: body does not alias the read buffer", i)
				}
			}
			// A frame with a non-zero reserved byte, under valid TLS.
			bad, err := EncodeFrame(testGeometry, &Frame{Cmd: CmdNoOp})
			if err != nil {
				t.Fatal(err)
			}
			bad[offReserved] = 1
			if _, err := c.tc.Write(bad); err != nil {
				t.Fatal(err)
			}
			if r := <-reads; !errors.Is(r.err, ErrFrame) {
				t.Fatalf("malformed frame: got %v, want ErrFrame", r.err)
			}
		})
	}
}
