package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// testGeometry is small so that frames in tests and fuzzing are small.
var testGeometry = sphinx.Geometry{Hops: 1, PayloadSize: 32}

func TestFrameSizeDefault(t *testing.T) {
	// The spec (section 2.1) states this number; keep them in step.
	if got := FrameSize(sphinx.DefaultGeometry()); got != 17016 {
		t.Fatalf("FrameSize(default) = %d, want 17016 as in docs/spec/wire.md", got)
	}
	if HeaderSize != 32 {
		t.Fatalf("HeaderSize = %d, want 32", HeaderSize)
	}
}

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// validFrames has one frame per command, with every field the command may use set.
func validFrames(g sphinx.Geometry) map[string]*Frame {
	p := g.PacketSize()
	surb := [sphinx.SURBIDSize]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	return map[string]*Frame{
		"send-packet":     {Cmd: CmdSendPacket, Body: fill(p, 0xa5)},
		"retrieve":        {Cmd: CmdRetrieve, Seq: 7, QueueHint: 1},
		"retrieve-16":     {Cmd: CmdRetrieve, Seq: 7, QueueHint: MaxRetrieveBatch},
		"message":         {Cmd: CmdMessage, Seq: 7, QueueHint: 3, Body: []byte("hello")},
		"message-full":    {Cmd: CmdMessage, Seq: 0xffffffff, QueueHint: 0xffffffff, Body: fill(p, 0xff)},
		"message-empty":   {Cmd: CmdMessage, Seq: 1},
		"ack":             {Cmd: CmdAck, Seq: 8, QueueHint: 1, SURBID: surb, Body: fill(p-1, 0x5a)},
		"ack-no-body":     {Cmd: CmdAck, Seq: 9, SURBID: surb},
		"empty":           {Cmd: CmdEmpty, Seq: 10},
		"no-op":           {Cmd: CmdNoOp},
		"disconnect":      {Cmd: CmdDisconnect},
		"retrieve-mail":   {Cmd: CmdRetrieveMail, Seq: 11, QueueHint: 4},
		"mail":            {Cmd: CmdMail, Seq: 11, QueueHint: 63, Body: fill(p, 0x3c)},
		"message-trail-0": {Cmd: CmdMessage, Seq: 2, Body: []byte{1, 0, 0}}, // trailing zero bytes are body, not padding
	}
}

func TestFrameRoundTrip(t *testing.T) {
	for _, g := range []sphinx.Geometry{testGeometry, sphinx.DefaultGeometry()} {
		for name, f := range validFrames(g) {
			b, err := EncodeFrame(g, f)
			if err != nil {
				t.Fatalf("%v %s: encode: %v", g, name, err)
			}
			if len(b) != FrameSize(g) {
				t.Fatalf("%s: %d bytes, want %d", name, len(b), FrameSize(g))
			}
			got, err := DecodeFrame(g, b)
			if err != nil {
				t.Fatalf("%v %s: decode: %v", g, name, err)
			}
			if got.Cmd != f.Cmd || got.Seq != f.Seq || got.QueueHint != f.QueueHint || got.SURBID != f.SURBID || !bytes.Equal(got.Body, f.Body) {
				t.Fatalf("%s: decoded %+v, want %+v", name, got, f)
			}
			again, err := EncodeFrame(g, got)
			if err != nil || !bytes.Equal(again, b) {
				t.Fatalf("%s: re-encoding differs (err %v)", name, err)
			}
		}
	}
}

// TestFrameLayout pins the byte positions of spec section 2.1.
func TestFrameLayout(t *testing.T) {
	g := testGeometry
	f := &Frame{Cmd: CmdAck, Seq: 0x01020304, QueueHint: 0x05060708, Body: []byte{0xaa, 0xbb}}
	for i := range f.SURBID {
		f.SURBID[i] = byte(0x10 + i)
	}
	b, err := EncodeFrame(g, f)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{4, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}
	for i := range 16 {
		want = append(want, byte(0x10+i))
	}
	want = append(want, 0, 0, 0, 2, 0xaa, 0xbb)
	if !bytes.Equal(b[:len(want)], want) {
		t.Fatalf("layout:\n got %x\nwant %x", b[:len(want)], want)
	}
	if !bytes.Equal(b[len(want):], make([]byte, len(b)-len(want))) {
		t.Fatal("padding is not zero")
	}
}

