package imapd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-sasl"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
)

// session is one IMAP connection's state. imapserver calls its methods from one goroutine at a
// time (IDLE runs in its own goroutine, but the connection reads nothing else meanwhile).
type session struct {
	srv  *Server
	conn *imapserver.Conn
	log  *slog.Logger
	ip   string       // for the log
	key  string       // the address as the per-address limits count it (addrKey)
	tc   *trackedConn // nil if the connection did not come from Run's listeners

	mu   sync.Mutex // held by each command and by IDLE while it writes updates
	user string     // "" until authenticated
	view *view      // nil unless a mailbox is selected
}

var (
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionSASL        = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
)

func (s *Server) newSession(conn *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
	ip := "unknown"
	if host, _, err := net.SplitHostPort(conn.NetConn().RemoteAddr().String()); err == nil {
		ip = host
	}
	nc := conn.NetConn()
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	tc, _ := nc.(*trackedConn)
	return &session{srv: s, conn: conn, ip: ip, key: addrKey(conn.NetConn().RemoteAddr()), tc: tc, log: s.log.With("remote", ip)}, nil, nil
}

// guard serialises the session's commands with the IDLE goroutine (imapserver may go on to the
// next command before an ended IDLE has returned) and turns a panic in one command into a
// temporary failure of that command, so a bug triggered by one request does not drop the
// connection or the server. Use as: defer s.guard("CMD", &err)().
func (s *session) guard(cmd string, err *error) func() {
	s.mu.Lock()
	return func() {
		defer s.mu.Unlock()
		if v := recover(); v != nil {
			s.logPanic(cmd, v)
			*err = errInternal
		}
	}
}

func (s *session) logPanic(cmd string, v any) {
	s.log.Error("panic in imap command", "cmd", cmd, "user", s.user, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
}

var errInternal = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Internal error, try again later"}

// Close gives back the user's session slot. It must not touch the view, because an IDLE
// goroutine may still be finishing when the connection is torn down; it runs on the connection's
// goroutine, which is the one that set s.user.
func (s *session) Close() error {
	if s.user != "" {
		s.srv.removeSession(s.user)
	}
	return nil
}

// Login checks the password once the authGate lets it (auth.go): subject to the failure
// limits and the bounds on concurrent hash computations, refusing at once what it does not let
// through. A right password in the login cache (authcache.go) needs no hash, and a login whose
// password is being checked for another login at the moment waits for that check
// (authflight.go).
func (s *session) Login(username, password string) (err error) {
	defer s.guard("LOGIN", &err)()
	var phc string
	hit, err := s.srv.auth.cached(username, s.key, func() bool {
		var err error
		phc, err = s.srv.store.PasswordHash(username)
		return err == nil && s.srv.authCache.check(username, phc, password)
	})
	if err != nil { // locked out
		s.log.Warn("imap login refused: too many failures", "user", username)
		return err
	}
	if hit {
		return s.loggedIn(username)
	}
	if phc == "" { // no such user (or no hash to key a flight on): the full check alone
		return s.fullCheck(username, password)
	}
	f, lead := s.srv.flights.join(username, phc, password)
	switch {
	case f == nil: // the flight is full
	case lead:
		ok := false
		defer func() { s.srv.flights.finish(username, f, ok) }() // also if the check panics
		err = s.fullCheck(username, password)
		ok = err == nil
		return err
	default:
		if h := s.srv.cfg.onJoin; h != nil {
			h(username)
		}
		if f.wait() {
			return s.loggedIn(username)
		}
		// Only a success is shared: a password the leader found wrong (or did not get to check)
		// is checked again in full for this login, within the limits.
	}
	return s.fullCheck(username, password)
}

// fullCheck lets the authGate decide whether the login may check its password, checks it in
// full if so, and takes a session slot if it is right.
func (s *session) fullCheck(username, password string) error {
	done, err := s.srv.auth.begin(username, s.key)
	if err != nil {
		if err == errLockedOut {
			s.log.Warn("imap login refused: too many failures", "user", username)
		} else {
			s.log.Info("imap login refused: too many logins in progress", "user", username)
		}
		return err
	}
	if err = s.check(username, password, done); err != nil {
		if errors.Is(err, mailstore.ErrAuthFailed) {
			s.log.Info("imap login failed", "user", username, "err", err)
			return imapserver.ErrAuthFailed
		}
		s.log.Error("imap login error", "user", username, "err", err)
		return errInternal
	}
	return s.loggedIn(username)
}

// loggedIn ends a login whose password is right: it takes a session slot of the user.
func (s *session) loggedIn(username string) error {
	if !s.srv.addSession(username) {
		s.log.Warn("imap login refused: too many sessions", "user", username)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Too many sessions for this user, close one first"}
	}
	if s.tc != nil {
		s.tc.loggedIn()
	}
	s.user = username
	s.log = s.log.With("user", username)
	s.log.Info("imap login")
	return nil
}

// check verifies the password with the hash worker that done gives back, also if the check
// panics (guard turns the panic into a reply).
func (s *session) check(username, password string, done func(ok bool)) error {
	ok := false
	defer func() { done(ok) }()
	phc, err := s.srv.store.PasswordHash(username) // before the check: a change since voids the entry
	if err != nil {
		return err
	}
	// A login that waited behind the same user's first one finds its password cached by it.
	if s.srv.authCache.check(username, phc, password) {
		ok = true
		return nil
	}
	if h := s.srv.cfg.beforeHash; h != nil {
		h(username)
	}
	err = s.srv.store.Authenticate(username, password)
	ok = err == nil
	if ok {
		s.srv.authCache.put(username, phc, password)
	}
	return err
}

func (s *session) AuthenticateMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Authenticate(mech string) (sasl.Server, error) {
	if !strings.EqualFold(mech, sasl.Plain) {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Unsupported SASL mechanism, use PLAIN"}
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthorizationFailed, Text: "Acting as another user is not supported"}
		}
		return s.Login(username, password)
	}), nil
}

