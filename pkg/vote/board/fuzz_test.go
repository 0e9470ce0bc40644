package board

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the fuzzing seeds in testdata/")

// TestWriteSeeds regenerates testdata/ from the deterministic fixture (on purpose only).
func TestWriteSeeds(t *testing.T) {
	if !*updateSeeds {
		t.Skip("run with -update-seeds to regenerate testdata")
	}
	f := newFixture(t, 3, 3, 2, 3, 2)
	params, err := f.p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	b := f.builder()
	c0 := f.cast(0, 2, 1)
	b.addCast(c0)
	b.addCast(f.cast(1, 0, 0))
	b.addCast(f.cast(0, 1, 1))
	b.addClose()
	s2, err := SignClose(f.p, 2, f.trustees[1])
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{
		"a.params":   params,
		"a.cast":     c0.Marshal(),
		"b.cast":     b.entries[1].Payload,
		"a.board":    MarshalBoard(b.entries),
		"open.board": MarshalBoard(b.entries[:3]),
		"a.receipt":  b.entries[0].Receipt().Marshal(),
		"a.close":    b.entries[3].Payload,
		"a.closesig": s2.Marshal(),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join("testdata", name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func seeds(t testing.TB, pattern string) [][]byte {
	names, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

var seedPatterns = []string{"*.params", "*.cast", "*.board", "*.receipt", "*.close", "*.closesig"}

func TestSeedsNotEmpty(t *testing.T) {
	for _, p := range seedPatterns {
		if len(seeds(t, p)) == 0 {
			t.Errorf("no fuzzing seeds testdata/%s", p)
		}
	}
}

// TestSeedsParse checks the seeds are what they claim: valid encodings, and the board verifies
// against the params.
func TestSeedsParse(t *testing.T) {
	ps := seeds(t, "a.params")
	if len(ps) != 1 {
		t.Fatal("testdata/a.params missing")
	}
	p, err := ParseParams(ps[0])
	if err != nil {
		t.Fatal(err)
	}
	es, err := ParseBoard(seeds(t, "a.board")[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyBoard(p, es); err != nil {
		t.Fatal(err)
	}
	open, err := ParseBoard(seeds(t, "open.board")[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyBoard(p, open); err == nil {
		t.Fatal("a board without close entry verified")
	}
	r, err := ParseReceipt(seeds(t, "a.receipt")[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := r.VerifyCast(p, seeds(t, "a.cast")[0]); err != nil {
		t.Fatal(err)
	}
	if later, err := r.OnBoard(es); err != nil || later != 2 {
		t.Fatalf("receipt on board: %d, %v; want replaced by entry 2", later, err)
	}
}

func fuzzRoundTrip(f *testing.F, pattern string, parse func([]byte) ([]byte, error)) {
	for _, s := range seeds(f, pattern) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		out, err := parse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(out, b) {
			t.Fatalf("parsed input re-encodes differently:\n in %x\nout %x", b, out)
		}
	})
}

func FuzzParseParams(f *testing.F) {
	fuzzRoundTrip(f, "*.params", func(b []byte) ([]byte, error) {
		p, err := ParseParams(b)
		if err != nil {
			return nil, err
		}
		return p.Marshal()
	})
}

func FuzzParseCast(f *testing.F) {
	fuzzRoundTrip(f, "*.cast", func(b []byte) ([]byte, error) {
		c, err := ParseCast(b)
		if err != nil {
			return nil, err
		}
		return c.Marshal(), nil
	})
}

func FuzzParseBoard(f *testing.F) {
	fuzzRoundTrip(f, "*.board", func(b []byte) ([]byte, error) {
		es, err := ParseBoard(b)
		if err != nil {
			return nil, err
		}
		return MarshalBoard(es), nil
	})
}

func FuzzParseReceipt(f *testing.F) {
	fuzzRoundTrip(f, "*.receipt", func(b []byte) ([]byte, error) {
		r, err := ParseReceipt(b)
		if err != nil {
			return nil, err
		}
		return r.Marshal(), nil
	})
}

func FuzzParseClose(f *testing.F) {
	fuzzRoundTrip(f, "*.close", func(b []byte) ([]byte, error) {
		c, err := ParseClose(b)
		if err != nil {
			return nil, err
		}
		return c.Marshal(), nil
	})
}

func FuzzParseCloseSignature(f *testing.F) {
	fuzzRoundTrip(f, "*.closesig", func(b []byte) ([]byte, error) {
		s, err := ParseCloseSignature(b)
		if err != nil {
			return nil, err
		}
		return s.Marshal(), nil
	})
}
