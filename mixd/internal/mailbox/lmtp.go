package mailbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// LMTPConfig says where the LMTP server is.
type LMTPConfig struct {
	// Network is "tcp" (Addr is host:port) or "unix" (Addr is a socket path).
	Network, Addr string
	// Domain is the recipient domain: user is delivered to user@Domain.
	Domain string
	// Timeout bounds one whole LMTP exchange (dial, commands, data); default 1 minute.
	Timeout time.Duration
}

// defaultLMTPTimeout is long enough for a server that fsyncs a large message, short enough that
// a hung server does not stall the outbox for long.
const defaultLMTPTimeout = time.Minute

// lmtpBackend hands messages to an LMTP server (RFC 2033), one connection per message: the
// service delivers at the rate messages complete, which is far below what reconnecting costs.
type lmtpBackend struct {
	cfg LMTPConfig

	mu    sync.Mutex
	users map[string]userAnswer // recent UserExists answers
}

// userAnswer is a cached answer of the server about a user.
type userAnswer struct {
	exists bool
	until  time.Time
}

// Recent answers about users are kept for userCacheTTL, so that the first fragments of many
// messages (or fragments addressed to names that do not exist, which anyone can send) do not
// each cost a connection to the server. At most userCacheSize answers are kept.
const (
	userCacheTTL  = 30 * time.Second
	userCacheSize = 10000
)

// NewLMTPBackend returns a Backend that hands each message to the LMTP server of cfg with an
// empty envelope sender (the mixnet hides the sender; the message's From header says who it is)
// and recipient user@Domain. Deliver returns nil only after the server's per-recipient reply to
// DATA is 2xx, which for an LMTP server means the message is in the user's mailbox. The server
// adds its trace header fields (Return-Path, Delivered-To, Received) in front of the message;
// lines ending in a bare LF are sent with CRLF, as SMTP requires.
//
// UserExists asks the server with MAIL FROM:<> and RCPT TO (no message), so a user is known if
// the server would take mail for it now; a server that is down makes it fail, and the service
// then takes the fragment anyway and lets delivery find out.
func NewLMTPBackend(cfg LMTPConfig) (Backend, error) {
	switch cfg.Network {
	case "tcp", "unix":
	default:
		return nil, fmt.Errorf("mailbox: lmtp network %q: want tcp or unix", cfg.Network)
	}
	if cfg.Addr == "" {
		return nil, errors.New("mailbox: lmtp address is empty")
	}
	if cfg.Domain == "" || strings.ContainsAny(cfg.Domain, "@<> \t\r\n") {
		return nil, fmt.Errorf("mailbox: lmtp domain %q: want a domain name", cfg.Domain)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("mailbox: lmtp timeout %v is negative", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultLMTPTimeout
	}
	return &lmtpBackend{cfg: cfg, users: make(map[string]userAnswer)}, nil
}

func (b *lmtpBackend) address(user string) (string, error) {
	if user == "" || strings.ContainsAny(user, "@<> \t\r\n") {
		return "", fmt.Errorf("%w: %q is not a mail local part", ErrUnknownUser, user)
	}
	return user + "@" + b.cfg.Domain, nil
}

// session dials the server and runs fn on the client; the whole exchange ends at the deadline.
func (b *lmtpBackend) session(ctx context.Context, fn func(c *smtp.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, b.cfg.Network, b.cfg.Addr)
	if err != nil {
		return fmt.Errorf("mailbox: lmtp dial: %w", err)
	}
	deadline, _ := ctx.Deadline()
	// A cancelled context (shutdown) interrupts whatever the client is waiting for.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	c.CommandTimeout = time.Until(deadline)
	c.SubmissionTimeout = time.Until(deadline)
	if err := fn(c); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("mailbox: lmtp: %w (%w)", ctx.Err(), err)
		}
		return err
	}
	// The message is delivered once DATA is answered; a failing QUIT changes nothing.
	_ = c.Quit()
	return nil
}

func (b *lmtpBackend) Deliver(ctx context.Context, user string, msg []byte) error {
	rcpt, err := b.address(user)
	if err != nil {
		return err
	}
	return b.session(ctx, func(c *smtp.Client) error {
		if err := c.Mail("", &smtp.MailOptions{Size: int64(len(msg))}); err != nil {
			return lmtpError("MAIL", err)
		}
		if err := c.Rcpt(rcpt, nil); err != nil {
			return lmtpError("RCPT", err)
		}
		w, err := c.Data()
		if err != nil {
			return lmtpError("DATA", err)
		}
		if _, err := w.Write(msg); err != nil {
			return fmt.Errorf("mailbox: lmtp: write message: %w", err)
		}
		// The dot writer turns bare LF into CRLF, escapes leading dots and ends an unfinished
		// last line before the terminating ".".
		if _, err := w.CloseWithLMTPResponse(); err != nil {
			// One recipient: its reply is the only one.
			var perRcpt smtp.LMTPDataError
			if errors.As(err, &perRcpt) {
				for _, e := range perRcpt {
					return lmtpError("DATA reply", e)
				}
			}
			return lmtpError("DATA reply", err)
		}
		return nil
	})
}

func (b *lmtpBackend) UserExists(ctx context.Context, user string) (bool, error) {
	rcpt, err := b.address(user)
	if err != nil {
		return false, nil
	}
	now := time.Now()
	b.mu.Lock()
	a, ok := b.users[user]
	b.mu.Unlock()
	if ok && now.Before(a.until) {
		return a.exists, nil
	}
	exists := false
	err = b.session(ctx, func(c *smtp.Client) error {
		if err := c.Mail("", nil); err != nil {
			return lmtpError("MAIL", err)
		}
		err := c.Rcpt(rcpt, nil)
		if err != nil {
			err = lmtpError("RCPT", err)
			if errors.Is(err, ErrUnknownUser) {
				return nil
			}
			return err
		}
		exists = true
		return c.Reset()
	})
	if err != nil {
		return false, err
	}
	b.mu.Lock()
	if len(b.users) >= userCacheSize {
		clear(b.users)
	}
	b.users[user] = userAnswer{exists: exists, until: now.Add(userCacheTTL)}
	b.mu.Unlock()
	return exists, nil
}

// lmtpError classifies a server reply: 4xx and network errors are temporary, 5xx map to the
// permanent failures by their enhanced status code (RFC 3463) or, without one, their basic code.
func lmtpError(stage string, err error) error {
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code/100 != 5 {
		return fmt.Errorf("mailbox: lmtp %s: %w", stage, err)
	}
	var kind error
	ec := se.EnhancedCode
	switch {
	case ec[0] == 5 && ec[1] == 1:
		kind = ErrUnknownUser // 5.1.x: bad destination mailbox or address
	case ec[0] == 5 && ec[1] == 2 && ec[2] == 2:
		kind = ErrOverQuota // 5.2.2: mailbox full
	case ec[0] == 5 && (ec[1] == 2 && ec[2] == 3 || ec[1] == 3 && ec[2] == 4):
		kind = ErrTooLarge // 5.2.3 message length exceeds limit, 5.3.4 message too big
	case ec[0] == 5:
		kind = ErrRejected
	case se.Code == 550 && stage == "RCPT", se.Code == 551, se.Code == 553:
		kind = ErrUnknownUser
	case se.Code == 552:
		kind = ErrOverQuota // "exceeded storage allocation"
	default:
		kind = ErrRejected
	}
	return fmt.Errorf("%w: lmtp %s: %w", kind, stage, err)
}
