package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/mail"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/panoramix-mixnet/panoramix/mailproxy/internal/config"
	"github.com/panoramix-mixnet/panoramix/mailproxy/internal/message"
	"github.com/panoramix-mixnet/panoramix/pkg/client"
)

// maxLineLength bounds one line of SMTP input (RFC 5321 allows 1000 with CRLF; go-smtp's
// default is 2000, kept here as a named limit).
const maxLineLength = 2000

// crashAfterSend, set only by tests (PANORAMIX_TEST_CRASH_AFTER_SEND=1), makes the proxy kill
// itself right after the engine committed a mail and before the 250, the window in which a mail
// program's resubmission must not become a second message (TestResubmitAfterLost250).
var crashAfterSend = os.Getenv("PANORAMIX_TEST_CRASH_AFTER_SEND") == "1"

// consensusTimeout bounds waiting for a consensus document while answering RCPT.
const consensusTimeout = 10 * time.Second

type backend struct{ p *Proxy }

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{p: b.p}, nil
}

// rcpt is one accepted recipient.
type rcpt struct {
	addr  string // user@domain, lowercase
	user  string
	dom   string
	relay bool // through the smarthost, not the mixnet
}

type session struct {
	p     *Proxy
	acct  *account
	rcpts []rcpt
}

func smtpErr(code int, enh smtp.EnhancedCode, format string, args ...any) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: enh, Message: fmt.Sprintf(format, args...)}
}

func (s *session) Reset()        { s.acct, s.rcpts = nil, nil }
func (s *session) Logout() error { return nil }

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.Reset()
	addr := strings.ToLower(from)
	a, ok := s.p.accounts[addr]
	if !ok {
		return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "Sender <%s> is not an account of this mailproxy (configured: %s); add it to the config with 'mailproxy init'", from, strings.Join(s.p.order, ", "))
	}
	s.acct = a
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.acct == nil {
		return smtpErr(503, smtp.EnhancedCode{5, 5, 1}, "Send MAIL FROM first")
	}
	addr := strings.ToLower(to)
	user, dom, ok := strings.Cut(addr, "@")
	if !ok || user == "" || dom == "" || strings.Contains(dom, "@") {
		return smtpErr(553, smtp.EnhancedCode{5, 1, 3}, "Recipient <%s> is not a user@domain address", to)
	}
	ctx, cancel := context.WithTimeout(context.Background(), consensusTimeout)
	defer cancel()
	doc, err := s.p.pki.Current(ctx)
	if err != nil {
		return smtpErr(451, smtp.EnhancedCode{4, 4, 3}, "No consensus document of the mixnet yet (%v); try again later", err)
	}
	r := rcpt{addr: addr, user: user, dom: dom}
	if _, inNet := doc.Provider(dom); !inNet {
		// A domain listed within the queue lifetime is in the mixnet, its provider away for a
		// while: a temporary failure, and never a reason to relay its mail in the clear.
		if last, recent, err := s.acct.engine.DomainSeen(dom); err != nil {
			return smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Local store error: %v", err)
		} else if recent {
			return smtpErr(451, smtp.EnhancedCode{4, 4, 4}, "Recipient domain %s is in the mixnet but no provider serves it in epoch %d (last listed %s); try again later", dom, doc.Epoch, last.UTC().Format(time.RFC3339))
		}
		if s.p.cfg.Smarthost.Address == "" {
			return smtpErr(550, smtp.EnhancedCode{5, 1, 2}, "Recipient domain %s is not in the mixnet (no provider serves it in epoch %d), and no smarthost is configured for ordinary mail", dom, doc.Epoch)
		}
		r.relay = true
	} else if err := config.ValidAddress(addr); err != nil {
		return smtpErr(553, smtp.EnhancedCode{5, 1, 3}, "Recipient <%s> cannot be addressed in the mixnet: %v", to, err)
	}
	for _, o := range s.rcpts {
		if o.addr == addr {
			return nil // listed twice: one copy
		}
	}
	s.rcpts = append(s.rcpts, r)
	return nil
}

func (s *session) Data(r io.Reader) error {
	if s.acct == nil || len(s.rcpts) == 0 {
		return smtpErr(503, smtp.EnhancedCode{5, 5, 1}, "Send MAIL FROM and RCPT TO first")
	}
	limit := s.p.cfg.SMTP.MaxMessageSize
	raw, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return se // go-smtp's own 552 for a message over MaxMessageBytes
		}
		if strings.Contains(err.Error(), "too long a line") {
			return smtpErr(554, smtp.EnhancedCode{5, 6, 0}, "Malformed message: a line is longer than %d bytes (RFC 5322 allows 998)", maxLineLength)
		}
		return smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Reading the message failed: %v", err)
	}
	if len(raw) > limit {
		return smtpErr(552, smtp.EnhancedCode{5, 3, 4}, "Message too large: the limit of this mailproxy is %d bytes", limit)
	}
	return s.p.queue(s.acct, s.rcpts, raw)
}

