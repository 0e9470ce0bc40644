package provider

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// newBatchStore opens a store at a new path with the given users.
func newBatchStore(t *testing.T, users ...string) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "provider.db")
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for _, u := range users {
		if err := s.AddUser(User{Name: u, LinkKey: linkKey(t)}); err != nil {
			t.Fatal(err)
		}
	}
	return s, path
}

// bodies fetches every item of user's queue from the start, in order, without acknowledging
// any (each fetch asks from the previous item's number, as a client that keeps them would).
func bodies(t *testing.T, s *Store, user string) []string {
	t.Helper()
	var out []string
	var from uint64
	for {
		it, _, err := s.Fetch(user, from)
		if err != nil {
			t.Fatal(err)
		}
		if it == nil {
			return out
		}
		out = append(out, fmt.Sprintf("%d:%s", it.Kind, it.Body))
		from = it.Seq + 1
	}
}

func reply(body string) *Item   { return &Item{Kind: ItemReply, Body: []byte(body)} }
func message(body string) *Item { return &Item{Kind: ItemMessage, Body: []byte(body)} }

// One batch for several users: an unknown user and a full queue are refused for their items
// alone, every other item is committed in batch order, and a copy of the database taken right
// after the commit (what a crash would leave: bbolt writes nothing more until the next commit)
// holds exactly the committed items.
func TestEnqueueBatchMixedUsers(t *testing.T) {
	s, path := newBatchStore(t, "alice", "bob", "carol")
	const limit = 2
	for i := range limit {
		if err := s.Enqueue("carol", reply(fmt.Sprint("c", i)), limit); err != nil {
			t.Fatal(err)
		}
	}
	batch := []Enqueued{
		{"alice", reply("a0")},
		{"nobody", reply("n0")},
		{"bob", message("b0")},
		{"carol", reply("c2")}, // carol's replies are at the limit
		{"alice", message("a1")},
		{"carol", message("c3")}, // messages are bounded apart: this one fits
		{"bob", reply("b1")},
		{"alice", &Item{Kind: 7, Body: []byte("a2")}},
		{"alice", reply("a3")},
	}
	res, err := s.EnqueueBatch(batch, limit)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != len(batch) {
		t.Fatalf("%d results for %d items", len(res), len(batch))
	}
	for i, want := range []error{nil, ErrUnknownUser, nil, ErrQueueFull, nil, nil, nil, errKind, nil} {
		switch {
		case want == nil && res[i] != nil:
			t.Errorf("item %d (%s): %v", i, batch[i].User, res[i])
		case want == errKind && (res[i] == nil || errors.Is(res[i], ErrQueueFull) || errors.Is(res[i], ErrUnknownUser)):
			t.Errorf("item %d of an unknown kind: %v", i, res[i])
		case want != nil && want != errKind && !errors.Is(res[i], want):
			t.Errorf("item %d (%s): %v, want %v", i, batch[i].User, res[i], want)
		}
	}

	crashed := filepath.Join(t.TempDir(), "crashed.db")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(crashed, data, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := OpenStore(crashed)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := map[string][]string{
		"alice": {"2:a0", "1:a1", "2:a3"},
		"bob":   {"1:b0", "2:b1"},
		"carol": {"2:c0", "2:c1", "1:c3"},
	}
	for name, st := range map[string]*Store{"store": s, "copy after the commit": c} {
		for user, w := range want {
			if got := bodies(t, st, user); fmt.Sprint(got) != fmt.Sprint(w) {
				t.Errorf("%s: %s's queue holds %v, want %v", name, user, got, w)
			}
		}
	}
	if _, err := c.User("nobody"); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("an item for an unknown user made the user: %v", err)
	}
}

// errKind marks, in TestEnqueueBatchMixedUsers, the result of an item of an unknown kind.
var errKind = errors.New("an item of an unknown kind")

