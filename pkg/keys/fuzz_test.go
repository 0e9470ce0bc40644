package keys

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// seedFiles returns the contents of testdata/DIR/* by file name.
func seedFiles(t testing.TB, dir string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]byte)
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = b
	}
	return out
}

// textParsers and pemParsers parse and re-encode; they report ok=false when
// the input is refused.
var textParsers = map[string]func(string) (string, bool){
	"identity": func(s string) (string, bool) {
		k, err := ParseIdentityPublicKey(s)
		return k.String(), err == nil
	},
	"link": func(s string) (string, bool) {
		k, err := ParseLinkPublicKey(s)
		return k.String(), err == nil
	},
	"sphinx": func(s string) (string, bool) {
		k, err := ParseSphinxPublicKey(s)
		return k.String(), err == nil
	},
}

var pemParsers = map[string]func([]byte) ([]byte, bool){
	"identity-private": func(b []byte) ([]byte, bool) {
		k, err := ParseIdentityPrivateKeyPEM(b)
		if err != nil {
			return nil, false
		}
		out, err := MarshalIdentityPrivateKeyPEM(k)
		return out, err == nil
	},
	"link-private": func(b []byte) ([]byte, bool) {
		k, err := ParseLinkPrivateKeyPEM(b)
		if err != nil {
			return nil, false
		}
		out, err := MarshalLinkPrivateKeyPEM(k)
		return out, err == nil
	},
	"sphinx-private": func(b []byte) ([]byte, bool) {
		k, err := ParseSphinxPrivateKeyPEM(b)
		if err != nil {
			return nil, false
		}
		out, err := MarshalSphinxPrivateKeyPEM(k)
		return out, err == nil
	},
	"identity-public": func(b []byte) ([]byte, bool) {
		k, err := ParseIdentityPublicKeyPEM(b)
		return MarshalIdentityPublicKeyPEM(k), err == nil
	},
	"link-public": func(b []byte) ([]byte, bool) {
		k, err := ParseLinkPublicKeyPEM(b)
		return MarshalLinkPublicKeyPEM(k), err == nil
	},
	"sphinx-public": func(b []byte) ([]byte, bool) {
		k, err := ParseSphinxPublicKeyPEM(b)
		return MarshalSphinxPublicKeyPEM(k), err == nil
	},
}

func TestSeedSetsNotEmpty(t *testing.T) {
	for dir, min := range map[string]int{"hex": 10, "pem": 15} {
		seeds := seedFiles(t, dir)
		if len(seeds) < min {
			t.Errorf("testdata/%s holds %d seed files, want at least %d", dir, len(seeds), min)
		}
		var ok, bad int
		for name := range seeds {
			switch {
			case strings.HasPrefix(name, "ok-"):
				ok++
			case strings.HasPrefix(name, "bad-"):
				bad++
			}
		}
		if ok == 0 || bad == 0 {
			t.Errorf("testdata/%s: %d valid and %d invalid seeds, want both", dir, ok, bad)
		}
	}
}

