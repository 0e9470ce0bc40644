package provider

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

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
	if err := s.Enqueue("alice", &Item{Kind: ItemReply}, 3); !errors.Is(err, ErrQueueFull) {
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

// stored counts the items on disk for user, without pruning.
func stored(t *testing.T, s *Store, user string) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketQueues).Bucket([]byte(user)).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// Acknowledged items cost the retrieve no write: they go with the next Enqueue (which also
// counts them as gone for the queue limit), or with a prune; a crash that loses the note loses
// nothing; a user removed and added again under the same name keeps the new items.
func TestAcknowledgedItemsDeletedLater(t *testing.T) {
	path := filepath.Join(t.TempDir(), "provider.db")
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser(User{Name: "alice", LinkKey: linkKey(t)}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.Enqueue("alice", &Item{Kind: ItemMessage, Body: []byte{byte(i)}}, 3); err != nil {
			t.Fatal(err)
		}
	}
	// The client has items 1 and 2 (it asks for 3): still on disk, never returned again.
	it, rem, err := s.Fetch("alice", 3)
	if err != nil || it == nil || it.Seq != 3 || it.Body[0] != 2 || rem != 0 {
		t.Fatalf("fetch from 3: %+v %d %v", it, rem, err)
	}
	if n := stored(t, s, "alice"); n != 3 {
		t.Fatalf("%d items on disk right after the retrieve, want 3 (deleted later)", n)
	}
	// A crash loses the note: after reopening, the same retrieve still starts at item 3.
	s.Close()
	if s, err = OpenStore(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if it, _, _ := s.Fetch("alice", 3); it == nil || it.Seq != 3 {
		t.Fatalf("after reopen: %+v", it)
	}
	// The queue holds 3 with a limit of 3, but 2 are acknowledged: the Enqueue deletes them
	// in its own transaction and fits.
	if err := s.Enqueue("alice", &Item{Kind: ItemMessage, Body: []byte{3}}, 3); err != nil {
		t.Fatalf("enqueue with acknowledged items in the queue: %v", err)
	}
	if n := stored(t, s, "alice"); n != 2 {
		t.Fatalf("%d items on disk after the enqueue, want 2", n)
	}
	// Prune alone (QueueLen prunes first).
	if it, _, _ := s.Fetch("alice", 4); it == nil || it.Seq != 4 {
		t.Fatalf("fetch from 4: %+v", it)
	}
	if n, err := s.QueueLen("alice"); err != nil || n != 1 {
		t.Fatalf("queue length %d, %v; want 1", n, err)
	}
	if n := stored(t, s, "alice"); n != 1 {
		t.Fatalf("%d items on disk after a prune, want 1", n)
	}
	// A note for a user who is removed and added again is forgotten: the new queue (numbered
	// from 1 again) keeps its items.
	if _, _, err := s.Fetch("alice", 5); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveUser("alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser(User{Name: "alice", LinkKey: linkKey(t)}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Enqueue("alice", &Item{Kind: ItemMessage, Body: []byte{byte(i)}}, 3); err != nil {
			t.Fatal(err)
		}
	}
	if it, rem, _ := s.Fetch("alice", 0); it == nil || it.Seq != 1 || rem != 1 {
		t.Fatalf("new alice: %+v %d", it, rem)
	}
}

// TestQueueMessagesBoundedApartFromReplies is the provider half of issue 13 finding 6: anyone
// can send items to a user's queue service, so those are bounded by MaxMessageItems, apart from
// the replies (ACKs, loop echoes) that come back through the user's own SURBs, which a flood of
// messages never keeps out. Acknowledged messages free their places, and the count survives a
// reopen.
func TestQueueMessagesBoundedApartFromReplies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "provider.db")
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser(User{Name: "bob", LinkKey: linkKey(t)}); err != nil {
		t.Fatal(err)
	}
	const limit = 1000
	refused := 0
	for i := range 3 * MaxMessageItems {
		err := s.Enqueue("bob", &Item{Kind: ItemMessage, Body: []byte{byte(i)}}, limit)
		switch {
		case errors.Is(err, ErrQueueFull):
			refused++
		case err != nil:
			t.Fatal(err)
		}
	}
	if refused != 2*MaxMessageItems {
		t.Fatalf("%d of %d queue messages refused, want %d", refused, 3*MaxMessageItems, 2*MaxMessageItems)
	}
	for i := range limit - MaxMessageItems {
		if err := s.Enqueue("bob", &Item{Kind: ItemReply, SURBID: [16]byte{byte(i)}}, limit); err != nil {
			t.Fatalf("reply %d behind a full set of queue messages: %v", i, err)
		}
	}
	// The reply limit is the queue limit, counting replies only.
	for range MaxMessageItems {
		if err := s.Enqueue("bob", &Item{Kind: ItemReply}, limit); err != nil {
			t.Fatalf("reply within the limit: %v", err)
		}
	}
	if err := s.Enqueue("bob", &Item{Kind: ItemReply}, limit); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("reply over the limit: %v", err)
	}

	// The client acknowledges the first 10 items (messages): 10 more messages fit, not 11.
	if _, _, err := s.Fetch("bob", 11); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = OpenStore(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.Fetch("bob", 11); err != nil {
		t.Fatal(err)
	}
	for i := range 11 {
		err := s.Enqueue("bob", &Item{Kind: ItemMessage}, limit)
		if i < 10 && err != nil {
			t.Fatalf("message %d after 10 were acknowledged: %v", i, err)
		}
		if i == 10 && !errors.Is(err, ErrQueueFull) {
			t.Fatalf("message over the bound after a reopen: %v", err)
		}
	}
}

// FuzzDecodeItem: a stored queue item decodes without panicking, or is refused as corrupt; one
// that decodes re-encodes to the same bytes.
func FuzzDecodeItem(f *testing.F) {
	for _, s := range loadItemSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		it, err := decodeItem(7, b)
		if err != nil {
			return
		}
		if it.Seq != 7 || (it.Kind != ItemMessage && it.Kind != ItemReply) {
			t.Fatalf("decoded %+v", it)
		}
		if got := encodeItem(it); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %x, want %x", got, b)
		}
	})
}

// loadItemSeeds reads testdata/items.txt: one stored item per line in hex, # comments.
func loadItemSeeds(t testing.TB) [][]byte { return loadSeeds(t, "items.txt") }

// loadSeeds reads a seed file of testdata: one value per line in hex, # comments.
func loadSeeds(t testing.TB, name string) [][]byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var seeds [][]byte
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := hex.DecodeString(line)
		if err != nil {
			t.Fatalf("testdata/%s:%d: %v", name, n+1, err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

func TestItemSeedsNotEmpty(t *testing.T) {
	valid := 0
	seeds := loadItemSeeds(t)
	for _, s := range seeds {
		if _, err := decodeItem(1, s); err == nil {
			valid++
		}
	}
	if valid == 0 || valid == len(seeds) {
		t.Fatalf("%d seeds, %d valid: want both valid and invalid ones", len(seeds), valid)
	}
}
