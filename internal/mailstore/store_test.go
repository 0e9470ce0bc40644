package mailstore

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/passwd"
)

func openTest(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mail.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func mustUser(t *testing.T, s *Store, name string, quota int64) {
	t.Helper()
	if err := s.CreateUser(name, quota); err != nil {
		t.Fatal(err)
	}
}

func msg(i int) []byte {
	return fmt.Appendf(nil, "From: a@alpha.example\r\nTo: bob@beta.example\r\nSubject: message %d\r\n\r\nbody %d\r\n", i, i)
}

func TestUsers(t *testing.T) {
	s, _ := openTest(t)
	mustUser(t, s, "bob", 1000)
	mustUser(t, s, "alice", 0)
	if err := s.CreateUser("bob", 1); !errors.Is(err, ErrUserExists) {
		t.Errorf("duplicate user: %v", err)
	}
	for _, bad := range []string{"", "Bob", "-x", "a b", "a/b", strings.Repeat("a", MaxUserNameSize+1)} {
		if err := s.CreateUser(bad, 0); !errors.Is(err, ErrInvalidName) {
			t.Errorf("CreateUser(%q): %v, want ErrInvalidName", bad, err)
		}
	}
	users, err := s.Users()
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[0].Name != "alice" || users[1].Name != "bob" || users[1].Quota != 1000 || users[1].HasPassword {
		t.Errorf("Users() = %+v", users)
	}
	boxes, err := s.Mailboxes("bob")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range boxes {
		got = append(got, b.Name+"="+b.SpecialUse)
	}
	if want := []string{"INBOX=", `Sent=\Sent`, `Trash=\Trash`}; !slices.Equal(got, want) {
		t.Errorf("default mailboxes %v, want %v", got, want)
	}
	if err := s.DeleteUser("bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.User("bob"); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("User after delete: %v", err)
	}
	if _, err := s.Deliver("bob", Inbox, msg(1), nil, time.Time{}); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("Deliver to deleted user: %v", err)
	}
	// The name can be reused, with nothing left over.
	mustUser(t, s, "bob", 0)
	if snap, _ := s.Snapshot("bob", Inbox); len(snap.Messages) != 0 {
		t.Errorf("re-created user has %d messages", len(snap.Messages))
	}
}

func TestAuthenticate(t *testing.T) {
	s, _ := openTest(t)
	mustUser(t, s, "bob", 0)
	if err := s.Authenticate("bob", ""); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("user without password: %v", err)
	}
	h, err := passwd.HashWithParams(rand.Reader, "s3cret", passwd.Params{MemoryKiB: 64, Time: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetPassword("bob", "not a hash"); err == nil {
		t.Error("SetPassword accepted a malformed hash")
	}
	if err := s.SetPassword("bob", h); err != nil {
		t.Fatal(err)
	}
	if err := s.Authenticate("bob", "s3cret"); err != nil {
		t.Errorf("right password: %v", err)
	}
	if err := s.Authenticate("bob", "s3creT"); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("wrong password: %v", err)
	}
	calls := 0
	s.verify = func(phc, pw string) error { calls++; return passwd.Verify(phc, pw) }
	if err := s.Authenticate("nobody", "s3cret"); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("unknown user: %v", err)
	}
	if calls != 1 {
		t.Errorf("unknown user: %d hash verifications, want 1 (timing must not reveal unknown names)", calls)
	}
	if u, _ := s.User("bob"); !u.HasPassword {
		t.Error("HasPassword false after SetPassword")
	}
}

