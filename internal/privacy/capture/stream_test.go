package capture

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// seg builds an Ethernet/IPv4/TCP record from 127.0.0.1:sport to 127.0.0.2:dport carrying
// payload, of which only the first keep bytes are captured (keep < 0: all).
func seg(sport, dport uint16, seq uint32, flags byte, payload []byte, keep int) ([]byte, int) {
	ip := make([]byte, 20)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+20+len(payload)))
	ip[9] = 6
	copy(ip[12:], []byte{127, 0, 0, 1})
	copy(ip[16:], []byte{127, 0, 0, 2})
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], seq)
	tcp[12] = 5 << 4
	tcp[13] = flags
	rec := append(append(append(make([]byte, 12), 0x08, 0x00), ip...), tcp...)
	orig := len(rec) + len(payload)
	if keep < 0 || keep > len(payload) {
		keep = len(payload)
	}
	return append(rec, payload[:keep]...), orig
}

// tlsRecord is an application-data record of n ciphertext bytes.
func tlsRec(n int) []byte {
	r := make([]byte, 5+n)
	r[0], r[1], r[2] = 23, 3, 3
	binary.BigEndian.PutUint16(r[3:], uint16(n))
	for i := 5; i < len(r); i++ {
		r[i] = 0xee // not a plausible header byte
	}
	return r
}

type recSpec struct {
	usec int64
	data []byte
	orig int
}

func file(recs []recSpec) []byte {
	var b bytes.Buffer
	h := make([]byte, pcapHeaderSize)
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint32(h[16:], 65535)
	binary.LittleEndian.PutUint32(h[20:], linkEthernet)
	b.Write(h)
	for _, r := range recs {
		rh := make([]byte, recordHeaderSize)
		binary.LittleEndian.PutUint32(rh[0:], uint32(1000+r.usec/1e6))
		binary.LittleEndian.PutUint32(rh[4:], uint32(r.usec%1e6))
		binary.LittleEndian.PutUint32(rh[8:], uint32(len(r.data)))
		binary.LittleEndian.PutUint32(rh[12:], uint32(r.orig))
		b.Write(rh)
		b.Write(r.data)
	}
	return b.Bytes()
}

// TestFollower: record headers split across segments, a retransmission, a snap length that
// cuts a second header off (inferred when the next segment starts with a header, lost when a
// gap follows), and a gap in the capture, each read as an observer can.
func TestFollower(t *testing.T) {
	const isn = 1000
	var recs []recSpec
	at := int64(0)
	add := func(data []byte, orig int) {
		recs = append(recs, recSpec{usec: at, data: data, orig: orig})
	}
	d, o := seg(40000, 443, isn, flagSYN, nil, -1)
	add(d, o)
	seq := uint32(isn + 1)
	send := func(payload []byte, keep int) {
		d, o := seg(40000, 443, seq, flagACK, payload, keep)
		add(d, o)
		seq += uint32(len(payload))
	}
	// Frame 1 at 0 s: one record of 117 bytes (100 plaintext) whose header is split 3 + 2
	// across two segments.
	r1 := tlsRec(117)
	send(r1[:3], -1)
	at += 100
	send(r1[3:], -1)
	// The second segment again (a retransmission): ignored.
	d, o = seg(40000, 443, seq-uint32(len(r1)-3), flagACK, r1[3:], -1)
	add(d, o)
	// Frame 2 at 1 s: two records in one segment, the capture keeping only the first 10
	// bytes, so the second header is not captured; frame 3 starting with a header right after
	// shows the 322 bytes were one whole record (300 bytes of plaintext).
	at = 1_000_000
	two := append(tlsRec(217), tlsRec(317)...)
	send(two, 10)
	// Frame 3 at 2 s: a whole record in a segment of its own: the follower is back in step.
	at = 2_000_000
	send(tlsRec(417), 64)
	// Frame 4 at 3 s: the same cut, but the capture misses the segment after it: its second
	// record's 132 bytes are lost and the burst is not parsed.
	at = 3_000_000
	send(append(tlsRec(117), tlsRec(127)...), 10)
	// A segment the capture missed, then frame 5 at 4 s, readable again.
	seq += 517
	at = 4_000_000
	send(tlsRec(517), 64)

	conns, err := Analyze(bytes.NewReader(file(recs)), []uint16{443})
	if err != nil {
		t.Fatal(err)
	}
	if len(conns) != 1 || !conns[0].SawSYN || conns[0].Server.Port() != 443 {
		t.Fatalf("conns %v", conns)
	}
	got := conns[0].Frames
	want := []Frame{
		{Wire: 122, Size: 100, Parsed: true, Records: 1},
		{Wire: 222 + 322, Size: 200 + 300, Parsed: true, Records: 2},
		{Wire: 422, Size: 400, Parsed: true, Records: 1},
		{Wire: 122 + 132, Size: 100, Parsed: false, Records: 1},
		{Wire: 522, Size: 500, Parsed: false, Records: 1}, // after the gap: bytes lost before it
	}
	if len(got) != len(want) {
		t.Fatalf("%d frames, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if !g.FromClient || g.Wire != w.Wire || g.Size != w.Size || g.Parsed != w.Parsed || g.Records != w.Records {
			t.Errorf("frame %d: got %+v, want %+v", i, g, w)
		}
	}
	if conns[0].Lost != 132+517 {
		t.Errorf("lost %d bytes, want %d", conns[0].Lost, 132+517)
	}
}

// TestFollowerWholeFrames: pkg/wire writes each 17,016-byte frame as one full record and one
// short one in one write, one loopback segment of which the capture keeps Snaplen bytes: the
// frame's size is read from the first header and inferred for the second once the next frame
// starts on the stream; a frame of another size shows as such. The last frame, with nothing
// after it, stays unparsed.
func TestFollowerWholeFrames(t *testing.T) {
	const isn = 5000
	var recs []recSpec
	d, o := seg(40000, 443, isn, flagSYN, nil, -1)
	recs = append(recs, recSpec{usec: 0, data: d, orig: o})
	seq := uint32(isn + 1)
	for i, plain := range []int{632, 632, 700, 632} {
		payload := append(tlsRec(1<<14+tls13Overhead), tlsRec(plain+tls13Overhead)...)
		d, o := seg(40000, 443, seq, flagACK, payload, Snaplen-54)
		recs = append(recs, recSpec{usec: int64(i+1) * 333_000, data: d, orig: o})
		seq += uint32(len(payload))
	}
	conns, err := Analyze(bytes.NewReader(file(recs)), []uint16{443})
	if err != nil {
		t.Fatal(err)
	}
	got := conns[0].Frames
	want := []struct {
		size   int
		parsed bool
	}{{17016, true}, {17016, true}, {1<<14 + 700, true}, {1 << 14, false}}
	if len(got) != len(want) {
		t.Fatalf("%d frames, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].Size != w.size || got[i].Parsed != w.parsed || (w.parsed && got[i].Records != 2) {
			t.Errorf("frame %d: size %d parsed %v records %d, want size %d parsed %v", i, got[i].Size, got[i].Parsed, got[i].Records, w.size, w.parsed)
		}
	}
}
