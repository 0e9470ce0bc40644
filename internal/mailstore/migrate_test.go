package mailstore

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestOpenStoreFromBeforeIssue16 opens a store written by the code of commit 1e67fd1 (main
// before issue 16; testdata/store-1e67fd1.db: user alice, password "alice-password", INBOX with
// two messages, Work/Projects with one, Trash and Work unsubscribed) and requires everything in
// it kept, the subscriptions moved from the per-mailbox flag to their own list, and every
// message \Recent once.
func TestOpenStoreFromBeforeIssue16(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "store-1e67fd1.db"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "mail.db")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Authenticate("alice", "alice-password"); err != nil {
		t.Errorf("Authenticate: %v", err)
	}
	boxes, err := s.Mailboxes("alice")
	if err != nil {
		t.Fatal(err)
	}
	var names, subscribed []string
	for _, b := range boxes {
		names = append(names, b.Name)
		if b.Subscribed {
			subscribed = append(subscribed, b.Name)
		}
	}
	if want := []string{"INBOX", "Sent", "Trash", "Work", "Work/Projects"}; !slices.Equal(names, want) {
		t.Errorf("mailboxes %q, want %q", names, want)
	}
	if want := []string{"INBOX", "Sent", "Work/Projects"}; !slices.Equal(subscribed, want) {
		t.Errorf("subscribed %q, want %q", subscribed, want)
	}
	snap, err := s.Snapshot("alice", Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Messages) != 2 || !slices.Equal(snap.Messages[1].Flags, []string{"$Label1", FlagSeen}) {
		t.Errorf("INBOX messages %+v, want 2, the second with $Label1 \\Seen", snap.Messages)
	}
	msgs, err := s.Read("alice", "Work/Projects", []uint32{1}, true, 1<<20)
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "From: dave@example.org\r\nSubject: three\r\n\r\nthird\r\n" {
		t.Errorf("Work/Projects message 1: %+v, %v", msgs, err)
	}
	st, err := s.Status("alice", Inbox)
	if err != nil {
		t.Fatal(err)
	}
	if st.Recent != 2 {
		t.Errorf("INBOX recent %d, want 2: a store from before issue 16 has every message recent once", st.Recent)
	}
	if from, to, err := s.ClaimRecent("alice", Inbox, snap.ID); err != nil || from != 0 || to != 3 {
		t.Errorf("ClaimRecent = %d, %d, %v; want 0, 3", from, to, err)
	}
	if st, _ := s.Status("alice", Inbox); st.Recent != 0 {
		t.Errorf("INBOX recent %d after the claim, want 0", st.Recent)
	}
	// The migration runs once: a change to the subscriptions survives reopening.
	if err := s.SetSubscribed("alice", "Sent", false); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	subs, err := s.Subscriptions("alice")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"INBOX", "Work/Projects"}; !slices.Equal(subs, want) {
		t.Errorf("subscriptions after reopening %q, want %q", subs, want)
	}
}

// TestSubscriptionsAreTheirOwnList checks RFC 3501 sections 6.3.6 and 6.3.9: CREATE subscribes
// nothing, a name without a mailbox can be subscribed and unsubscribed, DELETE keeps the
// subscription, RENAME moves it, and the list is bounded.
func TestSubscriptionsAreTheirOwnList(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "mail.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateUser("bob", 0); err != nil {
		t.Fatal(err)
	}
	check := func(what string, want ...string) {
		t.Helper()
		subs, err := s.Subscriptions("bob")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(subs, want) {
			t.Errorf("%s: subscriptions %q, want %q", what, subs, want)
		}
	}
	check("new user", "INBOX", "Sent", "Trash")
	if err := s.CreateMailbox("bob", "a/b/c"); err != nil {
		t.Fatal(err)
	}
	check("after CREATE a/b/c", "INBOX", "Sent", "Trash")
	for _, name := range []string{"a/b", "gone"} {
		if err := s.SetSubscribed("bob", name, true); err != nil {
			t.Fatal(err)
		}
	}
	check("after SUBSCRIBE", "INBOX", "Sent", "Trash", "a/b", "gone")
	if err := s.DeleteMailbox("bob", "a/b"); err != nil {
		t.Fatal(err)
	}
	check("after DELETE a/b", "INBOX", "Sent", "Trash", "a/b", "gone")
	if err := s.SetSubscribed("bob", "gone", false); err != nil {
		t.Errorf("UNSUBSCRIBE of a name without a mailbox: %v", err)
	}
	if err := s.SetSubscribed("bob", "a/b/c", true); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameMailbox("bob", "a/b/c", "x"); err != nil {
		t.Fatal(err)
	}
	check("after RENAME a/b/c x", "INBOX", "Sent", "Trash", "a/b", "x")
	for i := len("INBOX Sent Trash a/b x"); ; i++ {
		subs, _ := s.Subscriptions("bob")
		if len(subs) == MaxSubscriptions {
			break
		}
		if err := s.SetSubscribed("bob", "n"+string(rune('a'+i%26))+string(rune('a'+(i/26)%26))+string(rune('a'+(i/676)%26)), true); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetSubscribed("bob", "one-too-many", true); err == nil {
		t.Errorf("subscription %d accepted, want a limit of %d", MaxSubscriptions+1, MaxSubscriptions)
	}
}
