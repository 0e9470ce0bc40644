package provider

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

const testKeep = 24 * time.Hour

// chunksOf returns n chunks of size bytes, each filled with its index and the tag.
func chunksOf(tag byte, n, size int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = bytes.Repeat([]byte{tag, byte(i)}, size/2)
	}
	return out
}

// fetchAllMail reads the user's mail queue from 0 to its end, acknowledging each item.
func fetchAllMail(t *testing.T, s *Store, user string) []*MailItem {
	t.Helper()
	var out []*MailItem
	var from uint64
	for {
		it, rem, err := s.FetchMail(user, from)
		if err != nil {
			t.Fatal(err)
		}
		if it == nil {
			if rem != 0 {
				t.Fatalf("no item but %d remaining", rem)
			}
			return out
		}
		out = append(out, it)
		from = it.Seq + 1
	}
}

func newMailStore(t *testing.T, quota int64) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "provider.db")
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser(User{Name: "bob", LinkKey: linkKey(t), QuotaBytes: quota}); err != nil {
		t.Fatal(err)
	}
	return s, path
}

// A mail is queued once per id, its chunks in order under the mail queue's own numbering;
// everything (the mark, the chunks, the ids, the byte count) survives a reopen.
func TestMailQueuedOnceAndKeptAcrossReopen(t *testing.T) {
	s, path := newMailStore(t, 0)
	if u, _ := s.User("bob"); u.ReadsViaLink {
		t.Fatal("a new user reads via link")
	}
	if err := s.SetReadsViaLink("bob", true); err != nil {
		t.Fatal(err)
	}
	if err := s.SetReadsViaLink("nobody", true); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("unknown user: %v", err)
	}
	// Two replies first: the mail queue numbers from 1 regardless.
	for range 2 {
		if err := s.Enqueue("bob", &Item{Kind: ItemReply}, 10); err != nil {
			t.Fatal(err)
		}
	}
	id1, id2 := [16]byte{1}, [16]byte{2}
	m1, m2 := chunksOf('a', 3, 100), chunksOf('b', 1, 40)
	for _, m := range []struct {
		id     [16]byte
		chunks [][]byte
	}{{id1, m1}, {id1, m1}, {id2, m2}, {id1, chunksOf('z', 2, 10)}} {
		if err := s.EnqueueMail("bob", m.id, m.chunks, testKeep); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := s.MailBytes("bob"); n != 340 {
		t.Fatalf("%d mail bytes, want 340", n)
	}
	s.Close()

	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if u, _ := s.User("bob"); !u.ReadsViaLink {
		t.Fatal("the mark was lost in a reopen")
	}
	// A repeat after the reopen is still recognised.
	if err := s.EnqueueMail("bob", id2, m2, testKeep); err != nil {
		t.Fatal(err)
	}
	got := fetchAllMail(t, s, "bob")
	want := append(append([][]byte{}, m1...), m2...)
	if len(got) != len(want) {
		t.Fatalf("%d items in the mail queue, want %d", len(got), len(want))
	}
	for i, it := range got {
		if it.Seq != uint64(i+1) || !bytes.Equal(it.Chunk, want[i]) {
			t.Fatalf("item %d: seq %d chunk %x, want seq %d chunk %x", i, it.Seq, it.Chunk[:4], i+1, want[i][:4])
		}
	}
	// The replies are untouched by the mail queue.
	if it, rem, err := s.Fetch("bob", 0); err != nil || it == nil || it.Seq != 1 || rem != 1 {
		t.Fatalf("reply queue: %+v %d %v", it, rem, err)
	}
}

