package mailstore

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestDeliverOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser("bob", 0); err != nil {
		t.Fatal(err)
	}
	msg := []byte("Subject: once\r\n\r\nbody\r\n")
	uid, dup, err := s.DeliverOnce("bob", Inbox, []byte("id-1"), msg)
	if err != nil || dup {
		t.Fatalf("first delivery: %v %v", dup, err)
	}
	s.Close()
	// After a restart the key is still known: nothing is delivered twice.
	if s, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	uid2, dup, err := s.DeliverOnce("bob", Inbox, []byte("id-1"), msg)
	if err != nil || !dup || uid2 != uid {
		t.Fatalf("second delivery: uid %d dup %v err %v", uid2, dup, err)
	}
	if st, _ := s.Status("bob", Inbox); st.Messages != 1 {
		t.Fatalf("INBOX holds %d messages", st.Messages)
	}
	if _, dup, _ := s.DeliverOnce("bob", Inbox, []byte("id-2"), msg); dup {
		t.Fatal("another key taken for a duplicate")
	}
	if _, _, err := s.DeliverOnce("nobody", Inbox, []byte("k"), msg); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("unknown user: %v", err)
	}
	if _, _, err := s.DeliverOnce("bob", Inbox, nil, msg); err == nil {
		t.Fatal("empty key accepted")
	}
	if _, _, err := s.DeliverOnce("bob", Inbox, make([]byte, MaxDeliveryKey+1), msg); err == nil {
		t.Fatal("oversize key accepted")
	}
}
