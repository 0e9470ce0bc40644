package imapd

import (
	"errors"
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
)

// view is what the client knows of its selected mailbox: message i has sequence number i+1.
type view struct {
	name        string
	id          uint64 // the store's mailbox ID, which survives RENAME
	readOnly    bool
	uidValidity uint32
	uidNext     uint32
	msgs        []viewMsg
	maxUID      uint32 // highest UID the client has been told about
	version     uint64 // the store's change counter when the view was last compared
	// pendingExpunge is set when messages vanished while expunges could not be reported.
	pendingExpunge bool
	// claimed are UID ranges [from, to) this session has claimed as \Recent (ClaimRecent) and
	// not yet seen in a snapshot; recentFrom stands in for them in a read-only view, which
	// claims nothing (RFC 3501 section 2.3.2: only a SELECT takes \Recent away from others).
	claimed    [][2]uint32
	recentFrom uint32
	// keywords are the keywords the client has been told of in FLAGS: a FETCH never shows a
	// keyword before FLAGS has named it (RFC 3501 section 7.2.6).
	keywords []string
}

type viewMsg struct {
	uid    uint32
	flags  []string
	gone   bool // expunged by someone else, not yet reported to the client
	recent bool // \Recent in this session
}

// target is a message a command refers to.
type target struct {
	seq uint32
	uid uint32
}

func (s *session) openView(mailbox string, readOnly bool) (*view, error) {
	version, _ := s.srv.store.Changes(s.user)
	snap, err := s.srv.store.Snapshot(s.user, mailbox)
	if err != nil {
		return nil, err
	}
	v := &view{name: snap.Name, id: snap.ID, readOnly: readOnly, uidValidity: snap.UIDValidity, uidNext: snap.UIDNext, version: version}
	if err := s.claimRecent(v, snap.RecentUID); err != nil {
		return nil, err
	}
	v.msgs = make([]viewMsg, len(snap.Messages))
	for i, m := range snap.Messages {
		v.msgs[i] = viewMsg{uid: m.UID, flags: m.Flags, recent: v.isRecent(m.UID)}
		v.maxUID = m.UID
		v.addKeywords(m.Flags)
	}
	v.dropClaims()
	return v, nil
}

// claimRecent takes the mailbox's not yet seen messages as this session's \Recent ones (a
// read-write view) or notes which they are (a read-only one).
func (s *session) claimRecent(v *view, recentUID uint32) error {
	if v.readOnly {
		v.recentFrom = recentUID
		return nil
	}
	from, to, err := s.srv.store.ClaimRecent(s.user, v.name, v.id)
	if err != nil {
		return err
	}
	if from < to {
		v.claimed = append(v.claimed, [2]uint32{from, to})
	}
	return nil
}

func (v *view) isRecent(uid uint32) bool {
	if v.readOnly {
		return uid >= v.recentFrom
	}
	for _, c := range v.claimed {
		if uid >= c[0] && uid < c[1] {
			return true
		}
	}
	return false
}

// dropClaims forgets the claims whose messages have all been added to the view.
func (v *view) dropClaims() {
	v.claimed = slices.DeleteFunc(v.claimed, func(c [2]uint32) bool { return c[1]-1 <= v.maxUID })
}

// numRecent counts the view's \Recent messages.
func (v *view) numRecent() uint32 {
	var n uint32
	for _, m := range v.msgs {
		if m.recent && !m.gone {
			n++
		}
	}
	return n
}

// addKeywords adds the keywords among flags to those announced and reports whether there were
// new ones (then FLAGS must be sent again).
func (v *view) addKeywords(flags []string) bool {
	added := false
	for _, f := range flags {
		if strings.HasPrefix(f, "\\") || slices.ContainsFunc(v.keywords, func(k string) bool { return strings.EqualFold(k, f) }) {
			continue
		}
		v.keywords = append(v.keywords, f)
		added = true
	}
	if added {
		slices.Sort(v.keywords)
	}
	return added
}

// mailboxFlags are the flags of the FLAGS response: the system flags and the keywords in use.
func (v *view) mailboxFlags() []imap.Flag {
	return toFlags(append(mailstore.SystemFlags(), v.keywords...))
}

// flagsOf returns a message's flags as the client sees them, with \Recent.
func (v *view) flagsOf(uid uint32, flags []string) []imap.Flag {
	out := toFlags(flags)
	if i, ok := v.index(uid); ok && v.msgs[i].recent {
		out = append(out, imap.Flag(`\Recent`))
	}
	return out
}

func (v *view) index(uid uint32) (int, bool) {
	return slices.BinarySearchFunc(v.msgs, uid, func(m viewMsg, uid uint32) int { return int(int64(m.uid) - int64(uid)) })
}