// Only what the client moved past is deleted, and its bytes leave the quota; an id is
// forgotten after keep, and then a mail under it is queued again.
func TestMailDeletedBelowSeqAndIDsExpire(t *testing.T) {
	s, path := newMailStore(t, 0)
	for i := range 4 {
		if err := s.EnqueueMail("bob", [16]byte{byte(i)}, chunksOf(byte(i), 2, 50), testKeep); err != nil {
			t.Fatal(err)
		}
	}
	// The client has items 1 to 5; it asks for 6.
	it, rem, err := s.FetchMail("bob", 6)
	if err != nil || it == nil || it.Seq != 6 || rem != 2 {
		t.Fatalf("fetch from 6: %+v %d %v", it, rem, err)
	}
	if n, err := s.MailQueueLen("bob"); err != nil || n != 3 {
		t.Fatalf("mail queue length %d, %v; want 3", n, err)
	}
	if n, _ := s.MailBytes("bob"); n != 150 {
		t.Fatalf("%d mail bytes after the client took 5 chunks, want 150", n)
	}
	// Counters are derived: a wrong one on disk is rebuilt at open.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return putCount(tx, mailQueue, "bob", 1<<40)
	}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err = OpenStore(path); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, _ := s.MailBytes("bob"); n != 150 {
		t.Fatalf("%d mail bytes after a reopen, want 150 (recounted)", n)
	}
	// Within keep an id is queued once; after it, the id is forgotten.
	if err := s.EnqueueMail("bob", [16]byte{0}, chunksOf(9, 1, 10), testKeep); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.MailQueueLen("bob"); n != 3 {
		t.Fatalf("a repeated id was queued: %d items", n)
	}
	s.now = func() time.Time { return time.Now().Add(testKeep + time.Minute) }
	if err := s.EnqueueMail("bob", [16]byte{0}, chunksOf(9, 1, 10), testKeep); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.MailQueueLen("bob"); n != 4 {
		t.Fatalf("an id past its keep was not queued again: %d items", n)
	}
	var left int
	s.db.View(func(tx *bolt.Tx) error {
		left = tx.Bucket(bucketMailIDs).Bucket([]byte("bob")).Stats().KeyN
		return nil
	})
	if left != 2 {
		t.Fatalf("%d mail id records, want 2 (the one id queued after the others expired)", left)
	}
	if err := s.EnqueueMail("bob", [16]byte{7}, chunksOf(1, 1, 10), 0); err == nil {
		t.Fatal("a keep of 0 was accepted")
	}
	if err := s.EnqueueMail("bob", [16]byte{7}, nil, testKeep); err == nil {
		t.Fatal("a mail of no chunks was accepted")
	}
	if err := s.EnqueueMail("nobody", [16]byte{7}, chunksOf(1, 1, 10), testKeep); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("unknown user: %v", err)
	}
}

// The quota bounds the chunk bytes waiting for the client: a mail that does not fit is refused
// whole and its id not recorded, so that it fits once the client has taken enough.
func TestMailQuota(t *testing.T) {
	s, _ := newMailStore(t, 1000)
	defer s.Close()
	if err := s.EnqueueMail("bob", [16]byte{1}, chunksOf(1, 6, 100), testKeep); err != nil {
		t.Fatal(err)
	}
	err := s.EnqueueMail("bob", [16]byte{2}, chunksOf(2, 5, 100), testKeep)
	if !errors.Is(err, ErrOverQuota) {
		t.Fatalf("over quota: %v", err)
	}
	if n, _ := s.MailQueueLen("bob"); n != 6 {
		t.Fatalf("a refused mail left %d items, want the 6 of the first", n)
	}
	// Exactly at the quota fits.
	if err := s.EnqueueMail("bob", [16]byte{3}, chunksOf(3, 4, 100), testKeep); err != nil {
		t.Fatalf("mail up to the quota: %v", err)
	}
	// The client takes the first mail: the refused one fits now (deleted in the same write).
	if _, _, err := s.FetchMail("bob", 7); err != nil {
		t.Fatal(err)
	}
	if err := s.EnqueueMail("bob", [16]byte{2}, chunksOf(2, 5, 100), testKeep); err != nil {
		t.Fatalf("after the client took 600 bytes: %v", err)
	}
	if n, _ := s.MailBytes("bob"); n != 900 {
		t.Fatalf("%d bytes, want 900", n)
	}
}

// The two queues are apart (services.md section 4.2 and 6.3): a full mail queue keeps no reply
// or message out of the other queue, and a full reply queue keeps no mail out.
func TestMailQueueApartFromReplyQueue(t *testing.T) {
	s, _ := newMailStore(t, 0)
	defer s.Close()
	const limit = 5
	if err := s.EnqueueMail("bob", [16]byte{1}, chunksOf(1, 500, 64), testKeep); err != nil {
		t.Fatal(err)
	}
	for range limit {
		if err := s.Enqueue("bob", &Item{Kind: ItemReply}, limit); err != nil {
			t.Fatalf("reply behind 500 mail chunks: %v", err)
		}
	}
	if err := s.Enqueue("bob", &Item{Kind: ItemMessage}, limit); err != nil {
		t.Fatalf("message behind 500 mail chunks: %v", err)
	}
	if err := s.Enqueue("bob", &Item{Kind: ItemReply}, limit); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("reply over the limit: %v", err)
	}
	if err := s.EnqueueMail("bob", [16]byte{2}, chunksOf(2, 3, 64), testKeep); err != nil {
		t.Fatalf("mail beside a full reply queue: %v", err)
	}
	if it, _, _ := s.Fetch("bob", 0); it == nil || it.Seq != 1 || it.Kind != ItemReply {
		t.Fatalf("first item of the reply queue: %+v", it)
	}
	// Acknowledging in one queue deletes nothing in the other.
	if _, _, err := s.FetchMail("bob", 400); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.QueueLen("bob"); n != limit+1 {
		t.Fatalf("reply queue holds %d after mail was acknowledged, want %d", n, limit+1)
	}
	if n, _ := s.MailQueueLen("bob"); n != 104 {
		t.Fatalf("mail queue holds %d, want 104", n)
	}
}