func TestDeliverDurable(t *testing.T) {
	s, path := openTest(t)
	mustUser(t, s, "bob", 0)
	date := time.Date(2026, 3, 1, 12, 30, 0, 0, time.FixedZone("", 3600))
	var uids []uint32
	for i := range 3 {
		uid, err := s.Deliver("bob", Inbox, msg(i), []string{`\flagged`, "$Label1"}, date)
		if err != nil {
			t.Fatal(err)
		}
		uids = append(uids, uid)
	}
	if !slices.Equal(uids, []uint32{1, 2, 3}) {
		t.Errorf("UIDs %v, want 1 2 3", uids)
	}
	before, _ := s.Snapshot("bob", Inbox)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	after, err := s2.Snapshot("bob", Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if after.UIDValidity != before.UIDValidity || after.UIDNext != 4 || len(after.Messages) != 3 {
		t.Fatalf("after reopen: %+v, before %+v", after, before)
	}
	got, err := s2.Read("bob", Inbox, []uint32{3, 1, 2, 99}, true, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("Read returned %d messages", len(got))
	}
	for i, m := range got {
		if m.UID != uint32(i+1) || !bytes.Equal(m.Body, msg(i)) || m.Size != int64(len(msg(i))) {
			t.Errorf("message %d: uid %d body %q", i, m.UID, m.Body)
		}
		if !slices.Equal(m.Flags, []string{"$Label1", `\Flagged`}) {
			t.Errorf("message %d flags %q", i, m.Flags)
		}
		if !m.Date.Equal(date) {
			t.Errorf("message %d date %v, want %v", i, m.Date, date)
		}
		if _, off := m.Date.Zone(); off != 3600 {
			t.Errorf("message %d zone offset %d, want 3600", i, off)
		}
	}
	// A new delivery after reopening continues the UID sequence.
	if uid, err := s2.Deliver("bob", Inbox, msg(9), nil, time.Time{}); err != nil || uid != 4 {
		t.Errorf("Deliver after reopen: uid %d, %v", uid, err)
	}
}

func TestReadBudget(t *testing.T) {
	s, _ := openTest(t)
	mustUser(t, s, "bob", 0)
	for i := range 5 {
		s.Deliver("bob", Inbox, msg(i), nil, time.Time{})
	}
	got, err := s.Read("bob", Inbox, []uint32{1, 2, 3, 4, 5}, true, 1)
	if err != nil || len(got) != 1 {
		t.Fatalf("Read with a 1-byte budget returned %d messages, %v; want exactly 1", len(got), err)
	}
	got, _ = s.Read("bob", Inbox, []uint32{1, 2, 3, 4, 5}, false, 1)
	if len(got) != 5 || got[0].Body != nil {
		t.Errorf("Read without bodies: %d messages", len(got))
	}
}

func TestFlagsAndExpunge(t *testing.T) {
	s, _ := openTest(t)
	mustUser(t, s, "bob", 0)
	for i := range 4 {
		s.Deliver("bob", Inbox, msg(i), nil, time.Time{})
	}
	if _, err := s.UpdateFlags("bob", Inbox, []uint32{1, 3}, FlagsAdd, []string{`\Deleted`, `\SEEN`}); err != nil {
		t.Fatal(err)
	}
	got, err := s.UpdateFlags("bob", Inbox, []uint32{3}, FlagsRemove, []string{`\seen`})
	if err != nil || len(got) != 1 || !slices.Equal(got[0].Flags, []string{`\Deleted`}) {
		t.Fatalf("remove: %+v %v", got, err)
	}
	got, _ = s.UpdateFlags("bob", Inbox, []uint32{4}, FlagsSet, []string{"Junk", "junk", `\Recent`})
	if !slices.Equal(got[0].Flags, []string{"Junk"}) {
		t.Errorf("set: %q", got[0].Flags)
	}
	for _, bad := range [][]string{{`\Bogus`}, {"a b"}, {"a(b"}, {strings.Repeat("k", MaxFlagSize+1)}, manyFlags(MaxFlagsPerMessage + 1)} {
		if _, err := s.UpdateFlags("bob", Inbox, []uint32{1}, FlagsAdd, bad); !errors.Is(err, ErrInvalidFlag) {
			t.Errorf("flags %q: %v, want ErrInvalidFlag", bad, err)
		}
	}
	// Expunge limited to UID 1 and 2 removes only 1 (2 is not \Deleted).
	removed, err := s.Expunge("bob", Inbox, []uint32{1, 2})
	if err != nil || !slices.Equal(removed, []uint32{1}) {
		t.Fatalf("UID EXPUNGE: %v %v", removed, err)
	}
	removed, _ = s.Expunge("bob", Inbox, nil)
	if !slices.Equal(removed, []uint32{3}) {
		t.Fatalf("EXPUNGE: %v", removed)
	}
	snap, _ := s.Snapshot("bob", Inbox)
	var uids []uint32
	for _, m := range snap.Messages {
		uids = append(uids, m.UID)
	}
	if !slices.Equal(uids, []uint32{2, 4}) {
		t.Errorf("left %v, want 2 4", uids)
	}
	// UIDs are never reused.
	if uid, _ := s.Deliver("bob", Inbox, msg(5), nil, time.Time{}); uid != 5 {
		t.Errorf("next UID %d, want 5", uid)
	}
	u, _ := s.User("bob")
	if want := int64(len(msg(1)) + len(msg(3)) + len(msg(5))); u.Used != want {
		t.Errorf("used %d bytes, want %d", u.Used, want)
	}
}

func manyFlags(n int) []string {
	var f []string
	for i := range n {
		f = append(f, fmt.Sprintf("k%d", i))
	}
	return f
}

func TestCopyMove(t *testing.T) {
	s, _ := openTest(t)
	mustUser(t, s, "bob", 0)
	for i := range 3 {
		s.Deliver("bob", Inbox, msg(i), []string{fmt.Sprintf("k%d", i)}, time.Time{})
	}
	res, err := s.Copy("bob", Inbox, []uint32{3, 1, 7}, "Trash")
	if err != nil {
		t.Fatal(err)
	}
	trash, _ := s.Snapshot("bob", "Trash")
	if !slices.Equal(res.Source, []uint32{1, 3}) || !slices.Equal(res.Dest, []uint32{1, 2}) || res.UIDValidity != trash.UIDValidity {
		t.Errorf("copy result %+v", res)
	}
	got, _ := s.Read("bob", "Trash", []uint32{1, 2}, true, 1<<20)
	if len(got) != 2 || !bytes.Equal(got[1].Body, msg(2)) || !slices.Equal(got[1].Flags, []string{"k2"}) {
		t.Errorf("copied messages %+v", got)
	}
	res, err = s.Move("bob", Inbox, []uint32{2}, "Sent")
	if err != nil || !slices.Equal(res.Dest, []uint32{1}) {
		t.Fatalf("move: %+v %v", res, err)
	}
	inbox, _ := s.Snapshot("bob", Inbox)
	if len(inbox.Messages) != 2 || inbox.Messages[0].UID != 1 || inbox.Messages[1].UID != 3 {
		t.Errorf("INBOX after move: %+v", inbox.Messages)
	}
	sent, _ := s.Read("bob", "Sent", []uint32{1}, true, 1<<20)
	if len(sent) != 1 || !bytes.Equal(sent[0].Body, msg(1)) {
		t.Errorf("moved message %+v", sent)
	}
	if _, err := s.Copy("bob", Inbox, []uint32{1}, "Nope"); !errors.Is(err, ErrNoSuchMailbox) {
		t.Errorf("copy to missing mailbox: %v", err)
	}
	u, _ := s.User("bob")
	if want := int64(len(msg(0))*2 + len(msg(1)) + len(msg(2))*2); u.Used != want {
		t.Errorf("used %d, want %d (copies count, moves do not)", u.Used, want)
	}
}

func TestQuota(t *testing.T) {
	s, _ := openTest(t)
	quota := int64(len(msg(0)) * 2)
	mustUser(t, s, "bob", quota)
	mustUser(t, s, "carol", 0)
	for i := range 2 {
		if _, err := s.Deliver("bob", Inbox, msg(i), nil, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Deliver("bob", Inbox, msg(2), nil, time.Time{})
	if !errors.Is(err, ErrOverQuota) {
		t.Fatalf("over quota: %v", err)
	}
	if !strings.Contains(err.Error(), "quota") {
		t.Errorf("error %q does not say quota", err)
	}
	if _, err := s.Copy("bob", Inbox, []uint32{1}, "Trash"); !errors.Is(err, ErrOverQuota) {
		t.Errorf("copy over quota: %v", err)
	}
	// Nothing half-done: the refused copy left no message in Trash, the UID was not consumed.
	if snap, _ := s.Snapshot("bob", "Trash"); len(snap.Messages) != 0 || snap.UIDNext != 1 {
		t.Errorf("Trash after refused copy: %+v", snap)
	}
	if snap, _ := s.Snapshot("bob", Inbox); len(snap.Messages) != 2 || snap.UIDNext != 3 {
		t.Errorf("INBOX after refused delivery: %+v", snap)
	}
	// Other users are unaffected.
	if _, err := s.Deliver("carol", Inbox, msg(2), nil, time.Time{}); err != nil {
		t.Errorf("other user: %v", err)
	}
	// Making room lets mail in again.
	s.UpdateFlags("bob", Inbox, []uint32{1}, FlagsAdd, []string{FlagDeleted})
	s.Expunge("bob", Inbox, nil)
	if _, err := s.Deliver("bob", Inbox, msg(2), nil, time.Time{}); err != nil {
		t.Errorf("after expunge: %v", err)
	}
	if err := s.SetQuota("bob", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver("bob", Inbox, msg(3), nil, time.Time{}); err != nil {
		t.Errorf("unlimited quota: %v", err)
	}
}

func TestTooLarge(t *testing.T) {
	s, _ := openTest(t)
	mustUser(t, s, "bob", 0)
	if _, err := s.Deliver("bob", Inbox, make([]byte, MaxMessageSize+1), nil, time.Time{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over-size message: %v", err)
	}
}

func TestMailboxes(t *testing.T) {
	s, _ := openTest(t)
	mustUser(t, s, "bob", 0)
	inbox, _ := s.Status("bob", "inbox")
	for _, name := range []string{"Work", "Work/2026", "Work/2026/Q1"} {
		if err := s.CreateMailbox("bob", name); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateMailbox("bob", "work"); err != nil {
		t.Errorf("names other than INBOX are case-sensitive: %v", err)
	}
	if err := s.CreateMailbox("bob", "Inbox"); !errors.Is(err, ErrMailboxExists) {
		t.Errorf("create Inbox: %v", err)
	}
	for _, bad := range []string{"", "/a", "a/", "a//b", "a*", "a%b", "a\x01", "\xff", strings.Repeat("a", MaxMailboxNameSize+1), strings.Repeat("a/", MaxMailboxDepth) + "a"} {
		if err := s.CreateMailbox("bob", bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("CreateMailbox(%q): %v", bad, err)
		}
	}
	s.Deliver("bob", "Work/2026", msg(1), nil, time.Time{})
	work, _ := s.Snapshot("bob", "Work")
	if err := s.RenameMailbox("bob", "Work", "Job"); err != nil {
		t.Fatal(err)
	}
	if name, err := s.MailboxName("bob", work.ID); err != nil || name != "Job" {
		t.Errorf("MailboxName after rename: %q, %v", name, err)
	}
	boxes, _ := s.Mailboxes("bob")
	var names []string
	for _, b := range boxes {
		names = append(names, b.Name)
	}
	if want := []string{"INBOX", "Job", "Job/2026", "Job/2026/Q1", "Sent", "Trash", "work"}; !slices.Equal(names, want) {
		t.Errorf("after rename: %v, want %v", names, want)
	}
	if got, _ := s.Read("bob", "Job/2026", []uint32{1}, true, 1<<20); len(got) != 1 || !bytes.Equal(got[0].Body, msg(1)) {
		t.Errorf("message did not follow its renamed mailbox")
	}
	// Renaming INBOX moves its messages and leaves a fresh INBOX.
	s.Deliver("bob", Inbox, msg(2), nil, time.Time{})
	if err := s.RenameMailbox("bob", Inbox, "Old"); err != nil {
		t.Fatal(err)
	}
	old, _ := s.Snapshot("bob", "Old")
	newInbox, _ := s.Snapshot("bob", Inbox)
	if len(old.Messages) != 1 || old.UIDValidity != inbox.UIDValidity || len(newInbox.Messages) != 0 || newInbox.UIDValidity == inbox.UIDValidity {
		t.Errorf("rename INBOX: old %+v new %+v", old, newInbox)
	}
	if err := s.DeleteMailbox("bob", Inbox); !errors.Is(err, ErrCannotDelete) {
		t.Errorf("delete INBOX: %v", err)
	}
	// Delete and re-create: a new UIDVALIDITY, so clients drop their cache.
	before, _ := s.Status("bob", "work")
	if err := s.DeleteMailbox("bob", "work"); err != nil {
		t.Fatal(err)
	}
	s.CreateMailbox("bob", "work")
	after, _ := s.Status("bob", "work")
	if after.UIDValidity <= before.UIDValidity {
		t.Errorf("UIDVALIDITY %d after re-create, was %d", after.UIDValidity, before.UIDValidity)
	}
	if _, err := s.Snapshot("bob", "Nope"); !errors.Is(err, ErrNoSuchMailbox) {
		t.Errorf("missing mailbox: %v", err)
	}
	st, _ := s.Status("bob", "Job/2026")
	if st.Messages != 1 || st.Unseen != 1 || st.Size != int64(len(msg(1))) {
		t.Errorf("status %+v", st)
	}
}

func TestChanges(t *testing.T) {
	s, _ := openTest(t)
	mustUser(t, s, "bob", 0)
	mustUser(t, s, "carol", 0)
	v0, bob := s.Changes("bob")
	_, carol := s.Changes("carol")
	if _, err := s.Deliver("bob", Inbox, msg(1), nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bob:
	default:
		t.Fatal("bob's channel not closed after a delivery")
	}
	select {
	case <-carol:
		t.Fatal("carol's channel closed by bob's delivery")
	default:
	}
	if v1, _ := s.Changes("bob"); v1 == v0 {
		t.Error("version did not change")
	}
	// A failed write is not a change.
	v1, ch := s.Changes("bob")
	s.Deliver("bob", "Nope", msg(2), nil, time.Time{})
	select {
	case <-ch:
		t.Error("failed delivery woke watchers")
	default:
	}
	if v2, _ := s.Changes("bob"); v2 != v1 {
		t.Error("failed delivery changed the version")
	}
}

func TestSecondOpenFails(t *testing.T) {
	_, path := openTest(t)
	if _, err := Open(path); err == nil {
		t.Fatal("a second Open of a store in use succeeded")
	}
}
