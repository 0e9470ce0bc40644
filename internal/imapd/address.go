package imapd

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"strings"

	"github.com/emersion/go-imap/v2"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"
)

// Address lists are parsed here rather than with net/mail (through go-message), which refuses a
// whole list when one address in it does not parse and does not know groups: an ENVELOPE would
// show an empty From, and SEARCH TO would not find a group's members (issue 16). The parser
// follows RFC 5322 section 3.4 with its obsolete forms and is lenient the way mail programs are:
// what it cannot read up to the next comma is skipped, and the rest of the list is kept.

// maxAddresses bounds the addresses taken from one header field, so that a field of a million
// commas costs no more than this many entries.
const maxAddresses = 1000

// missingDomain is the host of an address written without one (as Dovecot writes it): a NIL
// host would mean the start of a group in an ENVELOPE (RFC 3501 section 7.4.2).
const missingDomain = "MISSING_DOMAIN"

// parseAddressList returns the addresses of one header field value in ENVELOPE form: a group is
// a start marker (Mailbox is the group name, Host empty), its members, and an end marker (all
// empty). Display names have their RFC 2047 encoded words decoded.
func parseAddressList(value string) []imap.Address {
	p := &addrParser{s: value}
	var out []imap.Address
	for p.i < len(p.s) && len(out) < maxAddresses {
		p.cfws()
		if p.i >= len(p.s) {
			break
		}
		if c := p.s[p.i]; c == ',' || c == ';' {
			p.i++
			continue
		}
		start := p.i
		out = p.address(out)
		if p.i == start {
			p.skipToComma() // nothing readable here: drop this entry, keep the rest
		}
	}
	return out
}

type addrParser struct {
	s       string
	i       int
	comment string // the last comment skipped by cfws
}

func (p *addrParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

// cfws skips white space and comments, remembering the last comment's text.
func (p *addrParser) cfws() {
	for p.i < len(p.s) {
		switch c := p.s[p.i]; {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			p.i++
		case c == '(':
			p.comment = p.readComment()
		default:
			return
		}
	}
}

// readComment reads a (possibly nested) comment at p.i and returns its text.
func (p *addrParser) readComment() string {
	var b strings.Builder
	depth := 0
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\\' && p.i < len(p.s):
			b.WriteByte(p.s[p.i])
			p.i++
			continue
		case c == '(':
			depth++
			if depth == 1 {
				continue
			}
		case c == ')':
			depth--
			if depth == 0 {
				return strings.TrimSpace(b.String())
			}
		}
		b.WriteByte(c)
	}
	return strings.TrimSpace(b.String())
}

func (p *addrParser) skipToComma() {
	inQuote := false
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '\\':
			p.i++
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			return
		}
		p.i++
	}
}

func isAddrSpecial(c byte) bool {
	return strings.IndexByte("()<>[]:;@\\,.\" \t\r\n", c) >= 0
}

// words reads a phrase or a local part: atoms, quoted strings and dots. It returns the phrase
// (words separated by spaces, encoded words decoded) and the local part (the words and dots
// run together).
func (p *addrParser) words() (phrase, local string, n int) {
	var ph, lp strings.Builder
	for {
		p.cfws()
		if p.i >= len(p.s) {
			break
		}
		c := p.s[p.i]
		var w string
		switch {
		case c == '"':
			w = p.quoted()
		case c == '.':
			p.i++
			ph.WriteByte('.')
			lp.WriteByte('.')
			n++
			continue
		case !isAddrSpecial(c):
			j := p.i
			for j < len(p.s) && !isAddrSpecial(p.s[j]) {
				j++
			}
			w, p.i = p.s[p.i:j], j
		default:
			return decodeWords(ph.String()), lp.String(), n
		}
		if ph.Len() > 0 && !strings.HasSuffix(ph.String(), ".") {
			ph.WriteByte(' ')
		}
		ph.WriteString(w)
		lp.WriteString(w)
		n++
	}
	return decodeWords(ph.String()), lp.String(), n
}

