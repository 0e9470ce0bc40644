package wire

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// recordingTransport records every write on the connections it dials, as the sizes of the
// TLS records in it (header included).
type recordingTransport struct {
	Transport
	mu     sync.Mutex
	writes [][]int
}

func (r *recordingTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := r.Transport.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return recordingConn{c, r}, nil
}

func (r *recordingTransport) take() [][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.writes
	r.writes = nil
	return w
}

type recordingConn struct {
	net.Conn
	r *recordingTransport
}

func (c recordingConn) Write(b []byte) (int, error) {
	c.r.mu.Lock()
	c.r.writes = append(c.r.writes, records(b))
	c.r.mu.Unlock()
	return c.Conn.Write(b)
}

// records splits b at TLS record headers (5 bytes, the last two the length); a write that does
// not end at a record boundary ends with the size of what is left, negated.
func records(b []byte) []int {
	var out []int
	for len(b) > 0 {
		if len(b) < 5 {
			return append(out, -len(b))
		}
		n := 5 + (int(b[3])<<8 | int(b[4]))
		if n > len(b) {
			return append(out, -len(b))
		}
		out = append(out, n)
		b = b[n:]
	}
	return out
}

// TestRecordSizesDoNotLeakCommand checks what an observer of the link sees: every frame, of
// any command, first or thousandth, leaves as the same sequence of TLS records (spec section
// 3.1 and 9).
func TestRecordSizesDoNotLeakCommand(t *testing.T) {
	g := sphinx.DefaultGeometry()
	n := networks()[1]
	rec := &recordingTransport{Transport: n.tr}
	skey, ckey := newLinkKey(t), newLinkKey(t)
	frames := newRecorder()
	srv := serve(t, n, "", ServerConfig{Geometry: g, Key: skey, Authorize: allow(ckey.Public()), Handle: frames.handle})
	cfg := dialCfg(network{name: "rec", tr: rec}, srv.addr, ckey, skey.Public())
	cfg.Geometry = g
	c := mustDial(t, cfg)
	rec.take() // the handshake

	p := g.PacketSize()
	sent := []*Frame{
		{Cmd: CmdNoOp},
		{Cmd: CmdSendPacket, Body: make([]byte, p)},
		{Cmd: CmdRetrieve, Seq: 1, QueueHint: 1},
		{Cmd: CmdDisconnect},
	}
	// Many packets first, past the point where dynamic record sizing would switch sizes.
	for range 20 {
		sent = append(sent, &Frame{Cmd: CmdSendPacket, Body: make([]byte, p)})
	}
	sent = append(sent, &Frame{Cmd: CmdNoOp}, &Frame{Cmd: CmdRetrieve, Seq: 2, QueueHint: 16})
	var first [][]int
	for i, f := range sent {
		if err := c.WriteFrame(f); err != nil {
			t.Fatal(err)
		}
		w := rec.take()
		if i == 0 {
			first = w
			t.Logf("one frame of %d bytes = TLS writes %v", FrameSize(g), w)
			continue
		}
		if !slices.EqualFunc(w, first, slices.Equal) {
			t.Fatalf("frame %d (%v) left as writes %v, frame 0 as %v", i, f.Cmd, w, first)
		}
	}
	// Both records in one transport write: a frame never leaves in parts.
	want := [][]int{{5 + 16384 + 1 + 16, 5 + (FrameSize(g) - 16384) + 1 + 16}}
	if !slices.EqualFunc(first, want, slices.Equal) {
		t.Fatalf("writes of records %v, want %v as in docs/spec/wire.md", first, want)
	}

	// WriteFrames (a provider's answers to a retrieve): each frame's records as above, all in
	// one transport write; a bad frame anywhere writes nothing.
	batch := []*Frame{{Cmd: CmdMessage, Seq: 3, QueueHint: 2, Body: []byte("x")}, {Cmd: CmdAck, Seq: 4}, {Cmd: CmdEmpty, Seq: 3}, {Cmd: CmdEmpty, Seq: 3}}
	if err := c.WriteFrames(batch); err != nil {
		t.Fatal(err)
	}
	w := rec.take()
	var all []int
	for range batch {
		all = append(all, first[0]...)
	}
	if !slices.EqualFunc(w, [][]int{all}, slices.Equal) {
		t.Fatalf("%d frames left as writes %v, want one write of records %v", len(batch), w, all)
	}
	if err := c.WriteFrames([]*Frame{{Cmd: CmdEmpty}, {Cmd: CmdEmpty, Body: []byte{1}}}); !errors.Is(err, ErrFrame) {
		t.Fatalf("a batch with a bad frame: %v, want ErrFrame", err)
	}
	if w := rec.take(); len(w) != 0 {
		t.Fatalf("a refused batch wrote %v", w)
	}
}
