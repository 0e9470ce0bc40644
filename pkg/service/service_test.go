package service

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	surb := bytes.Repeat([]byte{7}, 100)
	for _, tc := range []struct {
		surb []byte
		data []byte
	}{{nil, nil}, {nil, []byte("hi")}, {surb, []byte("with surb")}, {surb, bytes.Repeat([]byte{1}, Capacity(512, 100, true))}} {
		p, err := EncodeEnvelope(512, 100, tc.surb, tc.data)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != 512 {
			t.Fatalf("size %d", len(p))
		}
		s, d, err := DecodeEnvelope(p, 100)
		if err != nil || !bytes.Equal(s, tc.surb) || !bytes.Equal(d, tc.data) {
			t.Fatalf("round trip: %v", err)
		}
	}
}

func TestEnvelopeRefusals(t *testing.T) {
	if _, err := EncodeEnvelope(512, 100, nil, make([]byte, Capacity(512, 100, false)+1)); err == nil {
		t.Error("oversize data accepted")
	}
	if _, err := EncodeEnvelope(512, 100, make([]byte, 99), nil); err == nil {
		t.Error("short SURB accepted")
	}
	good, _ := EncodeEnvelope(64, 16, nil, []byte("abc"))
	bad := map[string][]byte{
		"short":        good[:5],
		"version":      append([]byte{2}, good[1:]...),
		"flags":        append([]byte{1, 0x80}, good[2:]...),
		"length":       append(append([]byte{1, 0}, 0, 0, 1, 0), good[6:]...),
		"padding":      append(bytes.Clone(good[:63]), 1),
		"surb too big": append([]byte{1, 1}, make([]byte, 10)...),
	}
	for name, p := range bad {
		if _, _, err := DecodeEnvelope(p, 16); !errors.Is(err, ErrEnvelope) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

type recordReplier struct {
	can  bool
	got  []byte
	used bool
}

func (r *recordReplier) CanReply() bool { return r.can }
func (r *recordReplier) Reply(_ context.Context, d []byte) error {
	if !r.can || r.used {
		return errors.New("no SURB")
	}
	r.used = true
	r.got = d
	return nil
}

func TestLoopEchoes(t *testing.T) {
	r := &recordReplier{can: true}
	if err := (Loop{}).Deliver(context.Background(), &Request{Data: []byte("ping")}, r); err != nil || string(r.got) != "ping" {
		t.Fatalf("loop: %v %q", err, r.got)
	}
	if err := (Loop{}).Deliver(context.Background(), &Request{Data: []byte("x")}, &recordReplier{}); err != nil {
		t.Fatal(err)
	}
	if !NamePattern.MatchString(Loop{}.Name()) {
		t.Fatal("loop name does not match the pattern")
	}
}

func seeds(t testing.TB) [][]byte {
	files, _ := filepath.Glob("testdata/envelope-*.bin")
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

func TestFuzzSeedsNotEmpty(t *testing.T) {
	if len(seeds(t)) == 0 {
		t.Fatal("no envelope seeds in testdata")
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		surb, data, err := DecodeEnvelope(p, 16)
		if err != nil {
			return
		}
		again, err := EncodeEnvelope(len(p), 16, surb, data)
		if err != nil || !bytes.Equal(again, p) {
			t.Fatalf("re-encoding differs: %v", err)
		}
	})
}
