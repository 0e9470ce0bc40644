package keys

import (
	"bytes"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileRoundTrips(t *testing.T) {
	dir := t.TempDir()
	id, _ := GenerateIdentityKey(nil)
	ln, _ := GenerateLinkKey(nil)
	sx, _ := GenerateSphinxKey(nil)

	type rt struct {
		name  string
		mode  os.FileMode
		save  func(string) error
		check func(string) error
	}
	errMismatch := errors.New("loaded key differs")
	cases := []rt{
		{"identity.key", 0o600, func(p string) error { return SaveIdentityKey(p, id) }, func(p string) error {
			k, err := LoadIdentityKey(p)
			if err == nil && !k.Equal(id) {
				err = errMismatch
			}
			return err
		}},
		{"link.key", 0o600, func(p string) error { return SaveLinkKey(p, ln) }, func(p string) error {
			k, err := LoadLinkKey(p)
			if err == nil && !k.Equal(ln) {
				err = errMismatch
			}
			return err
		}},
		{"sphinx.key", 0o600, func(p string) error { return SaveSphinxKey(p, sx) }, func(p string) error {
			k, err := LoadSphinxKey(p)
			if err == nil && !k.Equal(sx) {
				err = errMismatch
			}
			return err
		}},
		{"identity.pub", 0o644, func(p string) error { return SaveIdentityPublicKey(p, id.Public()) }, func(p string) error {
			k, err := LoadIdentityPublicKey(p)
			if err == nil && !k.Equal(id.Public()) {
				err = errMismatch
			}
			return err
		}},
		{"link.pub", 0o644, func(p string) error { return SaveLinkPublicKey(p, ln.Public()) }, func(p string) error {
			k, err := LoadLinkPublicKey(p)
			if err == nil && !k.Equal(ln.Public()) {
				err = errMismatch
			}
			return err
		}},
		{"sphinx.pub", 0o644, func(p string) error { return SaveSphinxPublicKey(p, sx.Public()) }, func(p string) error {
			k, err := LoadSphinxPublicKey(p)
			if err == nil && !k.Equal(sx.Public()) {
				err = errMismatch
			}
			return err
		}},
	}
	for _, c := range cases {
		p := filepath.Join(dir, c.name)
		if err := c.save(p); err != nil {
			t.Fatalf("%s: save: %v", c.name, err)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != c.mode {
			t.Errorf("%s: mode %#o, want %#o", c.name, fi.Mode().Perm(), c.mode)
		}
		if err := c.check(p); err != nil {
			t.Errorf("%s: load: %v", c.name, err)
		}
		// Saving again replaces the file atomically.
		if err := c.save(p); err != nil {
			t.Errorf("%s: second save: %v", c.name, err)
		}
		if err := c.check(p); err != nil {
			t.Errorf("%s: load after second save: %v", c.name, err)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(cases) {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v; temporary files left behind?", names)
	}
}

func TestSaveReplacesAndKeepsModeUnderUmask(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "identity.key")
	// An existing world-readable file at the path is replaced by a 0600 one.
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	k, _ := GenerateIdentityKey(nil)
	if err := SaveIdentityKey(p, k); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %#o after replacing a 0644 file, want 0600", fi.Mode().Perm())
	}
	if _, err := LoadIdentityKey(p); err != nil {
		t.Error(err)
	}
}

func TestSaveIntoMissingDirectory(t *testing.T) {
	p := filepath.Join(t.TempDir(), "missing", "identity.key")
	k, _ := GenerateIdentityKey(nil)
	err := SaveIdentityKey(p, k)
	if err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("save into missing directory: %v (want an error naming %s)", err, p)
	}
}

// writeRaw writes content with mode perm (exactly, regardless of umask).
func writeRaw(t *testing.T, p string, content []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, content, perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRefusesInsecurePermissions(t *testing.T) {
	dir := t.TempDir()
	id, _ := GenerateIdentityKey(nil)
	data, _ := MarshalIdentityPrivateKeyPEM(id)
	for _, perm := range []os.FileMode{0o640, 0o604, 0o620, 0o602, 0o660, 0o644, 0o666, 0o601, 0o610} {
		p := filepath.Join(dir, "id key "+perm.String()) // a space, to check quoting in the hint
		writeRaw(t, p, data, perm)
		_, err := LoadIdentityKey(p)
		if !errors.Is(err, ErrInsecurePermissions) {
			t.Errorf("mode %#o: err %v, want ErrInsecurePermissions", perm, err)
			continue
		}
		msg := err.Error()
		for _, want := range []string{p, "mode 0" + octal(perm), "chmod 600 '" + p + "'"} {
			if !strings.Contains(msg, want) {
				t.Errorf("mode %#o: error %q lacks %q", perm, msg, want)
			}
		}
	}
	// Same for the other private key kinds; public keys may be world-readable.
	ln, _ := GenerateLinkKey(nil)
	sx, _ := GenerateSphinxKey(nil)
	lp := filepath.Join(dir, "link.key")
	sp := filepath.Join(dir, "sphinx.key")
	ld, _ := MarshalLinkPrivateKeyPEM(ln)
	sd, _ := MarshalSphinxPrivateKeyPEM(sx)
	writeRaw(t, lp, ld, 0o640)
	writeRaw(t, sp, sd, 0o604)
	if _, err := LoadLinkKey(lp); !errors.Is(err, ErrInsecurePermissions) || !strings.Contains(err.Error(), "chmod 600 "+lp) {
		t.Errorf("link key mode 0640: %v", err)
	}
	if _, err := LoadSphinxKey(sp); !errors.Is(err, ErrInsecurePermissions) || !strings.Contains(err.Error(), "chmod 600 "+sp) {
		t.Errorf("sphinx key mode 0604: %v", err)
	}
	pp := filepath.Join(dir, "identity.pub")
	writeRaw(t, pp, MarshalIdentityPublicKeyPEM(id.Public()), 0o644)
	if _, err := LoadIdentityPublicKey(pp); err != nil {
		t.Errorf("public key file mode 0644 refused: %v", err)
	}
	// 0400 (owner read-only) is fine for a private key.
	op := filepath.Join(dir, "readonly.key")
	writeRaw(t, op, data, 0o400)
	if _, err := LoadIdentityKey(op); err != nil {
		t.Errorf("mode 0400 refused: %v", err)
	}
}

func octal(m os.FileMode) string {
	const digits = "01234567"
	v := uint32(m.Perm())
	return string([]byte{digits[v>>6&7], digits[v>>3&7], digits[v&7]})
}

func TestLoadRefusesMalformedFiles(t *testing.T) {
	dir := t.TempDir()
	id, _ := NewIdentityPrivateKey(mustHex(t, rfc8032Seed))
	good, _ := MarshalIdentityPrivateKeyPEM(id)
	seed := mustHex(t, rfc8032Seed)
	block := func(typ string, b []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}) }
	ln, _ := GenerateLinkKey(nil)
	linkFile, _ := MarshalLinkPrivateKeyPEM(ln)

	cases := []struct {
		name    string
		content []byte
		want    []string // substrings of the error, besides the path
		is      error
	}{
		{"link key as identity", linkFile, []string{`"PANORAMIX LINK PRIVATE KEY"`, `want "PANORAMIX IDENTITY PRIVATE KEY"`}, ErrMalformedFile},
		{"public key as private", MarshalIdentityPublicKeyPEM(id.Public()), []string{`"PANORAMIX IDENTITY PUBLIC KEY"`, "want"}, ErrMalformedFile},
		{"pkcs8 type", block("PRIVATE KEY", seed), []string{`"PRIVATE KEY"`}, ErrMalformedFile},
		{"trailing data", append(bytes.Clone(good), "more"...), []string{"4 bytes of trailing data"}, ErrMalformedFile},
		{"trailing newline", append(bytes.Clone(good), '\n'), []string{"1 bytes of trailing data"}, ErrMalformedFile},
		{"second block", append(bytes.Clone(good), good...), []string{"trailing data"}, ErrMalformedFile},
		{"leading data", append([]byte("# my key\n"), good...), []string{"before the PEM block"}, ErrMalformedFile},
		{"not pem", []byte(rfc8032Seed), []string{"not a PEM file"}, ErrMalformedFile},
		{"empty", nil, []string{"not a PEM file"}, ErrMalformedFile},
		{"truncated", good[:len(good)-8], []string{"invalid PEM block"}, ErrMalformedFile},
		{"short", block(IdentityPrivateKeyPEMType, seed[:31]), []string{"holds 31 bytes, want 32"}, ErrMalformedFile},
		{"long", block(IdentityPrivateKeyPEMType, append(bytes.Clone(seed), 0)), []string{"holds 33 bytes, want 32"}, ErrMalformedFile},
		{"empty block", block(IdentityPrivateKeyPEMType, nil), []string{"holds 0 bytes"}, ErrMalformedFile},
		{"headers", pem.EncodeToMemory(&pem.Block{Type: IdentityPrivateKeyPEMType, Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: seed}), []string{"headers"}, ErrMalformedFile},
		{"crlf", bytes.ReplaceAll(good, []byte("\n"), []byte("\r\n")), []string{"non-canonical PEM"}, ErrMalformedFile},
		{"rewrapped", bytes.Replace(good, []byte("KEY-----\n"), []byte("KEY-----\n\n"), 1), []string{"non-canonical PEM"}, ErrMalformedFile},
		{"zero seed", block(IdentityPrivateKeyPEMType, make([]byte, 32)), []string{"all-zero"}, ErrInvalidKey},
		{"too large", append(bytes.Clone(good), make([]byte, MaxFileSize)...), []string{"over the limit"}, ErrMalformedFile},
	}
	for i, c := range cases {
		p := filepath.Join(dir, "case"+string(rune('a'+i))+".key")
		writeRaw(t, p, c.content, 0o600)
		_, err := LoadIdentityKey(p)
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !errors.Is(err, c.is) {
			t.Errorf("%s: error %q is not %v", c.name, err, c.is)
		}
		for _, w := range append(c.want, p) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", c.name, err, w)
			}
		}
	}
}

