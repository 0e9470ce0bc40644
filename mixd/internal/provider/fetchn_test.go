package provider

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
)

// TestFetchN: a retrieve (from, k) gets up to k items in order with what follows each, and
// only from acknowledges: the items it returns stay queued until a later from passes them.
func TestFetchN(t *testing.T) {
	s, err := OpenStore(filepath.Join(t.TempDir(), "provider.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.AddUser(User{Name: "alice", LinkKey: linkKey(t)}); err != nil {
		t.Fatal(err)
	}
	if items, _, err := s.FetchN("alice", 0, 4); err != nil || len(items) != 0 {
		t.Fatalf("empty queue: %d items, %v", len(items), err)
	}
	for i := range 5 {
		if err := s.Enqueue("alice", &Item{Kind: ItemReply, Body: []byte{byte(i)}}, 100); err != nil {
			t.Fatal(err)
		}
	}
	got := func(from uint64, k int) string {
		t.Helper()
		items, rem, err := s.FetchN("alice", from, k)
		if err != nil {
			t.Fatal(err)
		}
		out := ""
		for i, it := range items {
			out += fmt.Sprintf("%d/%d:%d ", it.Seq, it.Body[0], rem[i])
		}
		return out
	}
	if g := got(0, 3); g != "1/0:4 2/1:3 3/2:2 " {
		t.Fatalf("fetch (0, 3): %q", g)
	}
	// Nothing was acknowledged: a prune deletes nothing and the same items come again.
	if err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	if g := got(1, 16); g != "1/0:4 2/1:3 3/2:2 4/3:1 5/4:0 " {
		t.Fatalf("fetch (1, 16) after a prune: %q", g)
	}
	// from = 4 acknowledges 1 to 3, which a write deletes.
	if g := got(4, 1); g != "4/3:1 " {
		t.Fatalf("fetch (4, 1): %q", g)
	}
	if err := s.Prune(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.QueueLen("alice"); err != nil || n != 2 {
		t.Fatalf("queue length after acknowledging 3 of 5: %d, %v", n, err)
	}
	if g := got(0, 16); g != "4/3:1 5/4:0 " {
		t.Fatalf("fetch (0, 16) after the prune: %q", g)
	}
	if g := got(6, 4); g != "" {
		t.Fatalf("fetch past the end: %q", g)
	}
	if _, _, err := s.FetchN("alice", 0, 0); err == nil {
		t.Fatal("a fetch of 0 items accepted")
	}
	if _, _, err := s.FetchN("nobody", 0, 1); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("unknown user: %v", err)
	}

	if err := s.EnqueueMail("alice", [16]byte{1}, [][]byte{[]byte("a"), []byte("b"), []byte("c")}, testKeep); err != nil {
		t.Fatal(err)
	}
	mail, rem, err := s.FetchMailN("alice", 0, 2)
	if err != nil || len(mail) != 2 || string(mail[0].Chunk) != "a" || string(mail[1].Chunk) != "b" || rem[0] != 2 || rem[1] != 1 || mail[1].Seq != mail[0].Seq+1 {
		t.Fatalf("mail fetch (0, 2): %+v %v %v", mail, rem, err)
	}
	if mail, _, err = s.FetchMailN("alice", mail[1].Seq+1, 4); err != nil || len(mail) != 1 || string(mail[0].Chunk) != "c" {
		t.Fatalf("mail fetch after two: %+v %v", mail, err)
	}
}
