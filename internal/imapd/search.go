package imapd

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
)

func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (_ *imap.SearchData, err error) {
	defer s.guard("SEARCH", &err)()
	var all []target
	for i, m := range s.view.msgs {
		if !m.gone {
			all = append(all, target{seq: uint32(i + 1), uid: m.uid})
		}
	}
	seqOf := make(map[uint32]uint32, len(all))
	for _, t := range all {
		seqOf[t.uid] = t.seq
	}
	needBody := criteriaNeedBody(criteria)
	data := &imap.SearchData{}
	var seqs imap.SeqSet
	var uids imap.UIDSet
	ctx := searchContext{nSeq: uint32(len(s.view.msgs))}
	if len(s.view.msgs) > 0 {
		ctx.maxUID = s.view.msgs[len(s.view.msgs)-1].uid
	}
	rest := uidsOf(all)
	for len(rest) > 0 {
		msgs, err := s.srv.store.Read(s.user, s.view.name, rest, needBody, fetchBatchBytes)
		if err != nil {
			return nil, s.storeErr(err)
		}
		if len(msgs) == 0 {
			break
		}
		last := msgs[len(msgs)-1].UID
		for len(rest) > 0 && rest[0] <= last {
			rest = rest[1:]
		}
		for i := range msgs {
			if j, ok := s.view.index(msgs[i].UID); ok && s.view.msgs[j].recent {
				// NEW, OLD and RECENT look for \Recent, which the store does not keep.
				msgs[i].Flags = append(msgs[i].Flags, `\Recent`)
			}
			m := &searchMsg{seq: seqOf[msgs[i].UID], msg: &msgs[i]}
			if !ctx.match(criteria, m) {
				continue
			}
			num := m.seq
			if kind == imapserver.NumKindUID {
				num = m.msg.UID
				uids.AddNum(imap.UID(num))
			} else {
				seqs.AddNum(num)
			}
			if data.Min == 0 || num < data.Min {
				data.Min = num
			}
			data.Max = max(data.Max, num)
			data.Count++
		}
	}
	if kind == imapserver.NumKindUID {
		data.All = uids
	} else {
		data.All = seqs
	}
	return data, nil
}

func criteriaNeedBody(c *imap.SearchCriteria) bool {
	if len(c.Header) > 0 || len(c.Body) > 0 || len(c.Text) > 0 || !c.SentSince.IsZero() || !c.SentBefore.IsZero() {
		return true
	}
	for i := range c.Not {
		if criteriaNeedBody(&c.Not[i]) {
			return true
		}
	}
	for i := range c.Or {
		if criteriaNeedBody(&c.Or[i][0]) || criteriaNeedBody(&c.Or[i][1]) {
			return true
		}
	}
	return false
}

type searchContext struct {
	nSeq   uint32 // the "*" of sequence sets
	maxUID uint32 // the "*" of UID sets
}

type searchMsg struct {
	seq uint32
	msg *mailstore.Message

	parsed bool
	header textproto.Header
	body   []byte // after the header

	text    []byte // the decoded text of the body's parts, once bodyText has run
	hasText bool
}

func (m *searchMsg) parse() {
	if m.parsed {
		return
	}
	m.parsed = true
	if h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(m.msg.Body))); err == nil {
		m.header = h
	}
	m.body = bodyOf(m.msg.Body)
}

// bodyOf returns what follows the first empty line (the end of the header), or nothing.
func bodyOf(raw []byte) []byte {
	for i := 0; i < len(raw); {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			return nil
		}
		if line := bytes.TrimSuffix(raw[i:i+j], []byte("\r")); len(line) == 0 {
			return raw[i+j+1:]
		}
		i += j + 1
	}
	return nil
}

func containsFold(haystack []byte, needle string) bool {
	return bytes.Contains(bytes.ToLower(haystack), bytes.ToLower([]byte(needle)))
}

// dayOf is the calendar date of t in its own zone, as the midnight UTC of that day: SEARCH
// compares dates "disregarding time and timezone" (RFC 3501 section 6.4.4).
func dayOf(t time.Time) time.Time {
	y, mo, d := t.Date()
	return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
}