// TestDecodeFrameRefuses covers each rule of spec section 2.3 on its own.
func TestDecodeFrameRefuses(t *testing.T) {
	g := testGeometry
	p := g.PacketSize()
	enc := func(f *Frame) []byte {
		b, err := EncodeFrame(g, f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	setLen := func(b []byte, n uint32) []byte {
		binary.BigEndian.PutUint32(b[offBodyLen:], n)
		return b
	}
	mod := func(f *Frame, edit func([]byte) []byte) []byte { return edit(enc(f)) }
	cases := map[string][]byte{
		"empty input":         {},
		"one byte short":      enc(&Frame{Cmd: CmdNoOp})[:FrameSize(g)-1],
		"one byte long":       append(enc(&Frame{Cmd: CmdNoOp}), 0),
		"all zero":            make([]byte, FrameSize(g)),
		"unknown command 10":  mod(&Frame{Cmd: CmdNoOp}, func(b []byte) []byte { b[0] = 10; return b }),
		"unknown command 255": mod(&Frame{Cmd: CmdNoOp}, func(b []byte) []byte { b[0] = 255; return b }),
		"reserved byte 1":     mod(&Frame{Cmd: CmdNoOp}, func(b []byte) []byte { b[1] = 1; return b }),
		"reserved byte 3":     mod(&Frame{Cmd: CmdNoOp}, func(b []byte) []byte { b[3] = 0x80; return b }),
		"body length over area": mod(&Frame{Cmd: CmdMessage}, func(b []byte) []byte {
			return setLen(b, uint32(p+1))
		}),
		"body length 2^32-1": mod(&Frame{Cmd: CmdMessage}, func(b []byte) []byte {
			return setLen(b, 0xffffffff)
		}),
		"non-zero padding": mod(&Frame{Cmd: CmdMessage, Body: []byte{1}}, func(b []byte) []byte {
			b[len(b)-1] = 1
			return b
		}),
		"padding right after body": mod(&Frame{Cmd: CmdMessage, Body: []byte{1}}, func(b []byte) []byte {
			b[HeaderSize+1] = 1
			return b
		}),
		"send-packet short body": mod(&Frame{Cmd: CmdSendPacket, Body: fill(p, 1)}, func(b []byte) []byte {
			b[len(b)-1] = 0
			return setLen(b, uint32(p-1))
		}),
		"send-packet no body":   mod(&Frame{Cmd: CmdNoOp}, func(b []byte) []byte { b[0] = byte(CmdSendPacket); return b }),
		"no-op with body":       mod(&Frame{Cmd: CmdMessage, Body: []byte{1}}, func(b []byte) []byte { b[0] = byte(CmdNoOp); return b }),
		"retrieve with body":    mod(&Frame{Cmd: CmdMessage, Body: []byte{1}}, func(b []byte) []byte { b[0] = byte(CmdRetrieve); return b }),
		"empty with body":       mod(&Frame{Cmd: CmdMessage, Body: []byte{1}}, func(b []byte) []byte { b[0] = byte(CmdEmpty); return b }),
		"disconnect with seq":   mod(&Frame{Cmd: CmdEmpty, Seq: 1}, func(b []byte) []byte { b[0] = byte(CmdDisconnect); return b }),
		"send-packet with seq":  mod(&Frame{Cmd: CmdSendPacket, Body: fill(p, 1)}, func(b []byte) []byte { b[offSeq+3] = 1; return b }),
		"retrieve count 0":      mod(&Frame{Cmd: CmdEmpty, Seq: 3}, func(b []byte) []byte { b[0] = byte(CmdRetrieve); return b }),
		"retrieve count 17":     mod(&Frame{Cmd: CmdMessage, QueueHint: MaxRetrieveBatch + 1}, func(b []byte) []byte { b[0] = byte(CmdRetrieve); return b }),
		"retrieve count 2^32-1": mod(&Frame{Cmd: CmdMessage, QueueHint: 0xffffffff}, func(b []byte) []byte { b[0] = byte(CmdRetrieve); return b }),
		"retrieve-mail count 0": mod(&Frame{Cmd: CmdEmpty}, func(b []byte) []byte { b[0] = byte(CmdRetrieveMail); return b }),
		"retrieve-mail 17":      mod(&Frame{Cmd: CmdMessage, QueueHint: MaxRetrieveBatch + 1}, func(b []byte) []byte { b[0] = byte(CmdRetrieveMail); return b }),
		"message with SURB id":  mod(&Frame{Cmd: CmdAck, SURBID: [16]byte{1}}, func(b []byte) []byte { b[0] = byte(CmdMessage); return b }),
		"no-op with SURB id":    mod(&Frame{Cmd: CmdAck, SURBID: [16]byte{15: 1}}, func(b []byte) []byte { b[0] = byte(CmdNoOp); return b }),
		"empty with SURB id":    mod(&Frame{Cmd: CmdAck, SURBID: [16]byte{1}}, func(b []byte) []byte { b[0] = byte(CmdEmpty); return b }),
		"no-op with hint":       mod(&Frame{Cmd: CmdEmpty, QueueHint: 9}, func(b []byte) []byte { b[0] = byte(CmdNoOp); return b }),
		"disconnect with body":  mod(&Frame{Cmd: CmdAck, Body: []byte{0}}, func(b []byte) []byte { b[0] = byte(CmdDisconnect); return b }),
		"retrieve with 0 body+": mod(&Frame{Cmd: CmdMessage, Body: []byte{0}}, func(b []byte) []byte { b[0] = byte(CmdRetrieve); return b }),
	}
	for name, b := range cases {
		if f, err := DecodeFrame(g, b); err == nil {
			t.Errorf("%s: decoded %+v, want an error", name, f)
		} else if !errors.Is(err, ErrFrame) {
			t.Errorf("%s: error %v does not wrap ErrFrame", name, err)
		}
	}
}

func TestEncodeFrameRefuses(t *testing.T) {
	g := testGeometry
	p := g.PacketSize()
	cases := map[string]*Frame{
		"nil":                   nil,
		"zero command":          {},
		"unknown command":       {Cmd: 99},
		"send-packet short":     {Cmd: CmdSendPacket, Body: fill(p-1, 1)},
		"send-packet long":      {Cmd: CmdSendPacket, Body: fill(p+1, 1)},
		"message over limit":    {Cmd: CmdMessage, Body: fill(p+1, 1)},
		"ack over limit":        {Cmd: CmdAck, Body: fill(p+1, 1)},
		"retrieve with body":    {Cmd: CmdRetrieve, QueueHint: 1, Body: []byte{1}},
		"retrieve count 0":      {Cmd: CmdRetrieve, Seq: 1},
		"retrieve count 17":     {Cmd: CmdRetrieve, QueueHint: MaxRetrieveBatch + 1},
		"retrieve-mail count 0": {Cmd: CmdRetrieveMail},
		"no-op with seq":        {Cmd: CmdNoOp, Seq: 1},
		"send-packet with hint": {Cmd: CmdSendPacket, QueueHint: 1, Body: fill(p, 1)},
		"message with SURB id":  {Cmd: CmdMessage, SURBID: [16]byte{1}},
	}
	for name, f := range cases {
		if _, err := EncodeFrame(g, f); !errors.Is(err, ErrFrame) {
			t.Errorf("%s: err = %v, want ErrFrame", name, err)
		}
	}
	if _, err := EncodeFrame(sphinx.Geometry{}, &Frame{Cmd: CmdNoOp}); err == nil {
		t.Error("invalid geometry accepted by EncodeFrame")
	}
	if _, err := DecodeFrame(sphinx.Geometry{Hops: 99, PayloadSize: 32}, nil); err == nil {
		t.Error("invalid geometry accepted by DecodeFrame")
	}
}

// TestDecodeFrameDoesNotAlias checks that a decoded body survives reuse of the input buffer,
// which Conn does for every frame.
func TestDecodeFrameDoesNotAlias(t *testing.T) {
	b, err := EncodeFrame(testGeometry, &Frame{Cmd: CmdMessage, Body: []byte("abc")})
	if err != nil {
		t.Fatal(err)
	}
	f, err := DecodeFrame(testGeometry, b)
	if err != nil {
		t.Fatal(err)
	}
	clear(b)
	if string(f.Body) != "abc" {
		t.Fatalf("body changed with the input buffer: %q", f.Body)
	}
}