func (s *session) AppendLimit() uint32 { return s.srv.cfg.MaxLiteralSize }

func (s *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: mailstore.Delimiter}}}, nil
}

func (s *session) Create(mailbox string, _ *imap.CreateOptions) (err error) {
	defer s.guard("CREATE", &err)()
	return s.storeErr(s.srv.store.CreateMailbox(s.user, strings.TrimSuffix(mailbox, string(mailstore.Delimiter))))
}

func (s *session) Delete(mailbox string) (err error) {
	defer s.guard("DELETE", &err)()
	return s.storeErr(s.srv.store.DeleteMailbox(s.user, mailbox))
}

func (s *session) Rename(mailbox, newName string, _ *imap.RenameOptions) (err error) {
	defer s.guard("RENAME", &err)()
	return s.storeErr(s.srv.store.RenameMailbox(s.user, mailbox, newName))
}

func (s *session) Subscribe(mailbox string) (err error) {
	defer s.guard("SUBSCRIBE", &err)()
	return s.storeErr(s.srv.store.SetSubscribed(s.user, mailbox, true))
}

func (s *session) Unsubscribe(mailbox string) (err error) {
	defer s.guard("UNSUBSCRIBE", &err)()
	return s.storeErr(s.srv.store.SetSubscribed(s.user, mailbox, false))
}

func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) (err error) {
	defer s.guard("LIST", &err)()
	if w.LSub() {
		return s.lsub(w, ref, patterns)
	}
	if len(patterns) == 0 {
		// LIST "" "": the hierarchy delimiter and root (RFC 3501 section 6.3.8).
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: mailstore.Delimiter})
	}
	boxes, err := s.srv.store.Mailboxes(s.user)
	if err != nil {
		return s.storeErr(err)
	}
	if options.SelectSubscribed {
		return s.listSubscribed(w, ref, patterns, options, boxes)
	}
	names := make(map[string]bool, len(boxes))
	for _, b := range boxes {
		names[b.Name] = true
	}
	for _, b := range boxes {
		if !slices.ContainsFunc(patterns, func(p string) bool { return imapserver.MatchList(b.Name, mailstore.Delimiter, ref, p) }) {
			continue
		}
		if options.SelectSubscribed && !b.Subscribed {
			continue
		}
		if options.SelectSpecialUse && b.SpecialUse == "" {
			continue
		}
		data := imap.ListData{Mailbox: b.Name, Delim: mailstore.Delimiter}
		if b.SpecialUse != "" {
			data.Attrs = append(data.Attrs, imap.MailboxAttr(b.SpecialUse))
		}
		if hasChildren(b.Name, boxes) {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
		} else {
			data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
		}
		if b.Subscribed && (options.ReturnSubscribed || options.SelectSubscribed) {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		if options.ReturnStatus != nil {
			st, err := s.status(b.Name, options.ReturnStatus)
			if err == nil {
				data.Status = st
			}
		}
		if err := w.WriteList(&data); err != nil {
			return err
		}
	}
	return nil
}