func (p *addrParser) quoted() string {
	var b strings.Builder
	p.i++ // the opening quote
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case '\\':
			if p.i < len(p.s) {
				b.WriteByte(p.s[p.i])
				p.i++
			}
		case '"':
			return b.String()
		case '\r', '\n':
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// domain reads a domain after '@': a dot-atom or a domain literal.
func (p *addrParser) domain() string {
	p.cfws()
	if p.peek() == '[' {
		j := strings.IndexByte(p.s[p.i:], ']')
		if j < 0 {
			d := p.s[p.i:]
			p.i = len(p.s)
			return d
		}
		d := p.s[p.i : p.i+j+1]
		p.i += j + 1
		return d
	}
	_, d, _ := p.words()
	return d
}

// address reads one mailbox or group and appends it to out.
func (p *addrParser) address(out []imap.Address) []imap.Address {
	phrase, local, _ := p.words()
	p.cfws()
	switch p.peek() {
	case ':':
		p.i++
		out = append(out, imap.Address{Mailbox: groupName(phrase)})
		for p.i < len(p.s) && len(out) < maxAddresses {
			p.cfws()
			c := p.peek()
			if c == ';' {
				p.i++
				break
			}
			if c == ',' {
				p.i++
				continue
			}
			start := p.i
			out = p.mailbox(out)
			if p.i == start {
				p.skipToComma()
			}
		}
		return append(out, imap.Address{})
	default:
		return p.mailboxFrom(out, phrase, local)
	}
}

func (p *addrParser) mailbox(out []imap.Address) []imap.Address {
	phrase, local, _ := p.words()
	p.cfws()
	return p.mailboxFrom(out, phrase, local)
}

// mailboxFrom finishes a mailbox whose leading words have been read.
func (p *addrParser) mailboxFrom(out []imap.Address, phrase, local string) []imap.Address {
	switch p.peek() {
	case '<':
		p.i++
		p.cfws()
		// An obsolete source route (@a,@b:) is the ENVELOPE's adl.
		route := ""
		if p.peek() == '@' {
			if j := strings.IndexByte(p.s[p.i:], ':'); j >= 0 {
				route = strings.Join(strings.Fields(p.s[p.i:p.i+j]), "")
				p.i += j + 1
			}
		}
		_, lp, _ := p.words()
		host := ""
		p.cfws()
		if p.peek() == '@' {
			p.i++
			host = p.domain()
		}
		p.cfws()
		if p.peek() == '>' {
			p.i++
		} else {
			p.skipToComma() // junk or no '>': this address ends at the next comma
		}
		if lp == "" && host == "" {
			return out // <>: the null return path names nobody
		}
		a := envAddr(phrase, lp, host)
		a.Route = route
		return append(out, a)
	case '@':
		p.i++
		p.comment = ""
		host := p.domain() // reads the comments after the domain too
		p.cfws()
		// A comment after a bare address is its display name (Dovecot and UW-IMAP do the same).
		return append(out, envAddr(decodeWords(p.comment), local, host))
	default:
		if local == "" {
			return out
		}
		p.comment = ""
		p.cfws()
		return append(out, envAddr(decodeWords(p.comment), local, ""))
	}
}

func envAddr(name, local, host string) imap.Address {
	if local == "" {
		local = "MISSING_MAILBOX"
	}
	if host == "" {
		host = missingDomain
	}
	return imap.Address{Name: name, Mailbox: local, Host: host}
}

func groupName(phrase string) string {
	if phrase == "" {
		return "MISSING_GROUP"
	}
	return phrase
}

var wordDecoder = mime.WordDecoder{CharsetReader: charsetReader}

// decodeWords decodes RFC 2047 encoded words; text that does not decode is kept as it is.
func decodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		return d
	}
	return s
}

// envelope builds a message's ENVELOPE (RFC 3501 section 7.4.2) from its header.
func envelope(raw []byte) *imap.Envelope {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil && h.Len() == 0 {
		return &imap.Envelope{} // a message without a parsable header has an empty envelope
	}
	mh := mail.Header{Header: gomessage.Header{Header: h}}
	date, _ := mh.Date()
	inReplyTo, _ := mh.MsgIDList("In-Reply-To")
	messageID, _ := mh.MessageID()
	list := func(k string) []imap.Address { return parseAddressList(h.Get(k)) }
	return &imap.Envelope{
		Date:      date,
		Subject:   decodeWords(h.Get("Subject")),
		From:      list("From"),
		Sender:    list("Sender"),
		ReplyTo:   list("Reply-To"),
		To:        list("To"),
		Cc:        list("Cc"),
		Bcc:       list("Bcc"),
		InReplyTo: inReplyTo,
		MessageID: messageID,
	}
}

// charsetReader decodes the character sets go-message knows (most that mail uses).
func charsetReader(name string, r io.Reader) (io.Reader, error) { return charset.Reader(name, r) }
