package netlab

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"os"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

// Submit hands one mail to u's mailproxy over SMTP on u's machine, as u's mail program does,
// and returns nil only for the 250 that makes the mail accepted.
func (l *Lab) Submit(ctx context.Context, u *User, to []string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := dialNS(ctx, u.Host.NS, net.JoinHostPort("127.0.0.1", SMTPPort))
	if err != nil {
		return fmt.Errorf("netlab: mailproxy of %s: %w", u.Address, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	c := smtp.NewClient(conn)
	if err := c.SendMail(u.Address, to, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("netlab: submitting to the mailproxy of %s: %w", u.Address, err)
	}
	return c.Quit()
}

// Mailbox is an IMAP session of a user with the provider's built-in IMAP server, from the user's
// machine across the lab's network (the relay's delay and the loss apply), over STARTTLS with
// the certificate verified against the lab's CA.
type Mailbox struct {
	c *imapclient.Client
}

// OpenMailbox logs u in at its provider and selects INBOX.
func (l *Lab) OpenMailbox(ctx context.Context, u *User) (*Mailbox, error) {
	conn, err := dialNS(ctx, u.Host.NS, net.JoinHostPort(u.Provider.Addr, IMAPPort))
	if err != nil {
		return nil, fmt.Errorf("netlab: IMAP of %s: %w", u.Provider.Name, err)
	}
	pem, err := os.ReadFile(l.CA.CertFile)
	if err != nil {
		conn.Close()
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	c, err := imapclient.NewStartTLS(conn, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: roots, ServerName: "imap." + u.Provider.Domain}})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("netlab: IMAP STARTTLS with %s: %w", u.Provider.Name, err)
	}
	name, _, _ := strings.Cut(u.Address, "@")
	if err := c.Login(name, u.Password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("netlab: IMAP login of %s: %w", name, err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		c.Close()
		return nil, err
	}
	return &Mailbox{c: c}, nil
}

// Count is the number of messages in INBOX (IMAP STATUS).
func (m *Mailbox) Count() (int, error) {
	d, err := m.c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		return 0, err
	}
	return int(*d.NumMessages), nil
}

// Message is one mail as read from a mailbox.
type Message struct {
	MessageID string
	Body      []byte
}

// All fetches every message of INBOX (BODY.PEEK[]).
func (m *Mailbox) All() ([]Message, error) {
	n, err := m.Count()
	if err != nil || n == 0 {
		return nil, err
	}
	sec := &imap.FetchItemBodySection{Peek: true}
	msgs, err := m.c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
	if err != nil {
		return nil, err
	}
	var out []Message
	for _, msg := range msgs {
		raw := msg.FindBodySection(sec)
		pm, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("netlab: message %d: %w", msg.SeqNum, err)
		}
		var body bytes.Buffer
		body.ReadFrom(pm.Body)
		out = append(out, Message{MessageID: pm.Header.Get("Message-ID"), Body: body.Bytes()})
	}
	return out, nil
}

// Close logs out.
func (m *Mailbox) Close() error {
	return errors.Join(m.c.Logout().Wait(), m.c.Close())
}