// The bounds count the batch's own items: two items for one user in one batch both count, the
// messages against MaxMessageItems (or the limit when lower), the replies against the limit
// apart; acknowledged items deleted by the batch's prune free their places first.
func TestEnqueueBatchCountsLimitsWithinBatch(t *testing.T) {
	s, _ := newBatchStore(t, "alice", "bob", "dave")
	const limit = 100
	var batch []Enqueued
	for i := range MaxMessageItems + 3 {
		batch = append(batch, Enqueued{"bob", message(fmt.Sprint("m", i))})
		if i < limit+5 {
			batch = append(batch, Enqueued{"alice", reply(fmt.Sprint("r", i))})
		}
	}
	for i := range limit + 5 - (MaxMessageItems + 3) {
		batch = append(batch, Enqueued{"alice", reply(fmt.Sprint("r", MaxMessageItems+3+i))})
	}
	for i := range 5 {
		batch = append(batch, Enqueued{"dave", message(fmt.Sprint("d", i))})
	}
	const daveLimit = 3 // dave's items go in a batch of their own, with a lower limit
	res, err := s.EnqueueBatch(batch[:len(batch)-5], limit)
	if err != nil {
		t.Fatal(err)
	}
	full := map[string]int{}
	for i, err := range res {
		switch {
		case errors.Is(err, ErrQueueFull):
			full[batch[i].User]++
		case err != nil:
			t.Fatalf("item %d: %v", i, err)
		}
	}
	if full["bob"] != 3 || full["alice"] != 5 {
		t.Fatalf("refused as full: %v, want bob 3 (over MaxMessageItems) and alice 5 (over the limit)", full)
	}
	// The refused ones are the last ones: bob's queue holds his first MaxMessageItems messages.
	got := bodies(t, s, "bob")
	if len(got) != MaxMessageItems || got[0] != "1:m0" || got[MaxMessageItems-1] != fmt.Sprintf("1:m%d", MaxMessageItems-1) {
		t.Fatalf("bob's queue: %d items, %v ... %v", len(got), got[:1], got[len(got)-1:])
	}
	if n, _ := s.QueueLen("alice"); n != limit {
		t.Fatalf("alice's queue holds %d replies, want %d", n, limit)
	}

	res, err = s.EnqueueBatch(batch[len(batch)-5:], daveLimit)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range res {
		if (i < daveLimit) != (err == nil) || (err != nil && !errors.Is(err, ErrQueueFull)) {
			t.Fatalf("dave's message %d with a limit of %d: %v", i, daveLimit, err)
		}
	}

	// alice acknowledges 10 replies: a batch of 12 deletes them first, so 10 fit and 2 do not.
	if _, _, err := s.Fetch("alice", 11); err != nil {
		t.Fatal(err)
	}
	var more []Enqueued
	for i := range 12 {
		more = append(more, Enqueued{"alice", reply(fmt.Sprint("late", i))})
	}
	res, err = s.EnqueueBatch(more, limit)
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range res {
		if (i < 10) != (err == nil) {
			t.Fatalf("reply %d after 10 were acknowledged: %v", i, err)
		}
	}
	if n := stored(t, s, "alice"); n != limit {
		t.Fatalf("%d items on disk, want %d", n, limit)
	}
}

// A batch over MaxEnqueueBatch is refused whole, and nothing of it is stored.
func TestEnqueueBatchTooLarge(t *testing.T) {
	s, _ := newBatchStore(t, "alice")
	batch := make([]Enqueued, MaxEnqueueBatch+1)
	for i := range batch {
		batch[i] = Enqueued{"alice", reply("x")}
	}
	if res, err := s.EnqueueBatch(batch, 1<<20); err == nil || res != nil {
		t.Fatalf("a batch of %d: %v, %v", len(batch), res, err)
	}
	if n, _ := s.QueueLen("alice"); n != 0 {
		t.Fatalf("%d items stored from a refused batch", n)
	}
	if _, err := s.EnqueueBatch(batch[:MaxEnqueueBatch], 1<<20); err != nil {
		t.Fatalf("a batch of %d: %v", MaxEnqueueBatch, err)
	}
}

// A transaction that fails (here: the database is closed) returns an error and no results.
func TestEnqueueBatchFailedCommit(t *testing.T) {
	s, _ := newBatchStore(t, "alice")
	s.Close()
	if res, err := s.EnqueueBatch([]Enqueued{{"alice", reply("x")}}, 10); err == nil || res != nil {
		t.Fatalf("batch on a closed store: %v, %v", res, err)
	}
}

// BenchmarkEnqueue compares the ways mixd's delivery workers can queue ACKs and loop echoes
// (16 KiB bodies, spread over 100 users): each worker calling Enqueue, one commit per item, and
// the workers handing the items to one writer that commits whatever waits with EnqueueBatch
// (the node's queue writer, mixd/internal/node/enqueue.go). fsyncs/item counts bbolt's two
// fdatasyncs per commit.
func BenchmarkEnqueue(b *testing.B) {
	for _, workers := range []int{4, 64} {
		b.Run(fmt.Sprintf("each/workers=%d", workers), func(b *testing.B) {
			benchEnqueue(b, workers, false)
		})
		b.Run(fmt.Sprintf("batch/workers=%d", workers), func(b *testing.B) {
			benchEnqueue(b, workers, true)
		})
	}
}

