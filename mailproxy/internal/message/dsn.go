package message

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
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
	for _, l := range Explain(b.Failure) {
		line("%s", l)
	}
	line("")
	line("You sent it at %s; your mailproxy has given up on it.", b.Arrival.UTC().Format(DateLayout))
	line("Its header follows.")
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

// fragmentPrefix is the engine's "fragment N: " before a provider's answer, which means
// nothing to the person reading a bounce.
var fragmentPrefix = regexp.MustCompile(`^fragment [0-9]+:? *`)

// Explain is the human part of a bounce: what happened, to whom, and what to do, in the user's
// words, by the failure's status (section 6 of docs/spec/mailproxy.md). The engine's own
// reason stays in the delivery-status part's Diagnostic-Code.
func Explain(f Failure) []string {
	rcpt := oneLine(f.Recipient)
	user, dom := rcpt, rcpt
	if i := strings.LastIndexByte(rcpt, '@'); i >= 0 {
		user, dom = rcpt[:i], rcpt[i+1:]
	}
	head := "Your mail to <" + rcpt + "> could not be delivered: "
	switch f.Status {
	case "5.1.1":
		return []string{head + "the provider " + dom,
			"has no user \"" + user + "\".",
			"",
			"Check the address for a typing error, or ask " + user + " another way for the right one."}
	case "5.2.2":
		return []string{head + "the mailbox of \"" + user + "\"",
			"at " + dom + " is full.",
			"",
			"Send it again later, or ask " + user + " another way to make room."}
	case "5.3.4":
		return []string{head + "it is larger than the",
			"provider " + dom + " or the mixnet accepts.",
			"",
			"Send it again with fewer or smaller attachments, or share large files another way."}
	case "5.4.7":
		return []string{head + "the provider " + dom,
			"never confirmed receiving it, although your mailproxy sent it again and again until",
			"it gave up after its queue_lifetime (5 days unless configured otherwise).",
			"",
			"The provider may be down or out of the mixnet's reach. Send the mail again later; if",
			"this keeps happening, tell the provider's operator (`mailproxy status` shows how often",
			"it was sent)."}
	case "5.1.2":
		return []string{head + "no provider in the",
			"mixnet serves the domain " + dom + ".",
			"",
			"Check the domain of the address. Mail to addresses outside the mixnet needs a",
			"smarthost in mailproxy's configuration ([smarthost] address)."}
	}
	reason := fragmentPrefix.ReplaceAllString(oneLine(f.Reason), "")
	return []string{strings.TrimSuffix(head, " "),
		reason + ".",
		"",
		"Send the mail again later, or reach " + user + " another way; `mailproxy status` shows",
		"the details."}
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
