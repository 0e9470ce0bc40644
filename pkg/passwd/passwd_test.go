package passwd

import (
	"bufio"
	"crypto/rand"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

type vector struct {
	line     int
	expect   string
	password string
	phc      string
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	f, err := os.Open("testdata/vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var vs []vector
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, "\t")
		if len(fields) != 3 {
			t.Fatalf("testdata/vectors.txt:%d: want 3 tab-separated fields", n)
		}
		pw, err := strconv.Unquote(fields[1])
		if err != nil {
			t.Fatalf("testdata/vectors.txt:%d: password: %v", n, err)
		}
		vs = append(vs, vector{n, fields[0], pw, fields[2]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

func TestVectors(t *testing.T) {
	counts := map[string]int{}
	for _, v := range loadVectors(t) {
		counts[v.expect]++
		err := Verify(v.phc, v.password)
		switch v.expect {
		case "ok":
			if err != nil {
				t.Errorf("line %d: Verify: %v, want match", v.line, err)
			}
		case "mismatch":
			if !errors.Is(err, ErrMismatch) {
				t.Errorf("line %d: Verify: %v, want ErrMismatch", v.line, err)
			}
		case "invalid":
			if _, perr := Parse(v.phc); perr == nil {
				t.Errorf("line %d: Parse accepted %q", v.line, v.phc)
			}
			if err == nil || errors.Is(err, ErrMismatch) {
				t.Errorf("line %d: Verify: %v, want a parse error", v.line, err)
			}
		default:
			t.Errorf("line %d: unknown expect %q", v.line, v.expect)
		}
	}
	for _, e := range []string{"ok", "mismatch", "invalid"} {
		if counts[e] == 0 {
			t.Errorf("no %q vectors in testdata/vectors.txt", e)
		}
	}
}

// cheap keeps unit tests fast; the defaults are exercised once in TestDefaultParams.
var cheap = Params{MemoryKiB: 64, Time: 1, Threads: 1}

func TestHashRoundTrip(t *testing.T) {
	for _, pw := range []string{"", "hunter2", "pässwörd with spaces", strings.Repeat("x", MaxPasswordSize)} {
		h, err := HashWithParams(rand.Reader, pw, cheap)
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(h, pw); err != nil {
			t.Errorf("Verify(own hash of %q): %v", pw, err)
		}
		if err := Verify(h, "!"+pw[min(1, len(pw)):]); !errors.Is(err, ErrMismatch) {
			t.Errorf("Verify(wrong password): %v, want ErrMismatch", err)
		}
		p, err := Parse(h)
		if err != nil {
			t.Fatal(err)
		}
		if p.String() != h || p.Params != cheap || len(p.Salt) != SaltSize || len(p.Key) != KeySize {
			t.Errorf("Parse(%q) = %+v", h, p)
		}
	}
}

func TestSaltsDiffer(t *testing.T) {
	a, _ := HashWithParams(rand.Reader, "same", cheap)
	b, _ := HashWithParams(rand.Reader, "same", cheap)
	if a == b {
		t.Fatal("two hashes of one password are identical: salt not random")
	}
}

func TestDefaultParams(t *testing.T) {
	h, err := Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=3,p=4$") {
		t.Errorf("Hash = %q, want the default parameters", h)
	}
	if err := Verify(h, "correct horse battery staple"); err != nil {
		t.Error(err)
	}
}

func TestLimits(t *testing.T) {
	long := strings.Repeat("x", MaxPasswordSize+1)
	if _, err := HashWithParams(rand.Reader, long, cheap); !errors.Is(err, ErrPasswordTooLong) {
		t.Errorf("Hash(over-long password): %v", err)
	}
	h, _ := HashWithParams(rand.Reader, "x", cheap)
	if err := Verify(h, long); !errors.Is(err, ErrPasswordTooLong) {
		t.Errorf("Verify(over-long password): %v", err)
	}
	if _, err := Parse(h + strings.Repeat("A", MaxEncodedSize)); err == nil {
		t.Error("Parse accepted an over-long string")
	}
	for _, p := range []Params{
		{MemoryKiB: MaxMemoryKiB + 1, Time: 1, Threads: 1},
		{MemoryKiB: 64, Time: MaxTime + 1, Threads: 1},
		{MemoryKiB: 64, Time: 1, Threads: 0},
		{MemoryKiB: 64, Time: 0, Threads: 1},
		{MemoryKiB: 7, Time: 1, Threads: 1},
	} {
		if _, err := HashWithParams(rand.Reader, "x", p); err == nil {
			t.Errorf("HashWithParams accepted %+v", p)
		}
	}
}

func TestSeedsNotEmpty(t *testing.T) {
	if len(loadVectors(t)) == 0 {
		t.Fatal("testdata/vectors.txt has no vectors: the FuzzParse seed set is empty")
	}
}

func FuzzParse(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(v.phc)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := Parse(s)
		if err != nil {
			return
		}
		if got := p.String(); got != s {
			t.Fatalf("Parse(%q).String() = %q", s, got)
		}
	})
}

// BenchmarkVerifyDefault is the cost of one login check with the default parameters.
func BenchmarkVerifyDefault(b *testing.B) {
	h, err := Hash("benchmark password")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := Verify(h, "benchmark password"); err != nil {
			b.Fatal(err)
		}
	}
}