// TestSeedFilesExpectations checks every seed file against the expectation
// its name states (see testdata/README.md), so the seeds stay meaningful.
func TestSeedFilesExpectations(t *testing.T) {
	for name, b := range seedFiles(t, "hex") {
		kind, isOK := strings.CutPrefix(strings.TrimSuffix(name, ".txt"), "ok-")
		if isOK {
			parse, known := textParsers[kind]
			if !known {
				t.Errorf("hex/%s: unknown kind %q", name, kind)
				continue
			}
			if out, ok := parse(string(b)); !ok || out != string(b) {
				t.Errorf("hex/%s: refused or re-encoded differently (%q)", name, out)
			}
			continue
		}
		if !strings.HasPrefix(name, "bad-") {
			t.Errorf("hex/%s: name must start with ok- or bad-", name)
			continue
		}
		for kind, parse := range textParsers {
			if _, ok := parse(string(b)); ok {
				t.Errorf("hex/%s: accepted as %s public key", name, kind)
			}
		}
	}
	for name, b := range seedFiles(t, "pem") {
		kind, isOK := strings.CutPrefix(strings.TrimSuffix(name, ".pem"), "ok-")
		if isOK {
			parse, known := pemParsers[kind]
			if !known {
				t.Errorf("pem/%s: unknown kind %q", name, kind)
				continue
			}
			if out, ok := parse(b); !ok || !bytes.Equal(out, b) {
				t.Errorf("pem/%s: refused or re-encoded differently (%q)", name, out)
			}
			continue
		}
		if !strings.HasPrefix(name, "bad-") {
			t.Errorf("pem/%s: name must start with ok- or bad-", name)
			continue
		}
		for kind, parse := range pemParsers {
			if _, ok := parse(b); ok {
				t.Errorf("pem/%s: accepted as %s", name, kind)
			}
		}
	}
}

func addTextSeeds(f *testing.F) {
	for _, b := range seedFiles(f, "hex") {
		f.Add(string(b))
	}
}

func addPEMSeeds(f *testing.F) {
	for _, b := range seedFiles(f, "pem") {
		f.Add(b)
	}
}

// fuzzText checks that a parse never panics and that an accepted string
// re-encodes to itself, through String and through MarshalText.
func fuzzText(t *testing.T, kind, s string) {
	out, ok := textParsers[kind](s)
	if ok && out != s {
		t.Fatalf("%s: accepted %q re-encodes to %q", kind, s, out)
	}
}

func FuzzParseIdentityPublicKey(f *testing.F) {
	addTextSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		fuzzText(t, "identity", s)
		var k IdentityPublicKey
		if err := k.UnmarshalText([]byte(s)); err == nil {
			if b, _ := k.MarshalText(); string(b) != s {
				t.Fatalf("UnmarshalText(%q) re-marshals to %q", s, b)
			}
		}
	})
}

func FuzzParseLinkPublicKey(f *testing.F) {
	addTextSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		fuzzText(t, "link", s)
		var k LinkPublicKey
		if err := k.UnmarshalText([]byte(s)); err == nil {
			if b, _ := k.MarshalText(); string(b) != s {
				t.Fatalf("UnmarshalText(%q) re-marshals to %q", s, b)
			}
		}
	})
}

func FuzzParseSphinxPublicKey(f *testing.F) {
	addTextSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		fuzzText(t, "sphinx", s)
		var k SphinxPublicKey
		if err := k.UnmarshalText([]byte(s)); err == nil {
			if b, _ := k.MarshalText(); string(b) != s {
				t.Fatalf("UnmarshalText(%q) re-marshals to %q", s, b)
			}
		}
	})
}

func fuzzPEM(t *testing.T, kind string, b []byte) {
	out, ok := pemParsers[kind](b)
	if ok && !bytes.Equal(out, b) {
		t.Fatalf("%s: accepted %q re-encodes to %q", kind, b, out)
	}
	if ok && len(b) > MaxFileSize {
		t.Fatalf("%s: accepted %d bytes, over MaxFileSize", kind, len(b))
	}
}

func FuzzDecodePEMIdentityPrivateKey(f *testing.F) {
	addPEMSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzPEM(t, "identity-private", b) })
}

func FuzzDecodePEMLinkPrivateKey(f *testing.F) {
	addPEMSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzPEM(t, "link-private", b) })
}

func FuzzDecodePEMSphinxPrivateKey(f *testing.F) {
	addPEMSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzPEM(t, "sphinx-private", b) })
}

// FuzzDecodePEMPublicKey covers the three public key file parsers.
func FuzzDecodePEMPublicKey(f *testing.F) {
	addPEMSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, kind := range []string{"identity-public", "link-public", "sphinx-public"} {
			fuzzPEM(t, kind, b)
		}
	})
}
