package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/mixd/internal/provider"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// newQueueNode makes a provider node that is not running (its queue writer is started by the
// test) with the given users and queue limit.
func newQueueNode(t *testing.T, queueLimit int, users ...string) *Node {
	t.Helper()
	tn := newTestNet(t)
	cfg := tn.config("alpha", "provider", t.TempDir())
	cfg.Provider.QueueLimit = queueLimit
	n, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.close)
	for _, u := range users {
		k, err := keys.GenerateLinkKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.Store().AddUser(provider.User{Name: u, LinkKey: k.Public()}); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// finalHop is what the last unwrap gives for an item to user's queue: a reply through one of
// the user's SURBs, or a message to the queue service.
func finalHop(t *testing.T, n *Node, user string, reply bool, body string) *sphinx.Unwrapped {
	t.Helper()
	if reply {
		var id [sphinx.SURBIDSize]byte
		copy(id[:], body)
		return &sphinx.Unwrapped{Recipient: &sphinx.Recipient{Service: "loop", ID: user}, SURBID: &id, Payload: []byte(body)}
	}
	env, err := service.EncodeEnvelope(n.geometry.PayloadSize, n.geometry.SURBSize(), nil, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return &sphinx.Unwrapped{Recipient: &sphinx.Recipient{Service: queueService, ID: user}, Payload: env}
}

// histogram reads the sample count and sum of one of the node's histograms.
func histogram(t *testing.T, n *Node, name string) (uint64, float64) {
	t.Helper()
	mfs, err := n.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatalf("no histogram %s", name)
	return 0, 0
}

// waitQueued waits until the queue writer's input holds want items, the deliveries blocked
// behind it.
func waitQueued(t *testing.T, n *Node, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(n.qw.in) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d items wait for the queue writer, want %d", len(n.qw.in), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Many deliveries at once, for many users, are committed in fewer commits than items; each
// item is counted once by its own result (an unknown user and a full queue in the same commits
// as the others), and each user's items are in its queue in the order they were delivered.
func TestQueueWriterGroupCommits(t *testing.T) {
	const (
		users   = 40
		perUser = 20
		limit   = 30
	)
	var names []string
	for i := range users {
		names = append(names, fmt.Sprint("u", i))
	}
	n := newQueueNode(t, limit, append(names, "full")...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// One goroutine per user, each delivering its items in order; "full" gets 10 replies over
	// its limit and "nobody" does not exist. The writer is not running yet, so its input fills
	// and the deliveries wait behind it.
	var wg sync.WaitGroup
	deliver := func(user string, items int) {
		var hops []*sphinx.Unwrapped
		for i := range items {
			hops = append(hops, finalHop(t, n, user, user == "full" || i%2 == 0, fmt.Sprintf("%s %d", user, i)))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, u := range hops {
				n.deliver(ctx, u)
			}
		}()
	}
	for _, u := range names {
		deliver(u, perUser)
	}
	deliver("full", limit+10)
	deliver("nobody", perUser)
	total := users*perUser + limit + 10 + perUser
	waitQueued(t, n, maxEnqueueBatch)

	done := make(chan struct{})
	go func() {
		defer close(done)
		n.enqueueLoop(ctx, wg.Wait)
	}()
	wg.Wait()
	if err := n.flushQueue(ctx); err != nil {
		t.Fatal(err)
	}

	delivered := metricValue(t, n, "mixd_packets_delivered_total", map[string]string{"service": "reply"}) +
		metricValue(t, n, "mixd_packets_delivered_total", map[string]string{"service": queueService})
	if want := users*perUser + limit; delivered != float64(want) {
		t.Errorf("%v items delivered, want %d", delivered, want)
	}
	if full := metricValue(t, n, "mixd_packets_dropped_total", map[string]string{"reason": "queue:full"}); full != 10 {
		t.Errorf("%v dropped as queue:full, want 10", full)
	}
	if unknown := metricValue(t, n, "mixd_packets_dropped_total", map[string]string{"reason": "queue:unknown_user"}); unknown != perUser {
		t.Errorf("%v dropped as queue:unknown_user, want %d", unknown, perUser)
	}
	// A batch of refused items alone is not committed, so the commits carry between the
	// delivered items and all of them.
	commits, items := histogram(t, n, "mixd_queue_commit_items")
	if items < delivered || items > float64(total) || commits >= uint64(items) || commits < uint64((int(delivered)+maxEnqueueBatch-1)/maxEnqueueBatch) {
		t.Errorf("%d commits of %v items in all, want %v to %d items in fewer commits (at most %d each)", commits, items, delivered, total, maxEnqueueBatch)
	}
	t.Logf("%d items in %d commits", total, commits)

	for _, u := range names {
		var from uint64
		for i := range perUser {
			it, _, err := n.Store().Fetch(u, from)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("%s %d", u, i); it == nil || string(it.Body) != want {
				t.Fatalf("%s's item %d: %+v, want %q", u, i, it, want)
			}
			if kind := map[bool]byte{true: provider.ItemReply, false: provider.ItemMessage}[i%2 == 0]; it.Kind != kind {
				t.Fatalf("%s's item %d of kind %d, want %d", u, i, it.Kind, kind)
			}
			from = it.Seq + 1
		}
		if it, _, _ := n.Store().Fetch(u, from); it != nil {
			t.Fatalf("%s's queue holds more than its %d items", u, perUser)
		}
	}
	if l, _ := n.Store().QueueLen("full"); l != limit {
		t.Fatalf("full's queue holds %d items, want %d", l, limit)
	}

	cancel()
	<-done
}

// At shutdown the writer waits until no delivery worker can queue more, then commits what
// waits: every item handed over is committed, every other one is counted as dropped at
// shutdown, and the store holds exactly the delivered ones.
func TestQueueWriterDrainsAtShutdown(t *testing.T) {
	n := newQueueNode(t, 10000, "alice")
	ctx, cancel := context.WithCancel(context.Background())
	const sent = maxEnqueueBatch + 44
	var wg sync.WaitGroup
	for i := range sent {
		u := finalHop(t, n, "alice", true, fmt.Sprint("echo ", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.deliver(ctx, u)
		}()
	}
	waitQueued(t, n, maxEnqueueBatch)
	cancel()
	n.enqueueLoop(ctx, wg.Wait) // returns once it has committed what was handed over

	delivered := metricValue(t, n, "mixd_packets_delivered_total", map[string]string{"service": "reply"})
	dropped := metricValue(t, n, "mixd_packets_dropped_total", map[string]string{"reason": "shutdown"})
	// The writer may still take a batch in the normal way after the cancel, making room for a
	// few more: at least the items waiting at the cancel are committed.
	if delivered+dropped != sent || delivered < maxEnqueueBatch {
		t.Fatalf("%v delivered and %v dropped at shutdown, of %d sent (%d waiting at the cancel)", delivered, dropped, sent, maxEnqueueBatch)
	}
	if l, err := n.Store().QueueLen("alice"); err != nil || float64(l) != delivered {
		t.Fatalf("alice's queue holds %d items (%v), want the %v delivered", l, err, delivered)
	}
}
