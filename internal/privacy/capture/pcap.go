package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"
)

// Link types of the classic pcap format that a capture on Linux's loopback produces: tcpdump -i lo
// writes Ethernet headers with zero addresses, -i any writes the "cooked" SLL or SLL2 headers.
const (
	linkEthernet = 1
	linkRaw      = 101
	linkSLL      = 113
	linkSLL2     = 276
)

// Limits on the bytes of a capture file, which this package reads as outside input.
const (
	// MaxSnaplen bounds one record's captured length: libpcap's own maximum (262144).
	MaxSnaplen = 262144
	// pcapHeaderSize and recordHeaderSize are the classic format's fixed headers.
	pcapHeaderSize   = 24
	recordHeaderSize = 16
)

// ErrFormat marks a capture file that is not a classic pcap file this package reads.
var ErrFormat = errors.New("capture: bad pcap file")

// pcapReader reads the classic libpcap file format (not pcapng): a 24-byte file header whose
// magic number gives the byte order and the time unit, then records of a 16-byte header and the
// captured bytes.
type pcapReader struct {
	r        io.Reader
	order    binary.ByteOrder
	nanos    bool
	snaplen  int
	linkType uint32
	buf      []byte
}

func newPCAPReader(r io.Reader) (*pcapReader, error) {
	var h [pcapHeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("%w: file header: %w", ErrFormat, err)
	}
	p := &pcapReader{r: r}
	switch {
	case binary.LittleEndian.Uint32(h[0:]) == 0xa1b2c3d4:
		p.order = binary.LittleEndian
	case binary.BigEndian.Uint32(h[0:]) == 0xa1b2c3d4:
		p.order = binary.BigEndian
	case binary.LittleEndian.Uint32(h[0:]) == 0xa1b23c4d:
		p.order, p.nanos = binary.LittleEndian, true
	case binary.BigEndian.Uint32(h[0:]) == 0xa1b23c4d:
		p.order, p.nanos = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("%w: magic %x is not classic pcap (pcapng is not read)", ErrFormat, h[0:4])
	}
	if major := p.order.Uint16(h[4:]); major != 2 {
		return nil, fmt.Errorf("%w: version %d", ErrFormat, major)
	}
	snap := p.order.Uint32(h[16:])
	if snap == 0 || snap > MaxSnaplen {
		// Writers put 0 or 65535 or 262144 here; only the per-record length matters below.
		snap = MaxSnaplen
	}
	p.snaplen = int(snap)
	// The upper bits of the link-type field carry FCS flags (pcap-savefile(5)).
	p.linkType = p.order.Uint32(h[20:]) & 0x0fffffff
	switch p.linkType {
	case linkEthernet, linkRaw, linkSLL, linkSLL2:
	default:
		return nil, fmt.Errorf("%w: link type %d (want Ethernet, raw IP or Linux SLL/SLL2)", ErrFormat, p.linkType)
	}
	return p, nil
}

// record is one captured packet: its time, the bytes captured and the length it had on the wire.
type record struct {
	at      time.Time
	data    []byte // valid until the next call to next
	origLen int
}

// next returns the next record, or io.EOF at a clean end of file.
func (p *pcapReader) next() (record, error) {
	var h [recordHeaderSize]byte
	if _, err := io.ReadFull(p.r, h[:]); err != nil {
		if err == io.EOF {
			return record{}, io.EOF
		}
		return record{}, fmt.Errorf("%w: record header: %w", ErrFormat, err)
	}
	sec, frac := p.order.Uint32(h[0:]), p.order.Uint32(h[4:])
	incl, orig := p.order.Uint32(h[8:]), p.order.Uint32(h[12:])
	if incl > uint32(p.snaplen) || incl > MaxSnaplen {
		return record{}, fmt.Errorf("%w: record of %d captured bytes (limit %d)", ErrFormat, incl, p.snaplen)
	}
	if orig < incl {
		return record{}, fmt.Errorf("%w: record of %d captured bytes but %d on the wire", ErrFormat, incl, orig)
	}
	if p.nanos && frac >= 1e9 || !p.nanos && frac >= 1e6 {
		return record{}, fmt.Errorf("%w: record time fraction %d out of range", ErrFormat, frac)
	}
	if cap(p.buf) < int(incl) {
		p.buf = make([]byte, incl)
	}
	p.buf = p.buf[:incl]
	if _, err := io.ReadFull(p.r, p.buf); err != nil {
		return record{}, fmt.Errorf("%w: record body: %w", ErrFormat, err)
	}
	ns := int64(frac)
	if !p.nanos {
		ns *= 1000
	}
	return record{at: time.Unix(int64(sec), ns), data: p.buf, origLen: int(orig)}, nil
}

// TCP flags this package looks at.
const (
	flagFIN = 0x01
	flagSYN = 0x02
	flagRST = 0x04
	flagACK = 0x10
)

