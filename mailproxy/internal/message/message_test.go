package message

import (
	"bytes"
	"errors"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func seeds(t testing.TB) map[string][]byte {
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestSeedsNotEmpty(t *testing.T) {
	s := seeds(t)
	good, bad := 0, 0
	for name := range s {
		if strings.HasPrefix(name, "bad-") {
			bad++
		} else {
			good++
		}
	}
	if good == 0 || bad == 0 {
		t.Fatalf("testdata has %d good and %d bad seeds; want both", good, bad)
	}
}

// Good seeds parse and re-encode byte for byte; bad ones are refused.
func TestParseSeeds(t *testing.T) {
	for name, b := range seeds(t) {
		m, err := Parse(b)
		if strings.HasPrefix(name, "bad-") {
			if err == nil {
				t.Errorf("%s: parsed", name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(m.Bytes(), b) {
			t.Errorf("%s: re-encoding differs", name)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, b := range seeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		if !bytes.Equal(m.Bytes(), b) {
			t.Fatalf("re-encoding differs")
		}
		m.Sanitize("alpha.example", time.Unix(0, 0))
		if _, err := Parse(m.Bytes()); err != nil {
			t.Fatalf("sanitized message does not parse: %v", err)
		}
	})
}

func TestLimits(t *testing.T) {
	long := "From: a@b\r\nX-Long: " + strings.Repeat("a", MaxHeaderSize) + "\r\n\r\nx"
	if _, err := Parse([]byte(long)); !errors.Is(err, ErrHeaderTooLong) {
		t.Errorf("over-long header: %v", err)
	}
	many := strings.Repeat("X-A: b\r\n", MaxFields+1) + "\r\nx"
	if _, err := Parse([]byte(many)); !errors.Is(err, ErrTooManyFields) {
		t.Errorf("too many fields: %v", err)
	}
	ok := strings.Repeat("X-A: b\r\n", MaxFields) + "\r\nx"
	if _, err := Parse([]byte(ok)); err != nil {
		t.Errorf("at the field limit: %v", err)
	}
	name := strings.Repeat("X", maxNameLen+1) + ": v\r\n\r\n"
	if _, err := Parse([]byte(name)); !errors.Is(err, ErrBadField) {
		t.Errorf("over-long field name: %v", err)
	}
}

func TestSanitize(t *testing.T) {
	raw := seeds(t)["thunderbird.eml"]
	m, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	body := string(m.Body)
	m.Sanitize("alpha.example", time.Now())
	out := string(m.Bytes())
	for _, gone := range []string{"Received", "laptop.home", "192.168.1.20", "User-Agent", "Thunderbird", "X-Mailer", "X-Originating-IP", "-0700", "Bcc", "carol"} {
		if strings.Contains(out, gone) {
			t.Errorf("sanitized mail still contains %q:\n%s", gone, out)
		}
	}
	if got := m.Get("Date"); got != "Mon, 02 Jan 2006 22:04:05 +0000" {
		t.Errorf("Date = %q, want the same instant in UTC", got)
	}
	if got := m.Get("Message-ID"); got != "<1234.5678@alpha.example>" {
		t.Errorf("Message-ID = %q", got)
	}
	if m.Get("Subject") != "folded subject line" || m.Get("From") != "Alice <alice@alpha.example>" {
		t.Errorf("kept fields changed: %q %q", m.Get("Subject"), m.Get("From"))
	}
	if string(m.Body) != body || !strings.HasSuffix(out, "\r\n\r\n"+body) {
		t.Errorf("body changed")
	}
	if _, err := mail.ReadMessage(strings.NewReader(out)); err != nil {
		t.Errorf("sanitized mail does not read as a mail: %v", err)
	}

	// Missing Date and Message-ID are added; LF line endings are kept.
	m, _ = Parse(seeds(t)["lf.eml"])
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600))
	m.Sanitize("alpha.example", now)
	if m.Get("Date") != "Fri, 02 Jan 2026 02:04:05 +0000" || !strings.HasSuffix(m.Get("Message-ID"), "@alpha.example>") {
		t.Errorf("added Date %q Message-ID %q", m.Get("Date"), m.Get("Message-ID"))
	}
	if strings.Contains(string(m.Bytes()), "\r") {
		t.Errorf("LF mail got CR")
	}
}

func TestDSN(t *testing.T) {
	h := []byte("From: alice@alpha.example\r\nTo: bob@beta.example\r\nSubject: hi\r\n\r\n")
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	raw := DSN(Bounce{To: "alice@alpha.example", ReportingDomain: "alpha.example", Arrival: now.Add(-time.Hour), Subject: "hi", Headers: h,
		Failure: Failure{Recipient: "bob@beta.example", Status: StatusFor("fragment 0: unknown recipient"), Reason: "fragment 0: unknown recipient"}}, now)
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if msg.Header.Get("To") != "<alice@alpha.example>" || msg.Header.Get("Subject") != "Undelivered mail: hi" {
		t.Errorf("header: %v", msg.Header)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("content type %q %v", mt, err)
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	var types []string
	var status string
	for {
		p, err := r.NextPart()
		if err != nil {
			break
		}
		types = append(types, p.Header.Get("Content-Type"))
		b := new(bytes.Buffer)
		b.ReadFrom(p)
		if p.Header.Get("Content-Type") == "message/delivery-status" {
			status = b.String()
		}
	}
	if strings.Join(types, ",") != "text/plain; charset=utf-8,message/delivery-status,text/rfc822-headers" {
		t.Errorf("parts %q", types)
	}
	for _, want := range []string{"Final-Recipient: rfc822; bob@beta.example", "Action: failed", "Status: 5.1.1", "unknown recipient"} {
		if !strings.Contains(status, want) {
			t.Errorf("delivery-status lacks %q:\n%s", want, status)
		}
	}
	if _, err := Parse(raw); err != nil {
		t.Errorf("DSN does not parse: %v", err)
	}
}

// Each failure's human text says what happened, to whom and what to do, without the engine's
// words (fragment numbers), for the reasons the engine gives.
func TestExplain(t *testing.T) {
	for reason, want := range map[string]string{
		"fragment 0: unknown recipient":                     "could not be delivered: the provider beta.example\nhas no user \"bob\".\n\nCheck the address",
		"fragment 2: recipient over quota":                  "could not be delivered: the mailbox of \"bob\"\nat beta.example is full.\n\nSend it again later",
		"fragment 1: message too large":                     "could not be delivered: it is larger than the\nprovider beta.example or the mixnet accepts.\n\nSend it again with fewer",
		"fragment 4 not acknowledged after 8 transmissions": "could not be delivered: the provider beta.example\nnever confirmed receiving it",
		"no provider serves beta.example in epoch 7":        "could not be delivered: no provider in the\nmixnet serves the domain beta.example.\n\nCheck the domain",
		"fragment 3: refused as malformed":                  "could not be delivered:\nrefused as malformed.\n\nSend the mail again later, or reach bob another way",
	} {
		text := strings.Join(Explain(Failure{Recipient: "bob@beta.example", Status: StatusFor(reason), Reason: reason}), "\n")
		if !strings.HasPrefix(text, "Your mail to <bob@beta.example> ") || !strings.Contains(text, want) || strings.Contains(text, "fragment") {
			t.Errorf("%q explained as\n%s\nwant it to contain\n%s", reason, text, want)
		}
	}
}

func TestStatusFor(t *testing.T) {
	for reason, want := range map[string]string{
		"fragment 2: unknown recipient":                     "5.1.1",
		"fragment 0: recipient over quota":                  "5.2.2",
		"fragment 4 not acknowledged after 8 transmissions": "5.4.7",
		"something else":                                    "5.0.0",
	} {
		if got := StatusFor(reason); got != want {
			t.Errorf("StatusFor(%q) = %q, want %q", reason, got, want)
		}
	}
}

// A mail the mail program encrypted itself is recognized, so that it is not encrypted again:
// PGP/MIME, S/MIME, and inline PGP at the start of any body line; a quoted or mid-line marker
// is not a PGP message.
func TestEncrypted(t *testing.T) {
	for raw, want := range map[string]bool{
		"From: a@b\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=x\r\n\r\n--x--\r\n": true,
		"From: a@b\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\nMIIB\r\n":                        true,
		"From: a@b\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQEM\r\n-----END PGP MESSAGE-----\r\n":                           true,
		"From: a@b\r\n\r\nHi,\r\n\r\n-----BEGIN PGP MESSAGE-----\r\nhQEM\r\n-----END PGP MESSAGE-----\r\n":                    true,
		"From: a@b\r\n\r\nplain text\r\n":                                    false,
		"From: a@b\r\n\r\n> -----BEGIN PGP MESSAGE-----\r\n":                 false,
		"From: a@b\r\nSubject: -----BEGIN PGP MESSAGE-----\r\n\r\nplain\r\n": false,
	} {
		m, err := Parse([]byte(raw))
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Encrypted(); got != want {
			t.Errorf("Encrypted() = %v, want %v for %q", got, want, raw)
		}
	}
}
