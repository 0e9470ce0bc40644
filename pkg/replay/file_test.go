package replay

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json (only on purpose: it is the file format's regression record)")

const vectorsPath = "testdata/vectors.json"

// vector is one filter file and what Open must make of it.
type vector struct {
	Name string `json:"name"`
	// Epoch is the epoch Open is called with.
	Epoch uint64 `json:"epoch"`
	// Expect is "ok", "corrupt" (ErrCorrupt) or "wrong-epoch" (ErrWrongEpoch).
	Expect string `json:"expect"`
	// Error is a substring of the error message, for failures.
	Error string `json:"error,omitempty"`
	// Records and Truncated are the tags loaded and the torn-tail bytes cut, for "ok".
	Records   int    `json:"records"`
	Truncated int    `json:"truncated"`
	File      string `json:"file"` // hex
}

// The Config the vectors are opened with; Open takes the shape from the file anyway.
var vectorConfig = Config{Capacity: 16, FalsePositiveRate: 0.01}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	b, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatalf("%s: %v", vectorsPath, err)
	}
	return vs
}

func (v *vector) bytes(t testing.TB) []byte {
	b, err := hex.DecodeString(v.File)
	if err != nil {
		t.Fatalf("vector %s: %v", v.Name, err)
	}
	return b
}

// makeVectors builds the vectors from the encoder, with a fixed key and fixed tags.
func makeVectors() []vector {
	const epoch = 7
	nbits, hashes, err := Size(vectorConfig.Capacity, vectorConfig.FalsePositiveRate)
	if err != nil {
		panic(err)
	}
	h := header{hashes: hashes, epoch: epoch, capacity: vectorConfig.Capacity, nbits: nbits}
	keySource(99).Read(h.key[:])
	// The tags of a valid file are fresh in turn, as Add would have found them; with 32 tags
	// in a filter sized for 16 some random tags are false positives, which Add never writes.
	next := tagSource(99)
	bl, hm := newBloom(h.nbits, h.hashes), newKeyedHash(&h.key)
	var tags []Tag
	var idx [MaxHashes]uint64
	for uint64(len(tags)) < 2*vectorConfig.Capacity {
		tag := next()
		if ix := bl.indexes(hm.digest(&tag), &idx); !bl.has(ix) {
			bl.set(ix)
			tags = append(tags, tag)
		}
	}
	file := func(h header, tags ...Tag) []byte {
		b := h.appendTo(nil)
		for i := range tags {
			b = appendRecord(b, &tags[i])
		}
		return b
	}
	// patch changes header bytes and recomputes the header checksum, so that the check
	// under test is the one that fails.
	patch := func(h header, off int, val []byte) []byte {
		b := h.appendTo(nil)
		copy(b[off:], val)
		binary.BigEndian.PutUint32(b[72:], crc32.Checksum(b[:72], castagnoli))
		return b
	}
	u32 := func(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
	u64 := func(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	with := func(h header, f func(*header)) header { f(&h); return h }
	three := file(h, tags[:3]...)
	badRecord := appendRecord(nil, &tags[3])
	badRecord[5] ^= 0x10

	type c struct {
		name, expect, err  string
		records, truncated int
		b                  []byte
	}
	cases := []c{
		{"empty", "ok", "", 0, 0, file(h)},
		{"three records", "ok", "", 3, 0, three},
		{"full", "ok", "", 32, 0, file(h, tags...)},
		{"torn partial record", "ok", "", 3, 20, cat(three, appendRecord(nil, &tags[3])[:20])},
		{"torn bad checksum", "ok", "", 3, recordSize, cat(three, badRecord)},
		{"torn zeros", "ok", "", 3, 2 * recordSize, cat(three, make([]byte, 2*recordSize))},
		{"torn valid after invalid", "ok", "", 3, 2*recordSize + 7,
			cat(three, badRecord, appendRecord(nil, &tags[4]), make([]byte, 7))},
		{"short file", "corrupt", "shorter than", 0, 0, file(h)[:40]},
		{"no file", "corrupt", "shorter than", 0, 0, []byte{}},
		{"bad magic", "corrupt", "bad magic", 0, 0, patch(h, 0, []byte("PXREPLAZ"))},
		{"version 2", "corrupt", "unsupported version 2", 0, 0, patch(h, 8, []byte{0, 2})},
		{"version 0", "corrupt", "unsupported version 0", 0, 0, patch(h, 8, []byte{0, 0})},
		{"header checksum", "corrupt", "header checksum", 0, 0, func() []byte {
			b := file(h, tags[:1]...)
			b[45] ^= 1 // a key bit
			return b
		}()},
		{"record size", "corrupt", "record size 40", 0, 0, patch(h, 10, []byte{0, 40})},
		{"no hashes", "corrupt", "0 hash functions", 0, 0, patch(h, 12, u32(0))},
		{"too many hashes", "corrupt", "33 hash functions", 0, 0, patch(h, 12, u32(MaxHashes+1))},
		{"zero capacity", "corrupt", "capacity 0", 0, 0, patch(h, 24, u64(0))},
		{"capacity over limit", "corrupt", "capacity 67108865", 0, 0, patch(h, 24, u64(MaxCapacity+1))},
		{"huge capacity", "corrupt", "capacity 18446744073709551615", 0, 0, patch(h, 24, u64(1<<64-1))},
		{"bits not a multiple of 64", "corrupt", "multiple of 64", 0, 0, patch(h, 32, u64(nbits+1))},
		{"bits over limit", "corrupt", "multiple of 64", 0, 0, patch(with(h, func(h *header) { h.capacity = MaxCapacity }), 32, u64(MaxBits+64))},
		{"bits under capacity", "corrupt", "bits per tag", 0, 0, patch(with(h, func(h *header) { h.capacity = 1000 }), 32, u64(960))},
		{"bits per tag over limit", "corrupt", "bits per tag", 0, 0, patch(h, 32, u64(68*16))},
		{"too many records", "corrupt", "33 records", 0, 0, cat(file(h, tags...), appendRecord(nil, &tags[0]))},
		{"repeated tag", "corrupt", "repeats an earlier tag", 0, 0, file(h, tags[0], tags[1], tags[0])},
		{"repeated tag in torn window", "corrupt", "repeats an earlier tag", 0, 0, cat(file(h, tags[0], tags[0]), badRecord)},
		{"wrong epoch", "wrong-epoch", "epoch 8, not 7", 0, 0, file(with(h, func(h *header) { h.epoch = 8 }), tags[:2]...)},
	}
	var vs []vector
	for _, c := range cases {
		vs = append(vs, vector{Name: c.name, Epoch: epoch, Expect: c.expect, Error: c.err,
			Records: c.records, Truncated: c.truncated, File: hex.EncodeToString(c.b)})
	}
	return vs
}

func TestVectorsUpToDate(t *testing.T) {
	want, err := json.MarshalIndent(makeVectors(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, '\n')
	if *update {
		if err := os.WriteFile(vectorsPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from what the encoder makes; the file format changed? "+
			"(regenerate on purpose with go test -run TestVectorsUpToDate -update)", vectorsPath)
	}
}

func TestVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			b := v.bytes(t)
			path := filepath.Join(t.TempDir(), "replay")
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := vectorConfig
			cfg.Epoch = v.Epoch
			f, err := Open(path, cfg)
			switch v.Expect {
			case "ok":
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				defer f.Remove()
				st := f.Stats()
				if st.Count != uint64(v.Records) || st.TruncatedBytes != int64(v.Truncated) {
					t.Fatalf("loaded %d tags, truncated %d bytes; want %d, %d", st.Count, st.TruncatedBytes, v.Records, v.Truncated)
				}
				for i := range v.Records {
					off := headerSize + i*recordSize
					tag, ok := parseRecord(b[off : off+recordSize])
					if !ok {
						t.Fatalf("record %d invalid", i)
					}
					mustAdd(t, f, tag, false)
				}
			case "corrupt", "wrong-epoch":
				if f != nil {
					f.Close()
				}
				want := ErrCorrupt
				if v.Expect == "wrong-epoch" {
					want = ErrWrongEpoch
				}
				if !errors.Is(err, want) || !strings.Contains(err.Error(), v.Error) {
					t.Fatalf("Open: %v; want %v containing %q", err, want, v.Error)
				}
				after, rerr := os.ReadFile(path)
				if rerr != nil || !bytes.Equal(after, b) {
					t.Fatalf("refused file was modified (%v)", rerr)
				}
			default:
				t.Fatalf("unknown expect %q", v.Expect)
			}
		})
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	h := header{hashes: 20, epoch: 1 << 40, capacity: 6_000_000, nbits: 172_560_000}
	keySource(3).Read(h.key[:])
	b := h.appendTo([]byte("prefix"))
	if len(b) != len("prefix")+headerSize {
		t.Fatalf("header is %d bytes, want %d", len(b)-len("prefix"), headerSize)
	}
	got, err := parseHeader(b[len("prefix"):])
	if err != nil {
		t.Fatal(err)
	}
	if got != h {
		t.Fatalf("parsed %+v, want %+v", got, h)
	}
}

