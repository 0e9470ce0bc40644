package message

import (
	"bytes"
	"flag"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

// updateSeeds regenerates testdata/bob.asc and testdata/bob-secret.asc (only on purpose):
// go test ./mailproxy/internal/message -run TestPGPSeeds -update-seeds
var updateSeeds = flag.Bool("update-seeds", false, "rewrite the OpenPGP key seeds in testdata")

// goodSeeds are the mails of testdata that parse.
func goodSeeds(t testing.TB) [][]byte {
	var out [][]byte
	for name, b := range seeds(t) {
		if !strings.HasPrefix(name, "bad-") {
			out = append(out, b)
		}
	}
	return out
}

// reasons are engine failure reasons (testdata/reasons.txt, one a line): what a provider's
// refusal or the engine's give-up puts into a bounce.
func reasons(t testing.TB) []string {
	b, err := os.ReadFile("testdata/reasons.txt")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// keySeeds are the armored keyrings of testdata (*.asc).
func keySeeds(t testing.TB) map[string][]byte {
	files, err := filepath.Glob("testdata/*.asc")
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

// bobSecret is the test-only secret key of testdata/bob-secret.asc (bob@beta.example).
func bobSecret(t testing.TB) *openpgp.Entity {
	b, err := os.ReadFile("testdata/bob-secret.asc")
	if err != nil {
		t.Fatal(err)
	}
	list, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
	if err != nil || len(list) != 1 {
		t.Fatalf("testdata/bob-secret.asc: %d keys, %v", len(list), err)
	}
	return list[0]
}

func TestFuzzSeedsNotEmpty(t *testing.T) {
	if len(goodSeeds(t)) == 0 || len(reasons(t)) < 3 {
		t.Fatal("no mail or reason seeds in testdata")
	}
	good, bad := 0, 0
	for name, b := range keySeeds(t) {
		_, err := ParseKeyring(b)
		switch {
		case strings.HasPrefix(name, "bad-") && err == nil:
			t.Errorf("%s parsed", name)
		case strings.HasPrefix(name, "bad-"):
			bad++
		case err != nil:
			t.Errorf("%s: %v", name, err)
		default:
			good++
		}
	}
	if good == 0 || bad == 0 {
		t.Fatalf("testdata has %d good and %d bad keyrings; want both", good, bad)
	}
}

func TestPGPSeeds(t *testing.T) {
	if !*updateSeeds {
		kr, err := ParseKeyring(keySeeds(t)["bob.asc"])
		if err != nil || kr.Len() != 1 {
			t.Fatalf("testdata/bob.asc: %v", err)
		}
		if e, ok := kr.Lookup("bob@beta.example"); !ok || e.PrimaryKey.KeyId != bobSecret(t).PrimaryKey.KeyId {
			t.Fatal("testdata/bob.asc is not the public half of testdata/bob-secret.asc")
		}
		return
	}
	e, err := openpgp.NewEntity("Bob", "test key, never use", "bob@beta.example", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, write := range map[string]func(io.Writer) error{
		"bob.asc":        e.Serialize,
		"bob-secret.asc": func(w io.Writer) error { return e.SerializePrivate(w, nil) },
	} {
		kind := openpgp.PublicKeyType
		if strings.Contains(name, "secret") {
			kind = openpgp.PrivateKeyType
		}
		var b bytes.Buffer
		w, _ := armor.Encode(&b, kind, nil)
		if err := write(w); err != nil {
			t.Fatal(err)
		}
		w.Close()
		b.WriteString("\n")
		if err := os.WriteFile(filepath.Join("testdata", name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzSanitize: whatever a mail program submits, the stripped mail parses and re-encodes to
// itself, carries none of the identifying fields, exactly one Date in UTC and one Message-ID
// on the sender's domain, keeps the body, and stripping it again changes nothing.
func FuzzSanitize(f *testing.F) {
	for _, b := range goodSeeds(f) {
		f.Add(b)
	}
	now := time.Date(2026, 3, 3, 17, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse(raw)
		if err != nil {
			return
		}
		body := bytes.Clone(m.Body)
		m.Sanitize("alpha.example", now)
		out := m.Bytes()
		m2, err := Parse(out)
		if err != nil {
			t.Fatalf("stripped mail does not parse: %v", err)
		}
		if !bytes.Equal(m2.Bytes(), out) {
			t.Fatal("stripped mail does not re-encode to itself")
		}
		if !bytes.Equal(m2.Body, body) {
			t.Fatal("body changed")
		}
		for _, name := range identifying {
			if m2.Has(name) {
				t.Fatalf("%s kept", name)
			}
		}
		count := func(name string) int {
			n := 0
			for _, fl := range m2.Fields {
				if fl.Is(name) {
					n++
				}
			}
			return n
		}
		if count("Date") != 1 || count("Message-ID") != 1 {
			t.Fatalf("%d Date and %d Message-ID fields", count("Date"), count("Message-ID"))
		}
		if d, err := time.Parse(DateLayout, m2.Get("Date")); err != nil || d.Format(DateLayout) != m2.Get("Date") {
			t.Fatalf("Date %q is not in UTC in the layout %q (%v)", m2.Get("Date"), DateLayout, err)
		}
		if id := m2.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@alpha.example>") || strings.Count(id, "@") != 1 {
			t.Fatalf("Message-ID %q", id)
		}
		m2.Sanitize("alpha.example", now.Add(time.Hour))
		if !bytes.Equal(m2.Bytes(), out) {
			t.Fatalf("stripping twice changed the mail:\n%q\n%q", out, m2.Bytes())
		}
	})
}

// FuzzDSN: a bounce carries the failed mail's subject and header (from the sender's mail
// program) and the failure reason (from a remote provider's refusal). Whatever they hold, the
// notification has exactly its own header fields (nothing injected), is a multipart/report whose
// parts all read, its human part starts by naming the recipient whose mail failed, and its
// delivery-status part names the status and recipient.
func FuzzDSN(f *testing.F) {
	rs := reasons(f)
	for i, b := range goodSeeds(f) {
		m, _ := Parse(b)
		f.Add(m.Get("Subject"), m.HeaderBytes(), rs[i%len(rs)])
	}
	for _, r := range rs {
		f.Add("hi", []byte(nil), r)
	}
	now := time.Date(2026, 3, 3, 17, 0, 0, 0, time.UTC)
	header := []string{"From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted", "MIME-Version", "Content-Type"}
	f.Fuzz(func(t *testing.T, subject string, headers []byte, reason string) {
		raw := DSN(Bounce{To: "alice@alpha.example", ReportingDomain: "alpha.example", Arrival: now.Add(-time.Hour), Subject: subject, Headers: headers,
			Failure: Failure{Recipient: "bob@beta.example", Status: StatusFor(reason), Reason: reason}}, now)
		m, err := Parse(raw)
		if err != nil {
			t.Fatalf("bounce does not parse: %v", err)
		}
		var names []string
		for _, fl := range m.Fields {
			names = append(names, fl.Name())
		}
		if strings.Join(names, ",") != strings.Join(header, ",") {
			t.Fatalf("bounce header fields %q", names)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/report" {
			t.Fatalf("content type %q: %v", mt, err)
		}
		r := multipart.NewReader(msg.Body, params["boundary"])
		var types []string
		var status, human string
		for {
			p, err := r.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("part %d: %v", len(types), err)
			}
			b, err := io.ReadAll(p)
			if err != nil {
				t.Fatalf("part %d: %v", len(types), err)
			}
			types = append(types, p.Header.Get("Content-Type"))
			switch p.Header.Get("Content-Type") {
			case "message/delivery-status":
				status = string(b)
			case "text/plain; charset=utf-8":
				human = string(b)
			}
		}
		if !strings.HasPrefix(human, "Your mail to <bob@beta.example> could not be delivered") {
			t.Fatalf("human part does not say what failed for whom:\n%s", human)
		}
		want := []string{"text/plain; charset=utf-8", "message/delivery-status"}
		if len(headers) > 0 {
			want = append(want, "text/rfc822-headers")
		}
		if strings.Join(types, ",") != strings.Join(want, ",") {
			t.Fatalf("parts %q, want %q", types, want)
		}
		for _, w := range []string{"\r\nFinal-Recipient: rfc822; bob@beta.example\r\n", "\r\nStatus: " + StatusFor(reason) + "\r\n"} {
			if !strings.Contains(status, w) {
				t.Fatalf("delivery-status lacks %q:\n%s", w, status)
			}
		}
	})
}

// FuzzParseKeyring: a keyring file holds other people's public keys. Parsing never panics, and
// every key it keeps has an encryption key, found under the address it is kept for.
func FuzzParseKeyring(f *testing.F) {
	for _, b := range keySeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, armored []byte) {
		kr, err := ParseKeyring(armored)
		if err != nil {
			return
		}
		for addr, e := range kr.byAddr {
			if _, ok := e.EncryptionKey(timeNow()); !ok {
				t.Fatalf("key kept for %s cannot encrypt", addr)
			}
			if got, ok := kr.Lookup(strings.ToUpper(addr)); !ok || got != e {
				t.Fatalf("key for %s not found by its address", addr)
			}
		}
	})
}

// FuzzEncryptPGPMIME: for any mail that is not encrypted already, the PGP/MIME mail parses and
// re-encodes to itself, shows no byte of the body in clear, and bob's key decrypts it to the
// MIME fields and the body with CRLF line ends.
func FuzzEncryptPGPMIME(f *testing.F) {
	for _, b := range goodSeeds(f) {
		f.Add(b)
	}
	bob := bobSecret(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := Parse(raw)
		if err != nil || m.Encrypted() {
			return
		}
		out, err := EncryptPGPMIME(m, bob)
		if err != nil {
			t.Fatal(err)
		}
		om, err := Parse(out)
		if err != nil {
			t.Fatalf("encrypted mail does not parse: %v", err)
		}
		if !bytes.Equal(om.Bytes(), out) || !om.Encrypted() {
			t.Fatal("encrypted mail does not re-encode, or is not multipart/encrypted")
		}
		msg, err := mail.ReadMessage(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		_, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if err != nil {
			t.Fatal(err)
		}
		r := multipart.NewReader(msg.Body, params["boundary"])
		if _, err := r.NextPart(); err != nil {
			t.Fatal(err)
		}
		p2, err := r.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		blk, err := armor.Decode(p2)
		if err != nil {
			t.Fatal(err)
		}
		md, err := openpgp.ReadMessage(blk.Body, openpgp.EntityList{bob}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		inner, err := io.ReadAll(md.UnverifiedBody)
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		hasType := false
		for _, fl := range m.Fields {
			if isMIMEField(fl) {
				want.Write(crlf(fl.Raw))
				hasType = hasType || fl.Is("Content-Type")
			}
		}
		if !hasType {
			want.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
		}
		want.WriteString("\r\n")
		want.Write(crlf(m.Body))
		if !bytes.Equal(inner, want.Bytes()) {
			t.Fatalf("decrypted %q, want %q", inner, want.Bytes())
		}
	})
}
