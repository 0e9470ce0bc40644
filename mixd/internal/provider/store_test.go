package provider

import (
	"crypto/rand"
	"errors"
	"path/filepath"
	"testing"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
)

func linkKey(t *testing.T) keys.LinkPublicKey {
	k, err := keys.GenerateLinkKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k.Public()
}

func TestUsersAndQueuesSurviveReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "provider.db")
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	alice := User{Name: "alice", LinkKey: linkKey(t), QuotaBytes: 1 << 20}
	if err := s.AddUser(alice); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser(User{Name: "alice", LinkKey: linkKey(t)}); !errors.Is(err, ErrUserExists) {
		t.Fatalf("duplicate name: %v", err)
	}
	if err := s.AddUser(User{Name: "bob", LinkKey: alice.LinkKey}); !errors.Is(err, ErrUserExists) {
		t.Fatalf("duplicate link key: %v", err)
	}
	for _, bad := range []User{{Name: "Alice", LinkKey: linkKey(t)}, {Name: "", LinkKey: linkKey(t)}, {Name: "x"}, {Name: "a b", LinkKey: linkKey(t)}} {
		if err := s.AddUser(bad); err == nil {
			t.Errorf("accepted %+v", bad)
		}
	}
	for i := range 3 {
		if err := s.Enqueue("alice", &Item{Kind: ItemReply, SURBID: [16]byte{byte(i)}, Body: []byte{byte(i), 1, 2}}, 3); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Enqueue("alice", &Item{Kind: ItemMessage}, 3); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("over limit: %v", err)
	}
	if err := s.Enqueue("nobody", &Item{Kind: ItemMessage}, 3); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("unknown user: %v", err)
	}
	s.Close()

	s, err = OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, err := s.UserByLinkKey(alice.LinkKey)
	if err != nil || u.Name != "alice" || u.QuotaBytes != 1<<20 {
		t.Fatalf("user after reopen: %+v %v", u, err)
	}
	// Fetch walks the queue; an item is deleted only when the client asks past it.
	it, rem, err := s.Fetch("alice", 0)
	if err != nil || it == nil || it.Body[0] != 0 || rem != 2 {
		t.Fatalf("first fetch: %+v %d %v", it, rem, err)
	}
	again, _, _ := s.Fetch("alice", it.Seq)
	if again.Seq != it.Seq {
		t.Fatal("item not re-sent before the client acknowledged it")
	}
	it2, rem, _ := s.Fetch("alice", it.Seq+1)
	if it2 == nil || it2.Body[0] != 1 || rem != 1 {
		t.Fatalf("second fetch: %+v %d", it2, rem)
	}
	if n, _ := s.QueueLen("alice"); n != 2 {
		t.Fatalf("queue length %d after acknowledging one item", n)
	}
	it3, _, _ := s.Fetch("alice", it2.Seq+1)
	if end, rem, _ := s.Fetch("alice", it3.Seq+1); end != nil || rem != 0 {
		t.Fatalf("queue not empty: %+v", end)
	}
	if err := s.RemoveUser("alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UserByLinkKey(alice.LinkKey); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("removed user still authenticates: %v", err)
	}
}
