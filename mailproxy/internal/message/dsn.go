package message

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Failure describes one recipient a mail could not be delivered to.
type Failure struct {
	// Recipient is the address (user@domain).
	Recipient string
	// Status is the RFC 3463 enhanced status code ("5.1.1").
	Status string
	// Reason is the human explanation (the engine's failure reason).
	Reason string
}

// Bounce is what a delivery status notification says.
type Bounce struct {
	// To is the sender of the failed mail, who receives the notification.
	To string
	// ReportingDomain is the sender's mail domain; the notification is "from" its
	// postmaster as written by the local mailproxy.
	ReportingDomain string
	// Arrival is when mailproxy accepted the mail.
	Arrival time.Time
	Failure Failure
	// Subject is the failed mail's subject, for the notification's own subject.
	Subject string
	// Headers is the failed mail's header section (sanitized), returned as
	// text/rfc822-headers; empty when not known.
	Headers []byte
}

// StatusFor maps an engine failure reason to an RFC 3463 status code.
func StatusFor(reason string) string {
	r := strings.ToLower(reason)
	switch {
	case strings.Contains(r, "unknown recipient"):
		return "5.1.1"
	case strings.Contains(r, "quota"):
		return "5.2.2"
	case strings.Contains(r, "too large") || strings.Contains(r, "too long"):
		return "5.3.4"
	case strings.Contains(r, "not acknowledged"):
		return "5.4.7" // delivery time expired
	case strings.Contains(r, "no provider") || strings.Contains(r, "left the consensus") || strings.Contains(r, "not in the consensus"):
		return "5.1.2"
	default:
		return "5.0.0"
	}
}

// DSN writes a delivery status notification (RFC 3464): a multipart/report with a human
// explanation, the machine-readable message/delivery-status part and the failed mail's header.
// Lines end in CRLF.
func DSN(b Bounce, now time.Time) []byte {
	var r [12]byte
	rand.Read(r[:])
	boundary := "dsn-" + hex.EncodeToString(r[:])
	rand.Read(r[:])
	msgID := hex.EncodeToString(r[:])
	var w strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&w, format+"\r\n", args...) }
	subject := "Undelivered mail: " + oneLine(b.Subject)
	if b.Subject == "" {
		subject = "Undelivered mail"
	}
	line("From: Mail Delivery System <MAILER-DAEMON@%s>", b.ReportingDomain)
	line("To: <%s>", b.To)
	line("Subject: %s", subject)
	line("Date: %s", now.UTC().Format(DateLayout))
	line("Message-ID: <%s@%s>", msgID, b.ReportingDomain)
	line("Auto-Submitted: auto-replied")
	line("MIME-Version: 1.0")
	line("Content-Type: multipart/report; report-type=delivery-status; boundary=\"%s\"", boundary)
	line("")
	line("This is a delivery status notification (RFC 3464).")
	line("")
	line("--%s", boundary)
	line("Content-Type: text/plain; charset=utf-8")
	line("Content-Transfer-Encoding: 8bit")
	line("")
	line("Your mailproxy could not deliver your mail through the mixnet to")
	line("")
	line("    <%s>", b.Failure.Recipient)
	line("")
	line("Reason: %s", oneLine(b.Failure.Reason))
	line("")
	line("The mail was accepted at %s and has been given up.", b.Arrival.UTC().Format(DateLayout))
	line("Its header follows; `mailproxy status` shows the details.")
	line("")
	line("--%s", boundary)
	line("Content-Type: message/delivery-status")
	line("")
	line("Reporting-MTA: dns; mailproxy.%s", b.ReportingDomain)
	line("Arrival-Date: %s", b.Arrival.UTC().Format(DateLayout))
	line("")
	line("Final-Recipient: rfc822; %s", b.Failure.Recipient)
	line("Action: failed")
	line("Status: %s", b.Failure.Status)
	line("Diagnostic-Code: x-panoramix; %s", oneLine(b.Failure.Reason))
	line("Last-Attempt-Date: %s", now.UTC().Format(DateLayout))
	line("")
	if len(b.Headers) > 0 {
		line("--%s", boundary)
		line("Content-Type: text/rfc822-headers")
		line("")
		h := strings.ReplaceAll(string(b.Headers), "\r\n", "\n")
		h = strings.TrimRight(h, "\n")
		for _, l := range strings.Split(h, "\n") {
			line("%s", l)
		}
		line("")
	}
	line("--%s--", boundary)
	return []byte(w.String())
}

// oneLine keeps a value on one header or text line.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == '\t' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
