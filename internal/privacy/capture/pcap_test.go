package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// pcapFile builds a little-endian microsecond pcap file of Ethernet records.
func pcapFile(snaplen uint32, records ...[]byte) []byte {
	var b bytes.Buffer
	h := make([]byte, pcapHeaderSize)
	binary.LittleEndian.PutUint32(h[0:], 0xa1b2c3d4)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], snaplen)
	binary.LittleEndian.PutUint32(h[20:], linkEthernet)
	b.Write(h)
	for i, r := range records {
		rh := make([]byte, recordHeaderSize)
		binary.LittleEndian.PutUint32(rh[0:], uint32(1000+i))
		binary.LittleEndian.PutUint32(rh[8:], uint32(len(r)))
		binary.LittleEndian.PutUint32(rh[12:], uint32(len(r)))
		b.Write(rh)
		b.Write(r)
	}
	return b.Bytes()
}

func TestBadFiles(t *testing.T) {
	good := pcapFile(65535)
	if _, err := Analyze(bytes.NewReader(good), nil); err != nil {
		t.Fatalf("empty capture: %v", err)
	}
	pcapng := append([]byte{0x0a, 0x0d, 0x0d, 0x0a}, good[4:]...)
	bigRecord := pcapFile(65535)
	rh := make([]byte, recordHeaderSize)
	binary.LittleEndian.PutUint32(rh[8:], MaxSnaplen+1)
	binary.LittleEndian.PutUint32(rh[12:], MaxSnaplen+1)
	bigRecord = append(bigRecord, rh...)
	overSnap := pcapFile(100, make([]byte, 101))
	shortIP := pcapFile(65535, append(make([]byte, 12), 0x08, 0x00, 0x45))
	badLink := append([]byte{}, good...)
	binary.LittleEndian.PutUint32(badLink[20:], 228)
	for name, file := range map[string][]byte{
		"truncated header": good[:10],
		"pcapng":           pcapng,
		"over the limit":   bigRecord,
		"over the snaplen": overSnap,
		"truncated body":   pcapFile(65535, make([]byte, 40))[:pcapHeaderSize+recordHeaderSize+20],
		"short ipv4":       shortIP,
		"link type":        badLink,
	} {
		_, err := Analyze(bytes.NewReader(file), nil)
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: got %v, want ErrFormat", name, err)
		}
	}
}

// TestSkipsNonTCP: an ARP frame is not an error of the file, only not a segment.
func TestSkipsNonTCP(t *testing.T) {
	arp := append(make([]byte, 12), 0x08, 0x06, 0, 0)
	conns, err := Analyze(bytes.NewReader(pcapFile(65535, arp)), nil)
	if err != nil || len(conns) != 0 {
		t.Fatalf("got %v, %v", conns, err)
	}
}

func seeds(t testing.TB) [][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", "*.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestSeedsPresent(t *testing.T) {
	if len(seeds(t)) == 0 {
		t.Fatal("no fuzz seeds in testdata/*.pcap")
	}
}

// FuzzAnalyze: a capture file is outside input; any bytes give connections or an error, never a
// panic, and never a frame of negative or impossible size.
func FuzzAnalyze(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		conns, err := Analyze(bytes.NewReader(b), nil)
		if err != nil {
			return
		}
		for _, c := range conns {
			for _, fr := range c.Frames {
				if fr.Wire <= 0 || fr.Size < 0 || fr.Records < 0 || fr.Wire > len(b)*MaxSnaplen {
					t.Fatalf("impossible frame %+v", fr)
				}
			}
		}
	})
}
