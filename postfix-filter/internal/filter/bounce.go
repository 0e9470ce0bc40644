package filter

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-smtp"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
)

// maxKept bounds the Subject and Message-ID kept for a bounce.
const maxKept = 200

// clip makes s safe for a header field of the bounce (no control characters, valid UTF-8)
// and at most n bytes long.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	for len(s) > n {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}

// Statuses is what Watch needs from the engine (client.Engine implements it).
type Statuses interface {
	List() ([]client.Status, error)
	Forget(id client.MessageID) error
}

// Watch looks at the engine's messages every interval until ctx ends: a message delivered (or
// sent) is logged and forgotten; a message that failed is bounced to its sender through the
// re-injection smtpd, then forgotten. A bounce that cannot be handed over is tried again at the
// next look.
func (s *Server) Watch(ctx context.Context, st Statuses, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		list, err := st.List()
		if err != nil {
			s.log.Error("engine status", "err", err)
			continue
		}
		for _, m := range list {
			id := hex.EncodeToString(m.ID[:])
			switch m.State {
			case client.StateDelivered, client.StateSent:
				s.log.Info("message delivered through the mixnet", "id", id, "domain", m.Destination.Domain, "transmissions", m.Transmissions)
			case client.StateFailed:
				s.log.Warn("message through the mixnet failed", "id", id, "domain", m.Destination.Domain, "reason", m.Reason)
				if err := s.bounce(id, m.Reason); err != nil {
					s.log.Warn("bounce not handed over; trying again later", "id", id, "err", err)
					continue
				}
			default:
				continue
			}
			s.m.finished.WithLabelValues(string(m.State)).Inc()
			if err := s.cfg.Dedup.DeleteOutgoing(id); err != nil {
				s.log.Error("dedup store", "err", err)
				continue
			}
			if err := st.Forget(m.ID); err != nil {
				s.log.Error("engine forget", "id", id, "err", err)
			}
		}
	}
}

// bounce tells the sender of message id that the mixnet failed to deliver it.
func (s *Server) bounce(id, reason string) error {
	o, ok, err := s.cfg.Dedup.Outgoing(id)
	if err != nil {
		return err
	}
	if !ok || o.From == "" {
		s.log.Info("no bounce: the sender is empty or unknown", "id", id)
		return nil
	}
	var mid [16]byte
	rand.Read(mid[:])
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", s.cfg.Hostname)
	fmt.Fprintf(&b, "To: <%s>\r\n", clip(o.From, 320))
	fmt.Fprintf(&b, "Subject: Undelivered Mail Returned to Sender\r\n")
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%x@%s>\r\n", mid, s.cfg.Hostname)
	fmt.Fprintf(&b, "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	fmt.Fprintf(&b, "This is the PANORAMIX mail filter at %s.\r\n\r\n", s.cfg.Hostname)
	fmt.Fprintf(&b, "Your message could not be delivered through the mixnet to\r\n\r\n    <%s>: %s\r\n\r\n", clip(o.Rcpt, 320), clip(reason, 500))
	fmt.Fprintf(&b, "The message was accepted on %s.\r\n", o.Time.UTC().Format(time.RFC1123Z))
	if o.Subject != "" {
		fmt.Fprintf(&b, "Subject: %s\r\n", o.Subject)
	}
	if o.MessageID != "" {
		fmt.Fprintf(&b, "Message-ID: %s\r\n", o.MessageID)
	}
	if err := s.reinject("", &smtp.MailOptions{Body: smtp.Body8BitMIME}, []string{o.From}, b.Bytes()); err != nil {
		return err
	}
	s.m.bounces.Inc()
	return nil
}