func TestLoadRefusesNonRegularAndMissing(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadIdentityKey(dir); !errors.Is(err, ErrMalformedFile) || !strings.Contains(err.Error(), "not a regular file") || !strings.Contains(err.Error(), dir) {
		t.Errorf("directory: %v", err)
	}
	missing := filepath.Join(dir, "nope.key")
	if _, err := LoadSphinxKey(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadLinkPublicKey(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing public file: %v", err)
	}
}

func TestLoadPublicRefusals(t *testing.T) {
	dir := t.TempDir()
	sx, _ := GenerateSphinxKey(nil)
	good := MarshalSphinxPublicKeyPEM(sx.Public())
	cases := []struct {
		name    string
		content []byte
		want    string
	}{
		{"zero key", MarshalSphinxPublicKeyPEM(SphinxPublicKey{}), "low-order"},
		{"identity type", MarshalIdentityPublicKeyPEM(IdentityPublicKey(sx.Public())), `want "PANORAMIX SPHINX PUBLIC KEY"`},
		{"private type", func() []byte { b, _ := MarshalSphinxPrivateKeyPEM(sx); return b }(), `"PANORAMIX SPHINX PRIVATE KEY"`},
		{"trailing", append(bytes.Clone(good), 'x'), "trailing data"},
		{"too large", bytes.Repeat([]byte("a"), MaxFileSize+1), "over the limit"},
	}
	for _, c := range cases {
		p := filepath.Join(dir, "sphinx.pub")
		writeRaw(t, p, c.content, 0o644)
		_, err := LoadSphinxPublicKey(p)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: err %v, want one mentioning %q and the path", c.name, err, c.want)
		}
	}
}

