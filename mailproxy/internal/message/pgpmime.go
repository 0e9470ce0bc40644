package message

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// MaxKeyringSize bounds a keyring file.
const MaxKeyringSize = 16 << 20

// Keyring holds the recipients' OpenPGP public keys, by lowercase mail address.
type Keyring struct {
	byAddr map[string]*openpgp.Entity
}

// LoadKeyring reads an armored keyring file (one or more public keys, as `gpg --export --armor`
// writes). Keys that cannot encrypt (expired, revoked, no encryption subkey) are left out.
func LoadKeyring(path string) (*Keyring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxKeyringSize+1))
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", path, err)
	}
	if len(b) > MaxKeyringSize {
		return nil, fmt.Errorf("keyring %s: larger than %d bytes", path, MaxKeyringSize)
	}
	return ParseKeyring(b)
}

// ParseKeyring reads armored public keys.
func ParseKeyring(armored []byte) (*Keyring, error) {
	list, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(armored))
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	k := &Keyring{byAddr: map[string]*openpgp.Entity{}}
	for _, e := range list {
		if _, ok := e.EncryptionKey(timeNow()); !ok {
			continue
		}
		for _, id := range e.Identities {
			if id.UserId != nil && id.UserId.Email != "" {
				k.byAddr[strings.ToLower(id.UserId.Email)] = e
			}
		}
	}
	return k, nil
}

// Lookup returns the key for a mail address.
func (k *Keyring) Lookup(addr string) (*openpgp.Entity, bool) {
	if k == nil {
		return nil, false
	}
	e, ok := k.byAddr[strings.ToLower(addr)]
	return e, ok
}

// Len is the number of addresses with a key.
func (k *Keyring) Len() int { return len(k.byAddr) }

// ErrEncrypted is returned by EncryptPGPMIME for a mail that is encrypted already.
var ErrEncrypted = errors.New("message: already encrypted")

// EncryptPGPMIME returns the mail encrypted to the key as PGP/MIME (RFC 3156): the outer header
// keeps every field except the MIME ones (Subject, From, To, Date stay readable: they are
// needed for delivery and display); the encrypted part holds the MIME header fields and the
// body. Lines end in CRLF.
func EncryptPGPMIME(m *Message, to *openpgp.Entity) ([]byte, error) {
	if m.Encrypted() {
		return nil, ErrEncrypted
	}
	var inner bytes.Buffer
	hasType := false
	for _, f := range m.Fields {
		if isMIMEField(f) {
			inner.Write(crlf(f.Raw))
			hasType = hasType || f.Is("Content-Type")
		}
	}
	if !hasType {
		inner.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	}
	inner.WriteString("\r\n")
	inner.Write(crlf(m.Body))

	var ct bytes.Buffer
	aw, err := armor.Encode(&ct, "PGP MESSAGE", nil)
	if err != nil {
		return nil, err
	}
	pw, err := openpgp.Encrypt(aw, []*openpgp.Entity{to}, nil, &openpgp.FileHints{IsBinary: true}, nil)
	if err != nil {
		return nil, fmt.Errorf("openpgp: %w", err)
	}
	if _, err := pw.Write(inner.Bytes()); err != nil {
		return nil, err
	}
	if err := pw.Close(); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}

	var r [12]byte
	rand.Read(r[:])
	boundary := "pgp-" + hex.EncodeToString(r[:])
	var out bytes.Buffer
	for _, f := range m.Fields {
		if !isMIMEField(f) && !f.Is("MIME-Version") {
			out.Write(crlf(f.Raw))
		}
	}
	fmt.Fprintf(&out, "MIME-Version: 1.0\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"%s\"\r\n\r\n", boundary)
	fmt.Fprintf(&out, "This is an OpenPGP/MIME encrypted message (RFC 3156).\r\n--%s\r\n", boundary)
	out.WriteString("Content-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\r\n")
	fmt.Fprintf(&out, "--%s\r\n", boundary)
	out.WriteString("Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\nContent-Description: OpenPGP encrypted message\r\nContent-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n")
	out.Write(crlf(ct.Bytes()))
	fmt.Fprintf(&out, "\r\n--%s--\r\n", boundary)
	return out.Bytes(), nil
}

// isMIMEField reports whether a field describes the body (it moves inside the encryption).
func isMIMEField(f Field) bool {
	return strings.HasPrefix(strings.ToLower(f.Name()), "content-")
}

// crlf turns bare LF line endings into CRLF.
func crlf(b []byte) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n"))
}

// timeNow is the clock for key validity (a variable for tests).
var timeNow = time.Now