// FuzzDecodeFile checks that the file decoder never panics, refuses with ErrCorrupt, and
// that whatever it accepts re-encodes to the identical bytes.
func FuzzDecodeFile(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(v.bytes(f))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var hdr header
		var tags []Tag
		seen := make(map[Tag]bool)
		h, valid, err := decodeFile(bytes.NewReader(data), int64(len(data)), func(h header) (func(Tag) bool, error) {
			hdr = h
			return func(tag Tag) bool {
				if seen[tag] {
					return false
				}
				seen[tag] = true
				tags = append(tags, tag)
				return true
			}, nil
		})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if h != hdr {
			t.Fatal("returned header differs from the one passed to start")
		}
		if valid < headerSize || valid > int64(len(data)) || int64(len(data))-valid > maxTornBytes {
			t.Fatalf("valid prefix %d of %d bytes", valid, len(data))
		}
		if uint64(len(tags)) > h.maxRecords() {
			t.Fatalf("%d records accepted, limit %d", len(tags), h.maxRecords())
		}
		re := h.appendTo(nil)
		for i := range tags {
			re = appendRecord(re, &tags[i])
		}
		if !bytes.Equal(re, data[:valid]) {
			t.Fatal("accepted file does not re-encode to the same bytes")
		}
	})
}

func TestFuzzSeedsNotEmpty(t *testing.T) {
	vs := loadVectors(t)
	ok, bad := 0, 0
	for _, v := range vs {
		if v.Expect == "ok" {
			ok++
		} else {
			bad++
		}
	}
	if ok < 3 || bad < 10 {
		t.Fatalf("%s holds %d valid and %d invalid files; the fuzz seeds need both", vectorsPath, ok, bad)
	}
}