func (c *searchContext) match(cr *imap.SearchCriteria, m *searchMsg) bool {
	for _, set := range cr.SeqNum {
		if !inRanges(m.seq, c.nSeq, len(set), func(j int) (uint32, uint32) { return set[j].Start, set[j].Stop }) {
			return false
		}
	}
	for _, set := range cr.UID {
		if !inRanges(m.msg.UID, c.maxUID, len(set), func(j int) (uint32, uint32) { return uint32(set[j].Start), uint32(set[j].Stop) }) {
			return false
		}
	}
	if !cr.Since.IsZero() && dayOf(m.msg.Date).Before(dayOf(cr.Since)) {
		return false
	}
	if !cr.Before.IsZero() && !dayOf(m.msg.Date).Before(dayOf(cr.Before)) {
		return false
	}
	if !cr.SentSince.IsZero() || !cr.SentBefore.IsZero() {
		m.parse()
		sent, err := (&mail.Header{Header: gomessage.Header{Header: m.header}}).Date()
		if err != nil || sent.IsZero() {
			return false
		}
		if !cr.SentSince.IsZero() && dayOf(sent).Before(dayOf(cr.SentSince)) {
			return false
		}
		if !cr.SentBefore.IsZero() && !dayOf(sent).Before(dayOf(cr.SentBefore)) {
			return false
		}
	}
	for _, hf := range cr.Header {
		m.parse()
		if !headerMatches(m.header.Values(hf.Key), hf.Key, hf.Value) {
			return false
		}
	}
	for _, b := range cr.Body {
		if !containsFold(m.bodyText(), b) {
			return false
		}
	}
	for _, t := range cr.Text {
		m.parse()
		if !containsFold(m.headerText(), t) && !containsFold(m.bodyText(), t) {
			return false
		}
	}
	for _, f := range cr.Flag {
		if !mailstore.HasFlag(m.msg.Flags, string(f)) {
			return false
		}
	}
	for _, f := range cr.NotFlag {
		if mailstore.HasFlag(m.msg.Flags, string(f)) {
			return false
		}
	}
	if cr.Larger > 0 && m.msg.Size <= cr.Larger {
		return false
	}
	if cr.Smaller > 0 && m.msg.Size >= cr.Smaller {
		return false
	}
	for i := range cr.Not {
		if c.match(&cr.Not[i], m) {
			return false
		}
	}
	for _, or := range cr.Or {
		if !c.match(&or[0], m) && !c.match(&or[1], m) {
			return false
		}
	}
	return true
}

// addressFields are the header fields SEARCH FROM, TO, CC and BCC look at: they are matched
// against the parsed addresses (display name and address), so that a comment, a route or an
// encoded name in the raw field does not hide an address (issue 16).
var addressFields = map[string]bool{"from": true, "to": true, "cc": true, "bcc": true, "sender": true, "reply-to": true}

// headerMatches reports whether one of the field's values contains want, after decoding RFC 2047
// encoded words; an empty want matches any message that has the field (RFC 3501 section 6.4.4).
func headerMatches(values []string, key, want string) bool {
	if want == "" {
		return len(values) > 0
	}
	for _, v := range values {
		if addressFields[strings.ToLower(key)] {
			for _, a := range parseAddressList(v) {
				var text string
				switch {
				case a.Mailbox == "" && a.Host == "": // end of a group
					continue
				case a.Host == "": // start of a group: its name
					text = a.Name + " " + a.Mailbox
				default:
					text = a.Name + " <" + a.Mailbox + "@" + a.Host + ">"
				}
				if containsFold([]byte(text), want) {
					return true
				}
			}
		}
		if containsFold([]byte(decodeWords(v)), want) {
			return true
		}
	}
	return false
}

// headerText is the header with its encoded words decoded, for SEARCH TEXT.
func (m *searchMsg) headerText() []byte {
	var b bytes.Buffer
	for f := m.header.Fields(); f.Next(); {
		b.WriteString(f.Key())
		b.WriteString(": ")
		b.WriteString(decodeWords(f.Value()))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// maxSearchText bounds the decoded text kept for one message while searching it; the message
// itself is at most the literal limit, and decoding never makes it much larger than that.
const maxSearchText = 64 << 20

// bodyText returns the text of the message's body as a reader sees it: every text part with its
// transfer encoding (base64, quoted-printable) undone and its charset converted to UTF-8, so that
// SEARCH BODY and TEXT find words inside encoded parts (issue 16). A body that does not parse as
// MIME is searched as it is.
func (m *searchMsg) bodyText() []byte {
	if m.hasText {
		return m.text
	}
	m.hasText = true
	m.parse()
	e, err := gomessage.Read(bytes.NewReader(m.msg.Body))
	if e == nil {
		m.text = m.body
		return m.text
	}
	_ = err // an unknown charset or encoding: the part is read as it is
	var out bytes.Buffer
	werr := e.Walk(func(_ []int, part *gomessage.Entity, err error) error {
		if err != nil || part.MultipartReader() != nil {
			return nil
		}
		mt, _, _ := part.Header.ContentType()
		if mt != "" && !strings.HasPrefix(mt, "text/") && mt != "message/rfc822" {
			return nil
		}
		if _, err := io.Copy(&out, io.LimitReader(part.Body, int64(maxSearchText-out.Len()))); err != nil {
			return nil
		}
		out.WriteByte('\n')
		return nil
	})
	if werr != nil || out.Len() == 0 {
		out.Write(m.body)
	}
	m.text = out.Bytes()
	return m.text
}
