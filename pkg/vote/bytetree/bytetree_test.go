package bytetree

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func seeds(t testing.TB) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.bt"))
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

func TestSeedsNotEmpty(t *testing.T) {
	if len(seeds(t)) == 0 {
		t.Fatal("no seed files in testdata")
	}
}

func TestParseReencodesVerificatumFiles(t *testing.T) {
	for _, b := range seeds(t) {
		tr, err := Parse(b, DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(tr.Encode(), b) || tr.Size() != len(b) {
			t.Fatal("re-encoding differs")
		}
	}
}

func TestEncoding(t *testing.T) {
	tr := Node(Leaf([]byte{0xaa}), Node(), Uint32(7), String("ab"))
	want := []byte{
		0, 0, 0, 0, 4,
		1, 0, 0, 0, 1, 0xaa,
		0, 0, 0, 0, 0,
		1, 0, 0, 0, 4, 0, 0, 0, 7,
		1, 0, 0, 0, 2, 'a', 'b',
	}
	if got := tr.Encode(); !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	cases := map[string][]byte{
		"empty":              {},
		"short header":       {1, 0, 0},
		"unknown tag":        {2, 0, 0, 0, 0},
		"leaf too long":      {1, 0, 0, 0, 5, 1, 2},
		"too many children":  {0, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0},
		"missing child":      {0, 0, 0, 0, 2, 1, 0, 0, 0, 0},
		"trailing bytes":     {1, 0, 0, 0, 0, 9},
		"truncated in child": {0, 0, 0, 0, 1, 1, 0, 0, 0, 3, 1},
	}
	for name, b := range cases {
		if _, err := Parse(b, DefaultLimits()); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestParseLimits(t *testing.T) {
	// Depth: node(node(node(leaf))) has depth 4.
	deep := Node(Node(Node(Leaf(nil)))).Encode()
	if _, err := Parse(deep, Limits{MaxBytes: 100, MaxDepth: 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(deep, Limits{MaxBytes: 100, MaxDepth: 3}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("over-deep tree: got %v", err)
	}
	big := Leaf(make([]byte, 100)).Encode()
	if _, err := Parse(big, Limits{MaxBytes: len(big), MaxDepth: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(big, Limits{MaxBytes: len(big) - 1, MaxDepth: 1}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("oversize tree: got %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range seeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := Parse(b, Limits{MaxBytes: 1 << 20, MaxDepth: 8})
		if err != nil {
			return
		}
		if !bytes.Equal(tr.Encode(), b) {
			t.Fatal("a successful parse did not re-encode to the same bytes")
		}
	})
}
