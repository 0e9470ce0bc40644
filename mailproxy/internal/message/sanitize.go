package message

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"net/mail"
	"strings"
	"time"
)

// identifying are the fields removed outright: they name the sender's machine, network
// address or software, and Bcc must never reach a recipient.
var identifying = []string{
	"Received", "User-Agent", "X-Mailer", "X-Originating-IP", "X-Originating-Client",
	"X-Mozilla-Draft-Info", "X-Mailer-Version", "X-MimeOLE", "X-MS-Exchange-Organization-AuthSource",
	"Bcc", "Return-Path",
}

// DateLayout is RFC 5322 date with the zone written as +0000 (UTC).
const DateLayout = "Mon, 02 Jan 2006 15:04:05 +0000"

// Sanitize strips what identifies the sender's machine, time zone or software (DESIGN.md
// section 3 step 2): the fields in identifying; Date is rewritten in UTC (added when missing);
// the host part of Message-ID is replaced by domain, the sender's mail domain, which every
// recipient already sees in From (a Message-ID is added when missing). now is the time used
// for a missing or unreadable Date.
func (m *Message) Sanitize(domain string, now time.Time) {
	for _, name := range identifying {
		m.Remove(name)
	}
	t, err := mail.ParseDate(m.Get("Date"))
	if err != nil {
		t = now
	}
	m.Set("Date", t.UTC().Format(DateLayout))
	left := ""
	if id := m.Get("Message-ID"); id != "" {
		id = strings.TrimSuffix(strings.TrimPrefix(id, "<"), ">")
		if l, _, ok := strings.Cut(id, "@"); ok && l != "" && !strings.ContainsAny(l, "<>@ \t\"") {
			left = l
		}
	}
	if left == "" {
		var r [16]byte
		rand.Read(r[:])
		left = hex.EncodeToString(r[:])
	}
	m.Set("Message-ID", "<"+left+"@"+domain+">")
}

// inlinePGP starts an ASCII-armored OpenPGP message (RFC 4880 section 6.2), the form of inline
// PGP, which mail programs put in a text body.
const inlinePGP = "-----BEGIN PGP MESSAGE-----"

// Encrypted reports whether the mail is already encrypted by the mail program: PGP/MIME or
// S/MIME, judging by its top-level Content-Type, or inline PGP, an armored OpenPGP message at
// the start of a line of the body. Encrypting such a mail again would make the recipient
// decrypt twice, and most mail programs show only the outer layer.
func (m *Message) Encrypted() bool {
	ct := strings.ToLower(m.Get("Content-Type"))
	if strings.HasPrefix(ct, "multipart/encrypted") || strings.Contains(ct, "application/pkcs7-mime") {
		return true
	}
	return bytes.HasPrefix(m.Body, []byte(inlinePGP)) || bytes.Contains(m.Body, []byte("\n"+inlinePGP))
}
