package proxy

import (
	"bytes"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/panoramix-mixnet/panoramix/mailproxy/internal/message"
)

// submissions are the mails of testdata: ok-* are accepted for alice@alpha.example, bad-*
// refused.
func submissions(tb testing.TB) map[string][]byte {
	files, err := filepath.Glob("testdata/*.eml")
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// relayProxy is the test proxy with a smarthost that keeps what it receives: a mail to
// carol@example.org goes through the whole submission path (parse, author check, stripping)
// and out, without a consensus.
func relayProxy(tb testing.TB) (*Proxy, *sink) {
	p := newTestProxy(tb)
	sk := &sink{}
	srv := smtp.NewServer(sk)
	srv.Domain = "smarthost"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })
	p.cfg.Smarthost.Address = ln.Addr().String()
	return p, sk
}

var carol = []rcpt{{addr: "carol@example.org", user: "carol", dom: "example.org", relay: true}}

// submit queues raw from alice to carol and returns what the smarthost received (nil if
// nothing). A refusal is always an SMTP reply (the mail program gets a code and a text), and a
// refused mail goes nowhere.
func submit(tb testing.TB, p *Proxy, sk *sink, raw []byte) ([]byte, error) {
	sk.mu.Lock()
	sk.from, sk.to, sk.data = "", nil, nil
	sk.mu.Unlock()
	err := p.queue(p.accounts["alice@alpha.example"], carol, raw)
	sk.mu.Lock()
	defer sk.mu.Unlock()
	if err != nil {
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code < 400 || se.Code > 599 {
			tb.Fatalf("refusal is not an SMTP reply: %v", err)
		}
		if sk.data != nil {
			tb.Fatalf("refused (%v) but relayed", err)
		}
		return nil, err
	}
	if sk.from != "alice@alpha.example" || len(sk.to) != 1 || sk.to[0] != "carol@example.org" || sk.data == nil {
		tb.Fatalf("accepted, but the smarthost got from %q to %q", sk.from, sk.to)
	}
	return sk.data, nil
}

func TestSubmissionSeeds(t *testing.T) {
	seeds := submissions(t)
	ok, bad := 0, 0
	p, sk := relayProxy(t)
	for name, raw := range seeds {
		_, err := submit(t, p, sk, raw)
		switch {
		case strings.HasPrefix(name, "bad-"):
			bad++
			if err == nil {
				t.Errorf("%s: accepted", name)
			}
		default:
			ok++
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	if ok == 0 || bad == 0 {
		t.Fatalf("testdata has %d good and %d bad submissions; want both", ok, bad)
	}
}

// FuzzSubmission: whatever a local program submits as alice, it is refused with an SMTP reply
// and goes nowhere, or it goes out naming alice, and no one else, as its author, with CRLF
// line ends, no NUL and an ASCII header.
func FuzzSubmission(f *testing.F) {
	for _, b := range submissions(f) {
		f.Add(b)
	}
	p, sk := relayProxy(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := submit(t, p, sk, raw)
		if err != nil {
			return
		}
		if bytes.IndexByte(out, 0) >= 0 || bytes.Contains(bytes.ReplaceAll(out, []byte("\r\n"), nil), []byte("\n")) {
			t.Fatalf("relayed mail holds a NUL or a bare LF: %q", out)
		}
		m, err := message.Parse(out)
		if err != nil {
			t.Fatalf("relayed mail does not parse: %v", err)
		}
		if err := asciiHeader(m); err != nil {
			t.Fatalf("relayed mail has an 8-bit header: %v", err)
		}
		if err := ownAuthor(m, "alice@alpha.example"); err != nil {
			t.Fatalf("relayed mail names another author: %v", err)
		}
	})
}