func benchEnqueue(b *testing.B, workers int, batched bool) {
	s, err := OpenStore(filepath.Join(b.TempDir(), "provider.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const users = 100
	for i := range users {
		k := make([]byte, 32)
		k[0], k[1] = byte(i), 1
		u := User{Name: fmt.Sprint("user", i)}
		copy(u.LinkKey[:], k)
		if err := s.AddUser(u); err != nil {
			b.Fatal(err)
		}
	}
	body := make([]byte, 16<<10)
	const limit = 1 << 30
	items := make(chan int)
	var commits, committed int
	var wg sync.WaitGroup
	var submit func(Enqueued)
	var stop func()
	if batched {
		in := make(chan Enqueued, 256)
		done := make(chan struct{})
		go func() {
			defer close(done)
			batch := make([]Enqueued, 0, 256)
			for e := range in {
				batch = append(batch[:0], e)
			more:
				for len(batch) < cap(batch) {
					select {
					case e, ok := <-in:
						if !ok {
							break more
						}
						batch = append(batch, e)
					default:
						break more
					}
				}
				res, err := s.EnqueueBatch(batch, limit)
				if err != nil {
					b.Error(err)
					continue
				}
				for _, err := range res {
					if err != nil {
						b.Error(err)
					}
				}
				commits++
				committed += len(batch)
			}
		}()
		submit = func(e Enqueued) { in <- e }
		stop = func() { close(in); <-done }
	} else {
		var mu sync.Mutex
		submit = func(e Enqueued) {
			if err := s.Enqueue(e.User, e.Item, limit); err != nil {
				b.Error(err)
			}
			mu.Lock()
			commits++
			committed++
			mu.Unlock()
		}
		stop = func() {}
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range items {
				submit(Enqueued{User: fmt.Sprint("user", i%users), Item: &Item{Kind: ItemReply, Body: body}})
			}
		}()
	}
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		items <- i
	}
	close(items)
	wg.Wait()
	stop()
	elapsed := time.Since(start)
	b.StopTimer()
	if committed != b.N {
		b.Fatalf("%d items committed of %d", committed, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "items/s")
	b.ReportMetric(2*float64(commits)/float64(b.N), "fsyncs/item")
	b.ReportMetric(float64(b.N)/float64(commits), "items/commit")
}

// txID is the number of the store's last committed write transaction.
func txID(t *testing.T, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// A batch whose items are all refused is not committed (anyone can send such items: they cost
// no fdatasync), and an acknowledged item it would have pruned waits for the next commit.
func TestEnqueueBatchAllRefusedNotCommitted(t *testing.T) {
	s, _ := newBatchStore(t, "alice")
	for i := range 3 {
		if err := s.Enqueue("alice", reply(fmt.Sprint("r", i)), 3); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Fetch("alice", 2); err != nil { // alice acknowledges item 1
		t.Fatal(err)
	}
	before := txID(t, s)
	res, err := s.EnqueueBatch([]Enqueued{{"nobody", reply("x")}, {"alice", &Item{Kind: 9}}}, 3)
	if err != nil || !errors.Is(res[0], ErrUnknownUser) || res[1] == nil {
		t.Fatalf("refused batch: %v, %v", res, err)
	}
	if after := txID(t, s); after != before {
		t.Fatalf("a batch of refused items committed (transaction %d to %d)", before, after)
	}
	if n := stored(t, s, "alice"); n != 3 {
		t.Fatalf("%d items on disk, want 3 (the prune waits)", n)
	}
	// The next commit prunes: item 1 is gone, and its place is free for one more reply.
	res, err = s.EnqueueBatch([]Enqueued{{"alice", reply("r3")}, {"alice", reply("r4")}}, 3)
	if err != nil || res[0] != nil || !errors.Is(res[1], ErrQueueFull) {
		t.Fatalf("batch after the refused one: %v, %v", res, err)
	}
	if got := bodies(t, s, "alice"); fmt.Sprint(got) != "[2:r1 2:r2 2:r3]" {
		t.Fatalf("alice's queue: %v", got)
	}
}
