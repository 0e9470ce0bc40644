package dp

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func epsilonSeeds(t testing.TB) map[string]string {
	files, err := filepath.Glob("testdata/epsilon/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = string(b)
	}
	return out
}

func TestEpsilonSeeds(t *testing.T) {
	seeds := epsilonSeeds(t)
	if len(seeds) == 0 {
		t.Fatal("no seeds in testdata/epsilon")
	}
	for name, s := range seeds {
		e, err := ParseEpsilon(s)
		switch {
		case strings.HasPrefix(name, "ok-"):
			if err != nil {
				t.Errorf("%s: %v", name, err)
			} else if e.String() != s {
				t.Errorf("%s: re-encodes as %q", name, e)
			}
		case strings.HasPrefix(name, "bad-"):
			if !errors.Is(err, ErrEpsilon) {
				t.Errorf("%s: parsed as %s, err %v", name, e, err)
			}
		default:
			t.Errorf("%s: name must start with ok- or bad-", name)
		}
	}
}

func TestEpsilonValues(t *testing.T) {
	for s, want := range map[string]Epsilon{"0.5": 500000, "1": 1000000, "0.000001": 1, "100": MaxEpsilon, "12.25": 12250000} {
		if e, err := ParseEpsilon(s); err != nil || e != want {
			t.Errorf("%s: %d, %v", s, e, err)
		}
	}
	if r := Epsilon(250000).Rat(); r.RatString() != "1/4" {
		t.Errorf("Rat: %s", r.RatString())
	}
	var e Epsilon
	if err := e.UnmarshalText([]byte("0.25")); err != nil || e != 250000 {
		t.Errorf("UnmarshalText: %d, %v", e, err)
	}
	if b, _ := e.MarshalText(); string(b) != "0.25" {
		t.Errorf("MarshalText: %s", b)
	}
}

func FuzzParseEpsilon(f *testing.F) {
	for _, s := range epsilonSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseEpsilon(s)
		if err != nil {
			return
		}
		if e == 0 || e > MaxEpsilon || e.String() != s {
			t.Fatalf("%q parsed as %d, re-encodes as %q", s, e, e)
		}
	})
}