// listSubscribed answers LIST (SUBSCRIBED ...) from the subscriptions (RFC 5258 section 3):
// every subscribed name the patterns match, \NonExistent if no mailbox has it, and with
// RECURSIVEMATCH also a matching name, subscribed or not, that has a subscribed descendant the
// patterns do not match, marked CHILDINFO ("SUBSCRIBED").
func (s *session) listSubscribed(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions, boxes []mailstore.MailboxInfo) error {
	subs, err := s.srv.store.Subscriptions(s.user)
	if err != nil {
		return s.storeErr(err)
	}
	matches := func(name string) bool {
		return slices.ContainsFunc(patterns, func(p string) bool { return imapserver.MatchList(name, mailstore.Delimiter, ref, p) })
	}
	byName := make(map[string]mailstore.MailboxInfo, len(boxes))
	for _, b := range boxes {
		byName[b.Name] = b
	}
	candidates := slices.Clone(subs)
	if options.SelectRecursiveMatch {
		for _, name := range subs {
			for i := len(name) - 1; i > 0; i-- {
				if name[i] == mailstore.Delimiter {
					candidates = append(candidates, name[:i])
				}
			}
		}
	}
	slices.Sort(candidates)
	candidates = slices.Compact(candidates)
	for _, name := range candidates {
		if !matches(name) {
			continue
		}
		_, subscribed := slices.BinarySearch(subs, name)
		childInfo := options.SelectRecursiveMatch && slices.ContainsFunc(subs, func(sub string) bool {
			return strings.HasPrefix(sub, name+string(mailstore.Delimiter)) && !matches(sub)
		})
		if !subscribed && !childInfo {
			continue
		}
		data := imap.ListData{Mailbox: name, Delim: mailstore.Delimiter}
		if subscribed {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		if childInfo {
			data.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
		}
		b, exists := byName[name]
		switch {
		case !exists:
			data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent)
		default:
			if b.SpecialUse != "" {
				data.Attrs = append(data.Attrs, imap.MailboxAttr(b.SpecialUse))
			}
			if hasChildren(name, boxes) {
				data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
			} else {
				data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
			}
			if options.ReturnStatus != nil {
				if st, err := s.status(name, options.ReturnStatus); err == nil {
					data.Status = st
				}
			}
		}
		if err := w.WriteList(&data); err != nil {
			return err
		}
	}
	return nil
}

// lsub answers LSUB from the subscriptions (RFC 3501 section 6.3.9): every subscribed name the
// pattern matches, and a parent that is not subscribed itself with \Noselect when the pattern
// matches it but not its subscribed descendant (as "%" does one level up).
func (s *session) lsub(w *imapserver.ListWriter, ref string, patterns []string) error {
	subs, err := s.srv.store.Subscriptions(s.user)
	if err != nil {
		return s.storeErr(err)
	}
	matches := func(name string) bool {
		return slices.ContainsFunc(patterns, func(p string) bool { return imapserver.MatchList(name, mailstore.Delimiter, ref, p) })
	}
	noselect := map[string]bool{}
	var parents []string
	for _, name := range subs {
		if matches(name) {
			continue
		}
		for i := len(name) - 1; i > 0; i-- {
			if name[i] != mailstore.Delimiter {
				continue
			}
			parent := name[:i]
			if _, subscribed := slices.BinarySearch(subs, parent); !subscribed && !noselect[parent] && matches(parent) {
				noselect[parent] = true
				parents = append(parents, parent)
			}
		}
	}
	names := append(slices.Clone(subs), parents...)
	slices.Sort(names)
	for _, name := range names {
		data := imap.ListData{Mailbox: name, Delim: mailstore.Delimiter}
		if noselect[name] {
			data.Attrs = []imap.MailboxAttr{imap.MailboxAttrNoSelect}
		} else if !matches(name) {
			continue
		}
		if err := w.WriteList(&data); err != nil {
			return err
		}
	}
	return nil
}

func hasChildren(name string, boxes []mailstore.MailboxInfo) bool {
	prefix := name + string(mailstore.Delimiter)
	return slices.ContainsFunc(boxes, func(b mailstore.MailboxInfo) bool { return strings.HasPrefix(b.Name, prefix) })
}

func (s *session) Status(mailbox string, options *imap.StatusOptions) (_ *imap.StatusData, err error) {
	defer s.guard("STATUS", &err)()
	return s.status(mailbox, options)
}