// The size limit also holds for in-memory parsing, before any PEM work.
func TestParsePEMSizeLimit(t *testing.T) {
	id, _ := GenerateIdentityKey(nil)
	good, _ := MarshalIdentityPrivateKeyPEM(id)
	big := append(bytes.Clone(good), make([]byte, MaxFileSize+1-len(good))...)
	if _, err := ParseIdentityPrivateKeyPEM(big); !errors.Is(err, ErrMalformedFile) || !strings.Contains(err.Error(), "exceeds the limit") {
		t.Errorf("over-limit input: %v", err)
	}
}

// A huge file is refused from its size, before any of it is read.
func TestLoadRefusesHugeFileWithoutReading(t *testing.T) {
	p := filepath.Join(t.TempDir(), "huge.key")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 30); err != nil { // sparse: no disk used
		t.Fatal(err)
	}
	f.Close()
	_, err = LoadIdentityKey(p)
	if !errors.Is(err, ErrMalformedFile) || !strings.Contains(err.Error(), "file is 1073741824 bytes") || !strings.Contains(err.Error(), p) {
		t.Errorf("1 GiB file: %v", err)
	}
}

// A failed save leaves neither a temporary file nor a changed target.
func TestSaveFailureLeavesNoTemporaryFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "identity.key")
	// A non-empty directory at the target path makes the final rename fail.
	if err := os.MkdirAll(filepath.Join(target, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	k, _ := GenerateIdentityKey(nil)
	err := SaveIdentityKey(target, k)
	if err == nil || !strings.Contains(err.Error(), target) {
		t.Fatalf("save over a directory: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "identity.key" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %v after failed save; want only identity.key", names)
	}
}
