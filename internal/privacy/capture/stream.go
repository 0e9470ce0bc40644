package capture

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"time"
)

// TLS record layer facts (RFC 8446 section 5): a 5-byte cleartext header of content type, legacy
// version and length; a TLS 1.3 record's ciphertext is the plaintext, one byte of inner content
// type and a 16-byte AEAD tag (Go adds no padding), and is at most 2^14+256 bytes.
const (
	tlsHeaderSize    = 5
	tlsMaxCiphertext = 1<<14 + 256
	tls13Overhead    = 1 + 16
	tlsAppData       = 23
	// tlsFullRecord is the wire size of a full application-data record as crypto/tls writes
	// them once a connection is warm: 2^14 bytes of plaintext (Go does not pad).
	tlsFullRecord = tlsHeaderSize + 1<<14 + tls13Overhead
)

// BurstGap is the longest pause between two TLS records of one direction that still counts them
// as one frame. One frame is one Write of the wire layer, which crypto/tls cuts into records and
// hands to the kernel back to back (microseconds apart); separate frames of a link at the
// default rates are tens of milliseconds apart and more.
const BurstGap = 2 * time.Millisecond

// Frame is what an observer of one link sees of one wire frame: a burst of TCP segments in one
// direction (gaps of at most BurstGap), when it began and how many payload bytes it carried. One
// frame is one Write of the wire layer, which crypto/tls cuts into records.
type Frame struct {
	At         time.Time
	FromClient bool
	// Wire is the TCP payload bytes of the burst, from the IP headers (always known).
	Wire int
	// Size is the sum of the plaintext lengths of the burst's TLS application-data records
	// (record length minus the TLS 1.3 overhead): exactly the bytes the wire layer wrote. It is
	// meaningful only when Parsed.
	Size int
	// Parsed says every record header of the burst was read, or inferred: a segment whose
	// later record headers lie past the snap length, followed on the stream by a segment that
	// starts with a record header, held whole records in the bytes not captured; they are
	// counted as full records (2^14 bytes of plaintext) and one shorter last one, as crypto/tls
	// cuts a write (pkg/wire hands each frame's records to the kernel in one write, so a frame is
	// one segment on loopback with only its first header captured). crypto/tls sends small
	// records at the start of a connection (its dynamic record sizing) and the kernel may put
	// several in one segment; such bursts are not Parsed.
	Parsed bool
	// Handshake says the burst held TLS records other than application data.
	Handshake bool
	// Records counts the burst's TLS records whose header was read.
	Records int
}

// Conn is one TCP connection as seen from outside.
type Conn struct {
	// Client dialled Server: known from the SYN when the capture saw it, else from Ports (the
	// end that listens on one of them is the server), else the lower port is taken as the server.
	Client, Server netip.AddrPort
	// SawSYN says the connection's start was captured, so the handshake is in Frames' time range.
	SawSYN bool
	// Start and End are the times of the first and last segment captured.
	Start, End time.Time
	// Frames are the application-data frames of both directions in time order.
	Frames []Frame
	// Lost counts payload bytes that could not be read as TLS records: a record header that the
	// snap length cut off, a gap in the capture, or bytes before the first recognisable header.
	Lost int64
	// Segments counts payload-carrying TCP segments of both directions.
	Segments int
}