// sync compares the view with the store and reports the differences to the client.
func (s *session) sync(w *imapserver.UpdateWriter, allowExpunge bool) error {
	v := s.view
	version, _ := s.srv.store.Changes(s.user)
	if version == v.version && !(allowExpunge && v.pendingExpunge) {
		return nil
	}
	snap, err := s.srv.store.Snapshot(s.user, v.name)
	if errors.Is(err, mailstore.ErrNoSuchMailbox) {
		// Renamed (by this session or another): follow it under its new name.
		if name, nerr := s.srv.store.MailboxName(s.user, v.id); nerr == nil {
			v.name = name
			snap, err = s.srv.store.Snapshot(s.user, name)
		}
	}
	if errors.Is(err, mailstore.ErrNoSuchMailbox) || (err == nil && (snap.UIDValidity != v.uidValidity || snap.ID != v.id)) {
		// The mailbox was deleted (or INBOX renamed, which leaves a new, empty INBOX): the
		// client's view can no longer be kept consistent (RFC 3501 section 2.3.1.1).
		s.log.Info("selected mailbox vanished, closing connection", "mailbox", v.name)
		return s.conn.Bye("Selected mailbox was deleted")
	}
	if err != nil {
		return s.storeErr(err)
	}
	current := make(map[uint32][]string, len(snap.Messages))
	newKeywords := false
	for _, m := range snap.Messages {
		current[m.UID] = m.Flags
		if v.addKeywords(m.Flags) {
			newKeywords = true
		}
	}
	if newKeywords {
		if err := w.WriteMailboxFlags(v.mailboxFlags()); err != nil {
			return err
		}
	}
	if allowExpunge {
		for i := range v.msgs {
			if _, ok := current[v.msgs[i].uid]; !ok {
				v.msgs[i].gone = true
			}
		}
		if err := v.removeGone(w.WriteExpunge); err != nil {
			return err
		}
	} else {
		for i := range v.msgs {
			if _, ok := current[v.msgs[i].uid]; !ok && !v.msgs[i].gone {
				v.msgs[i].gone = true
				v.pendingExpunge = true
			}
		}
	}
	for i := range v.msgs {
		m := &v.msgs[i]
		flags, ok := current[m.uid]
		if !ok || m.gone || slices.Equal(flags, m.flags) {
			continue
		}
		m.flags = flags
		if err := w.WriteMessageFlags(uint32(i+1), imap.UID(m.uid), v.flagsOf(m.uid, flags)); err != nil {
			return err
		}
	}
	added := false
	for _, m := range snap.Messages {
		if m.UID > v.maxUID {
			if !added {
				// New messages: claim them as \Recent before another session does.
				if v.readOnly {
					v.recentFrom = snap.RecentUID
				} else if err := s.claimRecent(v, 0); err != nil {
					return s.storeErr(err)
				}
			}
			v.msgs = append(v.msgs, viewMsg{uid: m.UID, flags: m.Flags, recent: v.isRecent(m.UID)})
			v.maxUID = m.UID
			added = true
		}
	}
	v.dropClaims()
	v.uidNext = snap.UIDNext
	if added {
		if err := w.WriteNumMessages(uint32(len(v.msgs))); err != nil {
			return err
		}
		if err := w.WriteNumRecent(v.numRecent()); err != nil {
			return err
		}
	}
	v.version = version
	return nil
}

// resolve returns the messages a sequence set or UID set names, in sequence order, leaving out
// messages that are gone. "*" is the last message (RFC 3501 section 9, seq-number).
func (v *view) resolve(set imap.NumSet) []target {
	var out []target
	switch set := set.(type) {
	case imap.SeqSet:
		n := uint32(len(v.msgs))
		if n == 0 {
			return nil
		}
		for i := range v.msgs {
			seq := uint32(i + 1)
			if !v.msgs[i].gone && inRanges(seq, n, len(set), func(j int) (uint32, uint32) { return set[j].Start, set[j].Stop }) {
				out = append(out, target{seq: seq, uid: v.msgs[i].uid})
			}
		}
	case imap.UIDSet:
		if len(v.msgs) == 0 {
			return nil
		}
		last := v.msgs[len(v.msgs)-1].uid
		for i := range v.msgs {
			uid := v.msgs[i].uid
			if !v.msgs[i].gone && inRanges(uid, last, len(set), func(j int) (uint32, uint32) { return uint32(set[j].Start), uint32(set[j].Stop) }) {
				out = append(out, target{seq: uint32(i + 1), uid: uid})
			}
		}
	}
	return out
}

// inRanges reports whether x lies in one of the ranges; 0 stands for star, and a range may be
// written high to low.
func inRanges(x, star uint32, n int, rng func(int) (uint32, uint32)) bool {
	for j := range n {
		a, b := rng(j)
		if a == 0 {
			a = star
		}
		if b == 0 {
			b = star
		}
		if a > b {
			a, b = b, a
		}
		if x >= a && x <= b {
			return true
		}
	}
	return false
}

// expunge removes the given UIDs (and anything already gone) from the view, reporting each
// removal through write.
func (v *view) expunge(uids []uint32, write func(seq uint32) error) error {
	removed := make(map[uint32]bool, len(uids))
	for _, uid := range uids {
		removed[uid] = true
	}
	for i := range v.msgs {
		if removed[v.msgs[i].uid] {
			v.msgs[i].gone = true
		}
	}
	return v.removeGone(write)
}

// removeGone reports and drops the messages marked gone. Sequence numbers are reported from the
// end, so each one is still valid when the client applies it.
func (v *view) removeGone(write func(seq uint32) error) error {
	for i := len(v.msgs) - 1; i >= 0; i-- {
		if v.msgs[i].gone {
			if err := write(uint32(i + 1)); err != nil {
				return err
			}
		}
	}
	v.msgs = slices.DeleteFunc(v.msgs, func(m viewMsg) bool { return m.gone })
	v.pendingExpunge = false
	return nil
}

// setFlags records flags the client has been told about and returns the message's sequence
// number, or 0 if it is not in the view.
func (v *view) setFlags(uid uint32, flags []string) uint32 {
	i, ok := v.index(uid)
	if !ok {
		return 0
	}
	v.msgs[i].flags = flags
	return uint32(i + 1)
}

func uidsOf(targets []target) []uint32 {
	out := make([]uint32, len(targets))
	for i, t := range targets {
		out[i] = t.uid
	}
	return out
}
