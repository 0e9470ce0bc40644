package replay

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// File format, version 1 (see the package documentation for the reasoning). All integers are
// big-endian.
//
//	header (76 bytes):
//	  0   8  magic "PXREPLAY"
//	  8   2  version = 1
//	 10   2  record size = 36
//	 12   4  k, number of hash functions, 1..MaxHashes
//	 16   8  epoch
//	 24   8  capacity n, 1..MaxCapacity
//	 32   8  bits m, a multiple of 64, n <= m <= min(64*n, MaxBits)
//	 40  32  HMAC-SHA256 key of the filter
//	 72   4  CRC-32C of bytes 0..71
//	records (36 bytes each), one per fresh tag, in the order they were added:
//	  0  32  tag
//	 32   4  CRC-32C of the tag
const (
	headerSize = 76
	recordSize = TagSize + 4
	version    = 1

	// maxTornRecords bounds what a crash can leave half-written: Filter writes at most this
	// many records between two fsyncs, so only the last maxTornBytes of a file can hold
	// records that were never made durable. An invalid record further from the end is
	// corruption of durable data, not a torn write.
	maxTornRecords = 1820
	maxTornBytes   = maxTornRecords * recordSize // 65,520 bytes
)

var magic = [8]byte{'P', 'X', 'R', 'E', 'P', 'L', 'A', 'Y'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header is the decoded file header.
type header struct {
	hashes   uint32
	epoch    uint64
	capacity uint64
	nbits    uint64
	key      [KeySize]byte
}

func (h *header) appendTo(dst []byte) []byte {
	start := len(dst)
	dst = append(dst, magic[:]...)
	dst = binary.BigEndian.AppendUint16(dst, version)
	dst = binary.BigEndian.AppendUint16(dst, recordSize)
	dst = binary.BigEndian.AppendUint32(dst, h.hashes)
	dst = binary.BigEndian.AppendUint64(dst, h.epoch)
	dst = binary.BigEndian.AppendUint64(dst, h.capacity)
	dst = binary.BigEndian.AppendUint64(dst, h.nbits)
	dst = append(dst, h.key[:]...)
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// maxRecords is the most records a file with this header may hold.
func (h *header) maxRecords() uint64 { return OverfillFactor * h.capacity }

// parseHeader decodes and checks a header. b must be exactly headerSize bytes.
func parseHeader(b []byte) (header, error) {
	var h header
	if len(b) != headerSize {
		return h, fmt.Errorf("%w: header is %d bytes, want %d", ErrCorrupt, len(b), headerSize)
	}
	if !bytes.Equal(b[0:8], magic[:]) {
		return h, fmt.Errorf("%w: bad magic %q, not a replay filter file", ErrCorrupt, b[0:8])
	}
	if v := binary.BigEndian.Uint16(b[8:10]); v != version {
		return h, fmt.Errorf("%w: unsupported version %d, want %d", ErrCorrupt, v, version)
	}
	if got, want := binary.BigEndian.Uint32(b[72:76]), crc32.Checksum(b[:72], castagnoli); got != want {
		return h, fmt.Errorf("%w: header checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	if rs := binary.BigEndian.Uint16(b[10:12]); rs != recordSize {
		return h, fmt.Errorf("%w: record size %d, want %d", ErrCorrupt, rs, recordSize)
	}
	h.hashes = binary.BigEndian.Uint32(b[12:16])
	h.epoch = binary.BigEndian.Uint64(b[16:24])
	h.capacity = binary.BigEndian.Uint64(b[24:32])
	h.nbits = binary.BigEndian.Uint64(b[32:40])
	copy(h.key[:], b[40:72])
	switch {
	case h.hashes < 1 || h.hashes > MaxHashes:
		return h, fmt.Errorf("%w: %d hash functions, want 1 to %d", ErrCorrupt, h.hashes, MaxHashes)
	case h.capacity < 1 || h.capacity > MaxCapacity:
		return h, fmt.Errorf("%w: capacity %d, want 1 to %d", ErrCorrupt, h.capacity, MaxCapacity)
	case h.nbits%64 != 0 || h.nbits < 64 || h.nbits > MaxBits:
		return h, fmt.Errorf("%w: %d bits, want a multiple of 64 from 64 to %d", ErrCorrupt, h.nbits, uint64(MaxBits))
	case h.nbits < h.capacity || h.nbits/h.capacity > maxBitsPerTag:
		return h, fmt.Errorf("%w: %d bits for capacity %d, want 1 to %d bits per tag",
			ErrCorrupt, h.nbits, h.capacity, maxBitsPerTag)
	}
	return h, nil
}

func appendRecord(dst []byte, tag *Tag) []byte {
	dst = append(dst, tag[:]...)
	// The checksum reads the copy in dst: passing tag itself to crc32 would move it to the heap.
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[len(dst)-TagSize:], castagnoli))
}

// parseRecord decodes one record; ok is false if its checksum does not match.
func parseRecord(b []byte) (tag Tag, ok bool) {
	copy(tag[:], b[:TagSize])
	return tag, binary.BigEndian.Uint32(b[TagSize:recordSize]) == crc32.Checksum(b[:TagSize], castagnoli)
}

// decodeFile reads and checks a whole filter file of size bytes. After the header is
// checked, start is called with it and returns the function that takes each record's tag in
// order; that function returns false if the tag was already present, which is corruption
// (a file holds each tag once). decodeFile returns the header and the length of the valid
// prefix; any bytes after it are a torn tail of at most maxTornBytes that the caller
// truncates.
func decodeFile(r io.ReaderAt, size int64, start func(header) (func(Tag) bool, error)) (header, int64, error) {
	var hb [headerSize]byte
	if size < headerSize {
		return header{}, 0, fmt.Errorf("%w: file is %d bytes, shorter than the %d-byte header", ErrCorrupt, size, headerSize)
	}
	if _, err := r.ReadAt(hb[:], 0); err != nil {
		return header{}, 0, fmt.Errorf("replay: reading header: %w", err)
	}
	h, err := parseHeader(hb[:])
	if err != nil {
		return h, 0, err
	}
	body := size - headerSize
	if n := uint64(body / recordSize); n > h.maxRecords() {
		return h, 0, fmt.Errorf("%w: %d records, more than %d (%d times capacity %d)",
			ErrCorrupt, n, h.maxRecords(), OverfillFactor, h.capacity)
	}
	insert, err := start(h)
	if err != nil {
		return h, 0, err
	}

	br := bufio.NewReaderSize(io.NewSectionReader(r, headerSize, body), 64<<10)
	var rec [recordSize]byte
	valid := int64(headerSize)
	for off := int64(headerSize); size-off >= recordSize; off += recordSize {
		if _, err := io.ReadFull(br, rec[:]); err != nil {
			return h, 0, fmt.Errorf("replay: reading record at offset %d: %w", off, err)
		}
		tag, ok := parseRecord(rec[:])
		if !ok {
			break
		}
		if !insert(tag) {
			return h, 0, fmt.Errorf("%w: record at offset %d repeats an earlier tag "+
				"(a filter only writes tags it did not hold)", ErrCorrupt, off)
		}
		valid = off + recordSize
	}
	if tail := size - valid; tail > maxTornBytes {
		return h, 0, fmt.Errorf("%w: invalid record at offset %d, %d bytes before the end of the file; "+
			"a crash leaves at most the last %d bytes unsynced", ErrCorrupt, valid, tail, maxTornBytes)
	}
	return h, valid, nil
}