func (s *session) status(mailbox string, options *imap.StatusOptions) (*imap.StatusData, error) {
	st, err := s.srv.store.Status(s.user, mailbox)
	if err != nil {
		return nil, s.storeErr(err)
	}
	data := &imap.StatusData{Mailbox: st.Name}
	if options.NumMessages {
		data.NumMessages = &st.Messages
	}
	if options.UIDNext {
		data.UIDNext = imap.UID(st.UIDNext)
	}
	if options.UIDValidity {
		data.UIDValidity = st.UIDValidity
	}
	if options.NumUnseen {
		data.NumUnseen = &st.Unseen
	}
	if options.NumDeleted {
		data.NumDeleted = &st.Deleted
	}
	if options.Size {
		data.Size = &st.Size
	}
	if options.NumRecent {
		data.NumRecent = &st.Recent
	}
	if options.AppendLimit {
		limit := s.srv.cfg.MaxLiteralSize
		data.AppendLimit = &limit
	}
	return data, nil
}

func (s *session) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (_ *imap.AppendData, err error) {
	defer s.guard("APPEND", &err)()
	limit := int64(s.srv.cfg.MaxLiteralSize)
	if r.Size() > limit {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: fmt.Sprintf("Message larger than %d bytes", limit)}
	}
	s.srv.appendSem <- struct{}{}
	defer func() { <-s.srv.appendSem }()
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: fmt.Sprintf("Message larger than %d bytes", limit)}
	}
	validity, uid, err := s.srv.store.Append(s.user, mailbox, body, flagStrings(options.Flags), options.Time)
	if err != nil {
		if errors.Is(err, mailstore.ErrNoSuchMailbox) {
			return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox, create it first"}
		}
		return nil, s.storeErr(err)
	}
	return &imap.AppendData{UID: imap.UID(uid), UIDValidity: validity}, nil
}

func (s *session) Select(mailbox string, options *imap.SelectOptions) (_ *imap.SelectData, err error) {
	defer s.guard("SELECT", &err)()
	s.view = nil
	v, err := s.openView(mailbox, options.ReadOnly)
	if err != nil {
		return nil, s.storeErr(err)
	}
	s.view = v
	data := &imap.SelectData{
		Flags:       v.mailboxFlags(),
		NumMessages: uint32(len(v.msgs)),
		NumRecent:   v.numRecent(),
		UIDNext:     imap.UID(v.uidNext),
		UIDValidity: v.uidValidity,
	}
	if !v.readOnly {
		data.PermanentFlags = append(v.mailboxFlags(), imap.FlagWildcard)
	}
	for i, m := range v.msgs {
		if !mailstore.HasFlag(m.flags, mailstore.FlagSeen) {
			data.FirstUnseenSeqNum = uint32(i + 1)
			break
		}
	}
	return data, nil
}

func (s *session) Unselect() (err error) {
	defer s.guard("UNSELECT", &err)()
	s.view = nil
	return nil
}

func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) (err error) {
	defer s.guard("poll", &err)()
	if s.view == nil {
		return nil
	}
	return s.sync(w, allowExpunge)
}

// Idle sends changes as they happen until stop is closed.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	for {
		// Take the channel before looking, so a change made while syncing still wakes us.
		_, changed := s.srv.store.Changes(s.user)
		if err := s.idleSync(w); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-stop:
			return nil
		}
	}
}

func (s *session) idleSync(w *imapserver.UpdateWriter) (err error) {
	defer s.guard("IDLE", &err)()
	if s.view == nil {
		return nil
	}
	return s.sync(w, true)
}

func (s *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) (err error) {
	defer s.guard("EXPUNGE", &err)()
	if s.view.readOnly && uids == nil {
		// CLOSE after EXAMINE comes here too and must succeed without expunging
		// (RFC 3501 section 6.4.2); imapserver does not tell CLOSE from EXPUNGE.
		return nil
	}
	if err := s.writable(); err != nil {
		return err
	}
	var only []uint32 // nil: every \Deleted message
	if uids != nil {
		only = []uint32{}
		for _, t := range s.view.resolve(*uids) {
			only = append(only, t.uid)
		}
	}
	removed, err := s.srv.store.Expunge(s.user, s.view.name, only)
	if err != nil {
		return s.storeErr(err)
	}
	return s.view.expunge(removed, w.WriteExpunge)
}