// Analyze reads a classic pcap file and returns every TCP connection in it whose server listens
// on one of ports (all connections when ports is empty), sorted by start time.
func Analyze(r io.Reader, ports []uint16) ([]Conn, error) {
	p, err := newPCAPReader(r)
	if err != nil {
		return nil, err
	}
	want := map[uint16]bool{}
	for _, port := range ports {
		want[port] = true
	}
	type key struct{ a, b netip.AddrPort } // a < b
	conns := map[key]*connState{}
	var order []*connState
	for {
		rec, err := p.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		s, err := decodeSegment(p.linkType, rec)
		if errors.Is(err, errSkip) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(want) > 0 && !want[s.src.Port()] && !want[s.dst.Port()] {
			continue
		}
		k := key{s.src, s.dst}
		if k.b.Compare(k.a) < 0 {
			k.a, k.b = k.b, k.a
		}
		c := conns[k]
		if c == nil || (s.flags&flagSYN != 0 && s.flags&flagACK == 0 && c.finished()) {
			// A new connection, or a port pair reused after the old one ended.
			c = newConnState(s, want)
			conns[k] = c
			order = append(order, c)
		}
		c.add(s)
	}
	out := make([]Conn, 0, len(order))
	for _, c := range order {
		out = append(out, c.result())
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out, nil
}

type connState struct {
	conn     Conn
	dirs     [2]direction // 0: from client, 1: from server
	fins     int
	finished func() bool
}

func newConnState(s segment, want map[uint16]bool) *connState {
	c := &connState{}
	client, server := s.src, s.dst
	switch {
	case s.flags&flagSYN != 0 && s.flags&flagACK == 0:
		c.conn.SawSYN = true
	case s.flags&flagSYN != 0: // a SYN-ACK comes from the server
		client, server = s.dst, s.src
	case want[s.src.Port()] && !want[s.dst.Port()]:
		client, server = s.dst, s.src
	case want[s.dst.Port()] && !want[s.src.Port()]:
	case s.src.Port() < s.dst.Port():
		client, server = s.dst, s.src
	}
	c.conn.Client, c.conn.Server = client, server
	c.conn.Start = s.at
	c.finished = func() bool { return c.fins >= 2 }
	return c
}

func (c *connState) add(s segment) {
	c.conn.End = s.at
	d := 0
	if s.src != c.conn.Client {
		d = 1
	}
	dir := &c.dirs[d]
	if s.flags&flagRST != 0 {
		c.fins = 2
	}
	if s.flags&flagFIN != 0 {
		c.fins++
	}
	if s.flags&flagSYN != 0 {
		// The stream starts one after the SYN's sequence number (which counts as one byte).
		dir.start(s.seq + 1)
		return
	}
	if s.length == 0 {
		return
	}
	c.conn.Segments++
	dir.segment(s)
}

func (c *connState) result() Conn {
	conn := c.conn
	var frames []Frame
	for d := range c.dirs {
		dir := &c.dirs[d]
		conn.Lost += dir.lost
		var cur *Frame
		var last time.Time
		for _, sg := range dir.segs {
			if cur == nil || sg.at.Sub(last) > BurstGap {
				frames = append(frames, Frame{At: sg.at, FromClient: d == 0, Parsed: true})
				cur = &frames[len(frames)-1]
			}
			last = sg.at
			cur.Wire += sg.length
			cur.Size += sg.plain
			cur.Records += sg.records
			cur.Parsed = cur.Parsed && !sg.lost
			cur.Handshake = cur.Handshake || sg.handshake
		}
	}
	sort.SliceStable(frames, func(i, j int) bool { return frames[i].At.Before(frames[j].At) })
	conn.Frames = frames
	return conn
}

// direction follows one direction's byte stream by sequence number, relative to a base, and
// reads the TLS record headers at the offsets where records begin.
type direction struct {
	based  bool
	base   uint32
	high   int64 // end of the stream seen so far (relative)
	synced bool
	next   int64 // relative offset of the next record header
	hdr    []byte
	lost   int64
	segs   []segInfo
	// unseen is the span [unseenFrom, unseenTo) of the last segment (index unseenSeg) after
	// a record boundary, cut off by the snap length; unseenTo is 0 when there is none.
	unseenFrom, unseenTo int64
	unseenSeg            int
	unseenLostBefore     bool
}

// segInfo is what one payload segment showed: its length, and the records whose header it held.
type segInfo struct {
	at        time.Time
	length    int
	plain     int
	records   int
	handshake bool
	lost      bool
}

func (d *direction) start(isn uint32) {
	d.based, d.base, d.high = true, isn, 0
	d.synced, d.next = true, 0
}

// rel turns a sequence number into an offset from the base: the offset nearest to the highest
// seen, so that streams longer than 4 GiB keep growing offsets.
func (d *direction) rel(seq uint32) int64 {
	return d.high + int64(int32(seq-d.base-uint32(d.high)))
}

func (d *direction) segment(s segment) {
	if !d.based {
		// Capture began mid-stream: offsets count from this segment, and records are read once
		// a segment starts with a plausible record header.
		d.based, d.base = true, s.seq
	}
	from := d.rel(s.seq)
	to := from + int64(s.length)
	if to <= d.high {
		return // a retransmission of bytes already seen
	}
	d.segs = append(d.segs, segInfo{at: s.at, length: s.length})
	info := &d.segs[len(d.segs)-1]
	defer func() { info.lost = info.lost || !d.synced }()
	if from > d.high {
		// Bytes the capture never saw: the record structure is lost until resynchronised.
		d.lost += from - d.high
		d.synced, d.hdr = false, nil
		info.lost = true
	}
	if from < d.high {
		// A partial retransmission: keep only the new bytes.
		cut := int(d.high - from)
		s.payload = s.payload[min(cut, len(s.payload)):]
		from = d.high
		s.length = int(to - from)
	}
	d.high = to
	if d.unseenTo != 0 {
		if !d.synced && from == d.unseenTo && plausibleHeader(s.payload) {
			// The stream goes on with a record header right after the bytes not captured:
			// they were whole records. Count them as crypto/tls writes them: full records
			// and one shorter last one.
			r := d.unseenTo - d.unseenFrom
			k := (r + tlsFullRecord - 1) / tlsFullRecord
			prev := &d.segs[d.unseenSeg]
			prev.records += int(k)
			prev.plain += int(r - k*(tlsHeaderSize+tls13Overhead))
			prev.lost = d.unseenLostBefore
			d.lost -= r
		}
		d.unseenTo = 0
	}
	if !d.synced {
		if !plausibleHeader(s.payload) {
			d.lost += int64(s.length)
			return
		}
		d.synced, d.next, d.hdr = true, from, nil
	}
	for {
		pos := d.next + int64(len(d.hdr)) // the next header byte to read
		if pos >= to {
			return
		}
		off := int(pos - from)
		if off < 0 || off >= len(s.payload) {
			// The header lies in bytes the snap length cut off (or, impossible when synced,
			// before this segment). Lost, unless the next segment shows they were whole
			// records (above).
			if off >= 0 && len(d.hdr) == 0 {
				d.unseenFrom, d.unseenTo, d.unseenSeg, d.unseenLostBefore = pos, to, len(d.segs)-1, info.lost
			}
			d.lost += to - max(pos, from)
			d.synced, d.hdr = false, nil
			return
		}
		take := min(tlsHeaderSize-len(d.hdr), len(s.payload)-off)
		d.hdr = append(d.hdr, s.payload[off:off+take]...)
		if len(d.hdr) < tlsHeaderSize {
			if off+take < s.length {
				d.lost += to - pos
				d.synced, d.hdr = false, nil
				return
			}
			return // the header continues in the next segment
		}
		typ, n := d.hdr[0], int(d.hdr[3])<<8|int(d.hdr[4])
		d.hdr = nil
		if !validHeaderFields(typ, n) {
			d.lost += to - d.next
			d.synced = false
			return
		}
		info.records++
		if typ == tlsAppData {
			info.plain += max(n-tls13Overhead, 0)
		} else {
			info.handshake = true
		}
		d.next += tlsHeaderSize + int64(n)
	}
}

func validHeaderFields(typ byte, n int) bool {
	return typ >= 20 && typ <= 23 && n > 0 && n <= tlsMaxCiphertext
}

func plausibleHeader(b []byte) bool {
	if len(b) < tlsHeaderSize {
		return false
	}
	n := int(b[3])<<8 | int(b[4])
	return validHeaderFields(b[0], n) && b[1] == 3 && b[2] <= 4
}

// String describes a connection in one line, for logs.
func (c Conn) String() string {
	return fmt.Sprintf("%v->%v frames=%d lost=%d", c.Client, c.Server, len(c.Frames), c.Lost)
}