// A user removed and added again starts with empty queues, numbered from 1, and no ids.
func TestMailQueueGoesWithUser(t *testing.T) {
	s, _ := newMailStore(t, 0)
	defer s.Close()
	if err := s.EnqueueMail("bob", [16]byte{1}, chunksOf(1, 3, 10), testKeep); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.FetchMail("bob", 2); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveUser("bob"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.FetchMail("bob", 0); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("removed user's mail queue: %v", err)
	}
	if err := s.AddUser(User{Name: "bob", LinkKey: linkKey(t)}); err != nil {
		t.Fatal(err)
	}
	if err := s.EnqueueMail("bob", [16]byte{1}, chunksOf(1, 2, 10), testKeep); err != nil {
		t.Fatal(err)
	}
	if got := fetchAllMail(t, s, "bob"); len(got) != 2 || got[0].Seq != 1 {
		t.Fatalf("new bob's mail queue: %d items", len(got))
	}
	if n, _ := s.MailBytes("bob"); n != 0 {
		t.Fatalf("%d bytes after the client took everything", n)
	}
}

// A corrupt mail id record is an error that loses nothing: the mail is not queued, and what
// waits stays.
func TestCorruptMailIDRecord(t *testing.T) {
	for _, k := range [][]byte{{'t'}, append([]byte{'t'}, make([]byte, 23)...), append([]byte{'t'}, make([]byte, 25)...), append([]byte{'u'}, make([]byte, 24)...)} {
		if _, _, err := parseMailAgeKey(k); err == nil {
			t.Errorf("parsed %x", k)
		}
	}
	at := time.Unix(1700000000, 5)
	if got, id, err := parseMailAgeKey(mailAgeKey(at, [16]byte{9})); err != nil || !got.Equal(at) || id != [16]byte{9} {
		t.Fatalf("round trip: %v %x %v", got, id, err)
	}

	s, _ := newMailStore(t, 0)
	defer s.Close()
	if err := s.EnqueueMail("bob", [16]byte{1}, chunksOf(1, 2, 10), testKeep); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMailIDs).Bucket([]byte("bob")).Put([]byte{mailAgePrefix, 0}, nil) // sorts first: read by the next expiry pass
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.EnqueueMail("bob", [16]byte{2}, chunksOf(2, 2, 10), testKeep); err == nil {
		t.Fatal("queued beside a corrupt id record")
	}
	if got := fetchAllMail(t, s, "bob"); len(got) != 2 {
		t.Fatalf("%d items after a refused enqueue, want 2", len(got))
	}
}

// FuzzParseMailAgeKey: a stored mail id key parses without panicking, or is refused as
// corrupt; one that parses re-encodes to the same bytes.
func FuzzParseMailAgeKey(f *testing.F) {
	for _, s := range loadSeeds(f, "mailids.txt") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		at, id, err := parseMailAgeKey(b)
		if err != nil {
			return
		}
		if got := mailAgeKey(at, id); !bytes.Equal(got, b) {
			t.Fatalf("re-encoded %x, want %x", got, b)
		}
	})
}

func TestMailIDSeedsNotEmpty(t *testing.T) {
	valid := 0
	seeds := loadSeeds(t, "mailids.txt")
	for _, s := range seeds {
		if _, _, err := parseMailAgeKey(s); err == nil {
			valid++
		}
	}
	if valid == 0 || valid == len(seeds) {
		t.Fatalf("%d seeds, %d valid: want both valid and invalid ones", len(seeds), valid)
	}
}

// BenchmarkFetchMail measures what a retrieve-mail costs the provider: one read transaction
// that finds the first chunk at or after the client's number and how many follow it, in a mail
// queue holding queued chunks of the default geometry's size (2,000 is about one mail of 32
// MiB, the mailbox service's limit).
func BenchmarkFetchMail(b *testing.B) {
	for _, queued := range []int{1, 2000} {
		b.Run(fmt.Sprintf("queued=%d", queued), func(b *testing.B) {
			s, err := OpenStore(filepath.Join(b.TempDir(), "provider.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			k, _ := keys.GenerateLinkKey(rand.Reader)
			if err := s.AddUser(User{Name: "bob", LinkKey: k.Public()}); err != nil {
				b.Fatal(err)
			}
			chunks := make([][]byte, queued)
			for i := range chunks {
				chunks[i] = make([]byte, sphinx.DefaultGeometry().PacketSize())
			}
			if err := s.EnqueueMail("bob", [16]byte{1}, chunks, testKeep); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				it, rem, err := s.FetchMail("bob", 1)
				if err != nil || it == nil || rem != queued-1 {
					b.Fatalf("fetch: %v %d %v", it, rem, err)
				}
			}
		})
	}
}