// segment is one TCP segment as an outside observer sees it: addresses, sequence number, flags,
// the payload length the IP header declares (even when the capture kept fewer bytes) and the
// payload bytes that were captured.
type segment struct {
	at       time.Time
	src, dst netip.AddrPort
	seq      uint32
	flags    uint8
	length   int    // payload length on the wire
	payload  []byte // captured prefix of the payload (len <= length)
}

// errSkip marks a record that is not an IPv4 or IPv6 TCP segment (ARP, UDP, ...): skipped, not
// an error of the file.
var errSkip = errors.New("capture: not a tcp segment")

// decodeSegment takes the link, IP and TCP headers off a record. A truncated header is an
// error; a truncated payload is normal (a small snap length keeps only the first bytes).
func decodeSegment(linkType uint32, rec record) (segment, error) {
	b := rec.data
	var ethertype uint16
	switch linkType {
	case linkEthernet:
		if len(b) < 14 {
			return segment{}, fmt.Errorf("%w: ethernet header truncated", ErrFormat)
		}
		ethertype, b = binary.BigEndian.Uint16(b[12:]), b[14:]
	case linkSLL:
		if len(b) < 16 {
			return segment{}, fmt.Errorf("%w: sll header truncated", ErrFormat)
		}
		ethertype, b = binary.BigEndian.Uint16(b[14:]), b[16:]
	case linkSLL2:
		if len(b) < 20 {
			return segment{}, fmt.Errorf("%w: sll2 header truncated", ErrFormat)
		}
		ethertype, b = binary.BigEndian.Uint16(b[0:]), b[20:]
	case linkRaw:
		if len(b) < 1 {
			return segment{}, fmt.Errorf("%w: empty raw packet", ErrFormat)
		}
		switch b[0] >> 4 {
		case 4:
			ethertype = 0x0800
		case 6:
			ethertype = 0x86dd
		}
	}
	// Bytes of the IP packet that were on the wire, from the record's original length.
	wire := rec.origLen - (len(rec.data) - len(b))
	var s segment
	s.at = rec.at
	var ipPayloadLen int
	switch ethertype {
	case 0x0800:
		if len(b) < 20 || b[0]>>4 != 4 {
			return segment{}, fmt.Errorf("%w: ipv4 header truncated", ErrFormat)
		}
		ihl := int(b[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(b[2:]))
		if ihl < 20 || len(b) < ihl || total < ihl || total > wire {
			return segment{}, fmt.Errorf("%w: ipv4 header lengths (ihl %d, total %d, wire %d)", ErrFormat, ihl, total, wire)
		}
		if b[9] != 6 {
			return segment{}, errSkip
		}
		if frag := binary.BigEndian.Uint16(b[6:]) & 0x3fff; frag != 0 {
			// Loopback TCP is never fragmented; a fragment cannot be read as a segment.
			return segment{}, errSkip
		}
		src, _ := netip.AddrFromSlice(b[12:16])
		dst, _ := netip.AddrFromSlice(b[16:20])
		s.src, s.dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
		ipPayloadLen = total - ihl
		b = b[ihl:]
	case 0x86dd:
		if len(b) < 40 || b[0]>>4 != 6 {
			return segment{}, fmt.Errorf("%w: ipv6 header truncated", ErrFormat)
		}
		if b[6] != 6 {
			// Extension headers do not occur on loopback TCP; such a packet is skipped.
			return segment{}, errSkip
		}
		ipPayloadLen = int(binary.BigEndian.Uint16(b[4:]))
		if 40+ipPayloadLen > wire {
			return segment{}, fmt.Errorf("%w: ipv6 payload length %d beyond the %d bytes on the wire", ErrFormat, ipPayloadLen, wire)
		}
		src, _ := netip.AddrFromSlice(b[8:24])
		dst, _ := netip.AddrFromSlice(b[24:40])
		s.src, s.dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
		b = b[40:]
	default:
		return segment{}, errSkip
	}
	if len(b) < 20 {
		return segment{}, fmt.Errorf("%w: tcp header truncated", ErrFormat)
	}
	off := int(b[12]>>4) * 4
	if off < 20 || off > ipPayloadLen || len(b) < off {
		return segment{}, fmt.Errorf("%w: tcp data offset %d", ErrFormat, off)
	}
	s.src = netip.AddrPortFrom(s.src.Addr(), binary.BigEndian.Uint16(b[0:]))
	s.dst = netip.AddrPortFrom(s.dst.Addr(), binary.BigEndian.Uint16(b[2:]))
	s.seq = binary.BigEndian.Uint32(b[4:])
	s.flags = b[13]
	s.length = ipPayloadLen - off
	s.payload = b[off:]
	if len(s.payload) > s.length {
		// Ethernet padding after a short IP packet is not payload.
		s.payload = s.payload[:s.length]
	}
	return s, nil
}