func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, _ *imap.StoreOptions) (err error) {
	defer s.guard("STORE", &err)()
	if err := s.writable(); err != nil {
		return err
	}
	targets := s.view.resolve(numSet)
	if len(targets) == 0 {
		return nil
	}
	op := map[imap.StoreFlagsOp]mailstore.FlagOp{
		imap.StoreFlagsSet: mailstore.FlagsSet,
		imap.StoreFlagsAdd: mailstore.FlagsAdd,
		imap.StoreFlagsDel: mailstore.FlagsRemove,
	}[flags.Op]
	updated, err := s.srv.store.UpdateFlags(s.user, s.view.name, uidsOf(targets), op, flagStrings(flags.Flags))
	if err != nil {
		return s.storeErr(err)
	}
	_, isUID := numSet.(imap.UIDSet)
	// The messages' flags may also hold keywords another session set since this one's last
	// update: every keyword the FETCH replies show is announced first.
	newKeywords := s.view.addKeywords(flagStrings(flags.Flags))
	for _, m := range updated {
		newKeywords = s.view.addKeywords(m.Flags) || newKeywords
	}
	if newKeywords {
		if err := w.WriteMailboxFlags(s.view.mailboxFlags()); err != nil {
			return err
		}
	}
	for _, m := range updated {
		seq := s.view.setFlags(m.UID, m.Flags)
		if seq == 0 || flags.Silent {
			continue
		}
		rw := w.CreateMessage(seq)
		if isUID {
			rw.WriteUID(imap.UID(m.UID))
		}
		rw.WriteFlags(s.view.flagsOf(m.UID, m.Flags))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) Copy(numSet imap.NumSet, dest string) (_ *imap.CopyData, err error) {
	defer s.guard("COPY", &err)()
	targets := s.view.resolve(numSet)
	res, err := s.srv.store.Copy(s.user, s.view.name, uidsOf(targets), dest)
	if err != nil {
		return nil, s.copyErr(err)
	}
	return copyData(res), nil
}

func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) (err error) {
	defer s.guard("MOVE", &err)()
	if err := s.writable(); err != nil {
		return err
	}
	targets := s.view.resolve(numSet)
	res, err := s.srv.store.Move(s.user, s.view.name, uidsOf(targets), dest)
	if err != nil {
		return s.copyErr(err)
	}
	if err := w.WriteCopyData(copyData(res)); err != nil {
		return err
	}
	return s.view.expunge(res.Source, w.WriteExpunge)
}

func copyData(res mailstore.CopyResult) *imap.CopyData {
	data := &imap.CopyData{UIDValidity: res.UIDValidity}
	for i := range res.Source {
		data.SourceUIDs.AddNum(imap.UID(res.Source[i]))
		data.DestUIDs.AddNum(imap.UID(res.Dest[i]))
	}
	return data
}

func (s *session) copyErr(err error) error {
	if errors.Is(err, mailstore.ErrNoSuchMailbox) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such destination mailbox, create it first"}
	}
	return s.storeErr(err)
}

func (s *session) writable() error {
	if s.view.readOnly {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Mailbox is read-only (EXAMINE)"}
	}
	return nil
}

// storeErr turns a store error into an IMAP reply that tells the user what is wrong. Unexpected
// errors are logged and reported as a temporary failure.
func (s *session) storeErr(err error) error {
	if err == nil {
		return nil
	}
	text := strings.TrimPrefix(err.Error(), "mailstore: ")
	no := func(code imap.ResponseCode) error {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
	}
	switch {
	case errors.Is(err, mailstore.ErrNoSuchMailbox):
		return no(imap.ResponseCodeNonExistent)
	case errors.Is(err, mailstore.ErrMailboxExists):
		return no(imap.ResponseCodeAlreadyExists)
	case errors.Is(err, mailstore.ErrOverQuota):
		return no(imap.ResponseCodeOverQuota)
	case errors.Is(err, mailstore.ErrTooLarge):
		return no(imap.ResponseCodeTooBig)
	case errors.Is(err, mailstore.ErrTooManyMailbox), errors.Is(err, mailstore.ErrUIDsExhausted):
		return no(imap.ResponseCodeLimit)
	case errors.Is(err, mailstore.ErrInvalidName), errors.Is(err, mailstore.ErrInvalidFlag), errors.Is(err, mailstore.ErrCannotDelete):
		return no(imap.ResponseCodeCannot)
	}
	var imapErr *imap.Error
	if errors.As(err, &imapErr) {
		return err
	}
	s.log.Error("imap store error", "err", err)
	return errInternal
}

func flagStrings(flags []imap.Flag) []string {
	out := make([]string, len(flags))
	for i, f := range flags {
		out[i] = string(f)
	}
	return out
}

func toFlags(flags []string) []imap.Flag {
	out := make([]imap.Flag, len(flags))
	for i, f := range flags {
		out[i] = imap.Flag(f)
	}
	return out
}
