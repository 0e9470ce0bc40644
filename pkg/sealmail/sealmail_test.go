package sealmail

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json (only on purpose: it changes the vectors)")

func testKey(t testing.TB) *keys.LinkPrivateKey {
	t.Helper()
	seed := bytes.Repeat([]byte{0x42}, 32)
	k, err := keys.NewLinkPrivateKey(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := testKey(t)
	id := ID{1, 2, 3}
	for _, n := range []int{0, 1, 8 << 10, 1 << 20} {
		msg := bytes.Repeat([]byte{'m'}, n)
		sealed, err := Seal(k.Public(), id, msg)
		if err != nil {
			t.Fatal(err)
		}
		if len(sealed) != n+Overhead {
			t.Fatalf("%d bytes sealed to %d, want %d", n, len(sealed), n+Overhead)
		}
		got, err := Open(k, id, sealed)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: open: %v", n, err)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	k := testKey(t)
	other, err := keys.GenerateLinkKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	id := ID{7}
	sealed, err := Seal(k.Public(), id, []byte("Subject: hi\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)/2] ^= 1
	cases := map[string]struct {
		k      *keys.LinkPrivateKey
		id     ID
		sealed []byte
	}{
		"another key":     {other, id, sealed},
		"another id":      {k, ID{8}, sealed},
		"a flipped bit":   {k, id, flipped},
		"truncated":       {k, id, sealed[:len(sealed)-1]},
		"shorter than 48": {k, id, sealed[:Overhead-1]},
	}
	for name, c := range cases {
		if _, err := Open(c.k, c.id, c.sealed); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: %v, want ErrOpen", name, err)
		}
	}
}

func TestSplitParse(t *testing.T) {
	id := ID{9, 9}
	for _, body := range []int{HeaderSize + 1, HeaderSize + 7, 16984} {
		for _, n := range []int{1, 2, 6, 7, 100, 60000} {
			sealed := make([]byte, n)
			for i := range sealed {
				sealed[i] = byte(i * 7)
			}
			chunks, err := Split(id, sealed, body)
			if err != nil {
				t.Fatal(err)
			}
			var joined []byte
			for i, b := range chunks {
				if len(b) > body {
					t.Fatalf("chunk of %d bytes, limit %d", len(b), body)
				}
				c, err := ParseChunk(b, body, n)
				if err != nil {
					t.Fatalf("body %d, %d bytes, chunk %d: %v", body, n, i, err)
				}
				if c.ID != id || c.Index != uint32(i) || c.Count != uint32(len(chunks)) || c.Total != uint32(n) {
					t.Fatalf("chunk %d decoded as %+v", i, c)
				}
				joined = append(joined, c.Data...)
			}
			if !bytes.Equal(joined, sealed) {
				t.Fatalf("body %d, %d bytes: chunks do not join to the sealed mail", body, n)
			}
		}
	}
}

func TestParseChunkRefuses(t *testing.T) {
	const body = HeaderSize + 10
	chunks, err := Split(ID{1}, make([]byte, 25), body)
	if err != nil {
		t.Fatal(err)
	}
	good := chunks[0]
	edit := func(b []byte, f func([]byte)) []byte { b = bytes.Clone(b); f(b); return b }
	cases := map[string][]byte{
		"short header":               good[:HeaderSize-1],
		"over the size":              append(bytes.Clone(good), 0),
		"version 2":                  edit(good, func(b []byte) { b[0] = 2 }),
		"index = count":              edit(good, func(b []byte) { b[1+IDSize+3] = 3 }),
		"count 0":                    edit(good, func(b []byte) { b[1+IDSize+7] = 0 }),
		"count not implied by total": edit(good, func(b []byte) { b[1+IDSize+7] = 4 }),
		"total 0":                    edit(good, func(b []byte) { b[1+IDSize+11] = 0 }),
		"short data":                 good[:len(good)-1],
		"last short":                 chunks[2][:len(chunks[2])-1],
		"last long":                  append(bytes.Clone(chunks[2]), 0),
	}
	for name, b := range cases {
		if _, err := ParseChunk(b, body, 25); !errors.Is(err, ErrChunk) {
			t.Errorf("%s: %v, want ErrChunk", name, err)
		}
	}
	if _, err := ParseChunk(good, body, 24); !errors.Is(err, ErrChunk) {
		t.Errorf("a mail over maxTotal: %v, want ErrChunk", err)
	}
}

func TestSplitRefuses(t *testing.T) {
	if _, err := Split(ID{}, []byte{1}, HeaderSize); err == nil {
		t.Error("split with no room for data")
	}
	if _, err := Split(ID{}, nil, 100); err == nil {
		t.Error("split an empty mail")
	}
	if _, err := Split(ID{}, make([]byte, MaxChunks+1), HeaderSize+1); err == nil {
		t.Error("split into more than MaxChunks chunks")
	}
}

// vector is one entry of testdata/vectors.json: a sealed mail made once by Seal with the
// link key whose seed is given, which Open must open to Message, or refuse (Open == false).
type vector struct {
	Name    string `json:"name"`
	Seed    string `json:"link_seed"`
	ID      string `json:"id"`
	Sealed  string `json:"sealed"`
	Message string `json:"message"`
	Open    bool   `json:"opens"`
}

func TestVectors(t *testing.T) {
	path := filepath.Join("testdata", "vectors.json")
	if *update {
		k := testKey(t)
		id := ID{0xa1, 0xb2, 0xc3}
		msg := "From: alice@alpha.example\r\nTo: bob@beta.example\r\nSubject: sealed\r\n\r\nhello bob\r\n"
		sealed, err := Seal(k.Public(), id, []byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		tampered := bytes.Clone(sealed)
		tampered[40] ^= 0x80
		seed := hex.EncodeToString(bytes.Repeat([]byte{0x42}, 32))
		vs := []vector{
			{"opens", seed, hex.EncodeToString(id[:]), hex.EncodeToString(sealed), msg, true},
			{"tampered ciphertext", seed, hex.EncodeToString(id[:]), hex.EncodeToString(tampered), "", false},
			{"other id", seed, hex.EncodeToString([]byte{0xa1, 0xb2, 0xc4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}), hex.EncodeToString(sealed), "", false},
		}
		b, _ := json.MarshalIndent(vs, "", "  ")
		if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var vs []vector
	if err := json.Unmarshal(b, &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) < 3 {
		t.Fatalf("%d vectors", len(vs))
	}
	for _, v := range vs {
		seed, _ := hex.DecodeString(v.Seed)
		k, err := keys.NewLinkPrivateKey(seed)
		if err != nil {
			t.Fatal(err)
		}
		var id ID
		idb, _ := hex.DecodeString(v.ID)
		copy(id[:], idb)
		sealed, _ := hex.DecodeString(v.Sealed)
		msg, err := Open(k, id, sealed)
		if v.Open && (err != nil || string(msg) != v.Message) {
			t.Errorf("%s: %q, %v", v.Name, msg, err)
		}
		if !v.Open && !errors.Is(err, ErrOpen) {
			t.Errorf("%s: opened (%v)", v.Name, err)
		}
	}
}

func FuzzParseChunk(f *testing.F) {
	chunks, _ := Split(ID{1}, make([]byte, 100), HeaderSize+40)
	for _, c := range chunks {
		f.Add(c)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseChunk(b, HeaderSize+40, 1000)
		if err != nil {
			if !errors.Is(err, ErrChunk) {
				t.Fatalf("error %v does not wrap ErrChunk", err)
			}
			return
		}
		// What parses re-encodes to the same bytes.
		again, err := Split(c.ID, make([]byte, c.Total), HeaderSize+40)
		if err != nil || len(again) != int(c.Count) || len(again[c.Index]) != len(b) || !bytes.Equal(again[c.Index][:HeaderSize], b[:HeaderSize]) {
			t.Fatalf("chunk %+v does not re-encode: %v", c, err)
		}
	})
}
