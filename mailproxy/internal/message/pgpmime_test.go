package message

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

func testKey(t *testing.T, email string) (*openpgp.Entity, []byte) {
	t.Helper()
	e, err := openpgp.NewEntity("Bob", "", email, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	w, _ := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return e, b.Bytes()
}

func TestEncryptPGPMIME(t *testing.T) {
	bob, pub := testKey(t, "Bob@Beta.example")
	kr, err := ParseKeyring(pub)
	if err != nil {
		t.Fatal(err)
	}
	to, ok := kr.Lookup("bob@beta.example")
	if !ok || kr.Len() != 1 {
		t.Fatalf("key not found by address (%d keys)", kr.Len())
	}
	if _, ok := kr.Lookup("carol@beta.example"); ok {
		t.Fatal("found a key for another address")
	}
	raw := "From: alice@alpha.example\r\nTo: bob@beta.example\r\nSubject: secret\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nthe plan\r\n"
	m, _ := Parse([]byte(raw))
	out, err := EncryptPGPMIME(m, to)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(out, []byte("the plan")) {
		t.Fatal("plaintext in the encrypted mail")
	}
	msg, err := mail.ReadMessage(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("Subject") != "secret" || msg.Header.Get("Content-Transfer-Encoding") != "" {
		t.Errorf("outer header: %v", msg.Header)
	}
	mt, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if mt != "multipart/encrypted" || params["protocol"] != "application/pgp-encrypted" {
		t.Fatalf("content type %q", msg.Header.Get("Content-Type"))
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	p1, _ := r.NextPart()
	v, _ := io.ReadAll(p1)
	if p1.Header.Get("Content-Type") != "application/pgp-encrypted" || !strings.Contains(string(v), "Version: 1") {
		t.Errorf("first part %v %q", p1.Header, v)
	}
	p2, _ := r.NextPart()
	blk, err := armor.Decode(p2)
	if err != nil {
		t.Fatal(err)
	}
	md, err := openpgp.ReadMessage(blk.Body, openpgp.EntityList{bob}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	inner, _ := io.ReadAll(md.UnverifiedBody)
	want := "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nthe plan\r\n"
	if string(inner) != want {
		t.Errorf("decrypted %q, want %q", inner, want)
	}

	// Already encrypted: left alone.
	m2, _ := Parse(out)
	if _, err := EncryptPGPMIME(m2, to); !errors.Is(err, ErrEncrypted) {
		t.Errorf("re-encryption: %v", err)
	}
}

func TestKeyringLimits(t *testing.T) {
	if _, err := ParseKeyring([]byte("not a key")); err == nil {
		t.Error("garbage keyring parsed")
	}
	p := t.TempDir() + "/big.asc"
	if err := writeFile(p, bytes.Repeat([]byte("a"), MaxKeyringSize+1)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyring(p); err == nil || !strings.Contains(err.Error(), "larger") {
		t.Errorf("over-limit keyring: %v", err)
	}
}

func writeFile(p string, b []byte) error { return os.WriteFile(p, b, 0o600) }