// queue strips the mail and commits one engine message per mixnet recipient, relays the others
// through the smarthost, and returns nil (250) only when all of that is durable.
func (p *Proxy) queue(a *account, rcpts []rcpt, raw []byte) error {
	if i := bytes.IndexByte(raw, 0); i >= 0 {
		return smtpErr(554, smtp.EnhancedCode{5, 6, 0}, "Malformed message: a NUL byte on line %d; mail may not contain NUL (RFC 5322 section 2.3)", bytes.Count(raw[:i], []byte("\n"))+1)
	}
	raw = crlf(raw)
	m, err := message.Parse(raw)
	if err != nil {
		return smtpErr(554, smtp.EnhancedCode{5, 6, 0}, "Malformed message: %v", err)
	}
	if err := asciiHeader(m); err != nil {
		return err
	}
	origID := m.Get("Message-ID")
	if !m.Has("From") {
		return smtpErr(554, smtp.EnhancedCode{5, 6, 0}, "Malformed message: no From header field")
	}
	if err := ownAuthor(m, a.cfg.Address); err != nil {
		return err
	}
	var relay []string
	for _, r := range rcpts {
		if r.relay {
			relay = append(relay, r.addr)
		}
	}
	m.Sanitize(a.cfg.Domain(), p.now())
	data := m.Bytes()
	subject := m.Get("Subject")
	headers := m.HeaderBytes()

	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	for _, r := range rcpts {
		if r.relay {
			continue
		}
		seenKey := ""
		if origID != "" {
			h := sha256.Sum256([]byte(a.cfg.Address + "\x00" + r.addr + "\x00" + origID))
			seenKey = hex.EncodeToString(h[:])
			if id, err := p.recs.seen(seenKey); err != nil {
				return smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Local store error: %v", err)
			} else if id != "" {
				p.log.Info("mail already queued: not sent again", "account", a.cfg.Address, "to", r.addr, "id", id)
				continue
			}
		}
		body, encrypted, sent := data, false, sentClear
		if m.Encrypted() {
			sent = sentAlready
		} else if key, ok := a.keyring.Lookup(r.addr); ok {
			encrypted, sent = true, sentEncrypted
			if body, err = message.EncryptPGPMIME(m, key); err != nil {
				return smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "OpenPGP encryption to <%s> failed: %v", r.addr, err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), consensusTimeout)
		// The seen key goes into the engine's own commit of the message (SendOnce): a kill
		// after that commit and before the record below (or the 250) leaves the key stored, so
		// the resubmission finds the message instead of queueing a second one.
		id, existed, err := a.engine.SendOnce(ctx, client.Destination{Domain: r.dom, Recipient: r.user}, body, []byte(seenKey))
		cancel()
		if err == nil && crashAfterSend {
			// Test hook: die like a SIGKILL in the window between the engine's commit and the 250.
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		switch {
		case errors.Is(err, client.ErrTooLarge):
			return smtpErr(552, smtp.EnhancedCode{5, 3, 4}, "Message too large for the mixnet: %v", err)
		case errors.Is(err, client.ErrDomainAway):
			return smtpErr(451, smtp.EnhancedCode{4, 4, 4}, "Recipient domain %s is in the mixnet but not served at the moment: %v; try again later", r.dom, err)
		case errors.Is(err, client.ErrUnknownDomain) || errors.Is(err, client.ErrNoService):
			return smtpErr(550, smtp.EnhancedCode{5, 1, 2}, "Recipient domain %s is not in the mixnet: %v", r.dom, err)
		case err != nil:
			return smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Could not queue the message for <%s>: %v", r.addr, err)
		}
		if existed {
			p.log.Info("mail already queued: not sent again", "account", a.cfg.Address, "to", r.addr, "id", id)
			if rec, err := p.recs.get(a.cfg.Address, id.String()); err != nil || rec != nil {
				continue // the record is there (or unreadable: the monitor rebuilds what it needs)
			}
		}
		rec := &record{Kind: kindMail, Account: a.cfg.Address, Recipient: r.addr, Subject: subject, Headers: headers,
			Accepted: p.now(), SeenKey: seenKey, Sent: sent}
		if err := p.recs.put(id.String(), rec); err != nil {
			// The mail is queued in the engine; only the bounce details are missing.
			p.log.Error("record of a queued mail not stored", "id", id, "err", err)
		}
		p.log.Info("mail queued", "account", a.cfg.Address, "to", r.addr, "id", id, "bytes", len(body), "pgp", encrypted)
	}
	if len(relay) > 0 {
		// Last, so that a refusal here leads the mail program to resubmit a mail whose mixnet
		// copies are already queued, which the seen check above recognizes. The smarthost gets
		// the mail as submitted, line ends made CRLF: it is ordinary mail, outside the mixnet.
		return p.relay(a.cfg.Address, relay, raw)
	}
	return nil
}

// How a mail left (MessageReport.Sent).
const (
	sentEncrypted = "encrypted"
	sentAlready   = "already encrypted"
	sentClear     = "clear"
)

// crlf writes every bare LF as CRLF (RFC 5321 section 2.3.8: mail lines end in CRLF), so that
// the mailbox gets the line ends IMAP clients expect whatever the mail program sent. A bare CR
// is left as it is. The result is at most twice as long as raw, which Data bounded.
func crlf(raw []byte) []byte {
	bare := 0
	for i, c := range raw {
		if c == '\n' && (i == 0 || raw[i-1] != '\r') {
			bare++
		}
	}
	if bare == 0 {
		return raw
	}
	out := make([]byte, 0, len(raw)+bare)
	for i, c := range raw {
		if c == '\n' && (i == 0 || raw[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	return out
}

// asciiHeader refuses a header with bytes above 127 (section 2): the server does not offer
// SMTPUTF8 (RFC 6531), so the header must be ASCII (RFC 5322), non-ASCII text being written as
// RFC 2047 encoded words. 8BITMIME, which the server offers, covers the body only.
func asciiHeader(m *message.Message) error {
	line := 1
	for _, f := range m.Fields {
		for _, c := range f.Raw {
			if c >= 0x80 {
				return smtpErr(554, smtp.EnhancedCode{5, 6, 7}, "Malformed message: the %s header field on line %d holds 8-bit bytes; this mailproxy does not offer SMTPUTF8, so the header must be ASCII (RFC 2047 encoded words for other text)", f.Name(), line)
			}
		}
		line += bytes.Count(f.Raw, []byte("\n"))
	}
	return nil
}

// addrParser reads From and Sender. Only the address matters, so a display name in a charset
// Go does not know is taken as it is rather than refusing the mail.
var addrParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
}}

// ownAuthor refuses a mail whose From or Sender names anyone but the account (section 2): the
// listener has no authentication, so without this whoever reaches it could put any author on
// a mail that leaves through the account's provider. From must be one field with one mailbox,
// the account's address (any case, any display name); Sender, if present, the same.
func ownAuthor(m *message.Message, account string) error {
	for _, name := range []string{"From", "Sender"} {
		n := 0
		for _, f := range m.Fields {
			if !f.Is(name) {
				continue
			}
			if n++; n > 1 {
				return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "More than one %s header field; a mail from <%s> has one, naming that address", name, account)
			}
			list, err := addrParser.ParseList(f.Value())
			if err != nil {
				return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "The %s header field %q is not an address (%v); it must be <%s>", name, f.Value(), err, account)
			}
			if len(list) != 1 || !strings.EqualFold(list[0].Address, account) {
				return smtpErr(550, smtp.EnhancedCode{5, 7, 1}, "The %s header field names %q; this mailproxy sends as <%s> only, the account of MAIL FROM", name, f.Value(), account)
			}
		}
	}
	return nil
}

// relay hands a mail for recipients outside the mixnet to the configured smarthost.
func (p *Proxy) relay(from string, to []string, raw []byte) error {
	c, err := smtp.Dial(p.cfg.Smarthost.Address)
	if err != nil {
		return smtpErr(451, smtp.EnhancedCode{4, 4, 1}, "Smarthost %s unreachable: %v", p.cfg.Smarthost.Address, err)
	}
	defer c.Close()
	if err := c.SendMail(from, to, bytes.NewReader(raw)); err != nil {
		var se *smtp.SMTPError
		if errors.As(err, &se) {
			return smtpErr(se.Code, se.EnhancedCode, "Smarthost %s refused the mail: %s", p.cfg.Smarthost.Address, se.Message)
		}
		return smtpErr(451, smtp.EnhancedCode{4, 4, 2}, "Smarthost %s: %v", p.cfg.Smarthost.Address, err)
	}
	c.Quit()
	p.log.Warn("mail relayed through the smarthost, outside the mixnet", "from", from, "to", to, "smarthost", p.cfg.Smarthost.Address)
	return nil
}
