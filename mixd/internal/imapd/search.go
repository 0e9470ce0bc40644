package imapd

import (
	"bufio"
	"bytes"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	gomessage "github.com/emersion/go-message"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-message/textproto"

	"github.com/panoramix-mixnet/panoramix/mixd/internal/mailstore"
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
		values := m.header.Values(hf.Key)
		found := false
		for _, v := range values {
			if hf.Value == "" || containsFold([]byte(v), hf.Value) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	for _, b := range cr.Body {
		m.parse()
		if !containsFold(m.body, b) {
			return false
		}
	}
	for _, t := range cr.Text {
		if !containsFold(m.msg.Body, t) {
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
