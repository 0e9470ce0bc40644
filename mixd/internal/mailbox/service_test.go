package mailbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/panoramix-mixnet/panoramix/internal/syncbuf"
	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

func TestDeliverOutOfOrderWithDuplicates(t *testing.T) {
	st := newMailstore(t)
	cfg := testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st))
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	s := newService(t, cfg)

	msg := testMessage(t, 5*testCapacity+100)
	id := newID(t)
	frags := fragments(t, id, msg)
	if len(frags) != 6 {
		t.Fatalf("%d fragments, want 6", len(frags))
	}
	// Out of order, with retransmissions of fragments already stored.
	for _, i := range []int{3, 0, 5, 3, 1, 0, 4} {
		sendStored(t, s, "bob", frags[i])
	}
	if n := count(t, s, bucketOutbox); n != 0 {
		t.Fatalf("outbox holds %d messages before the last fragment", n)
	}
	sendStored(t, s, "bob", frags[2])
	if n := count(t, s, bucketOutbox); n != 1 {
		t.Fatalf("outbox holds %d messages, want 1", n)
	}
	if got := metricValue(s.m.stored); got != 6 {
		t.Errorf("fragments stored metric %v, want 6", got)
	}
	if got := metricValue(s.m.duplicates); got != 2 {
		t.Errorf("duplicates metric %v, want 2", got)
	}

	stop := run(t, s)
	waitFor(t, "delivery", func() bool { return len(inbox(t, st, "bob")) > 0 })
	// A retransmission after delivery is acknowledged and not delivered again.
	sendStored(t, s, "bob", frags[4])
	stop()
	got := inbox(t, st, "bob")
	if len(got) != 1 || !bytes.Equal(got[0], msg) {
		t.Fatalf("inbox holds %d messages (first intact: %v), want the one message", len(got), len(got) > 0 && bytes.Equal(got[0], msg))
	}
	for _, b := range [][]byte{bucketFrags, bucketMsgs, bucketOutbox, bucketPending} {
		if n := count(t, s, b); n != 0 {
			t.Errorf("bucket %s holds %d keys after delivery", b, n)
		}
	}
	if n := count(t, s, bucketDone); n != 1 {
		t.Errorf("%d delivered ids remembered, want 1", n)
	}
	if got := metricValue(s.m.delivered); got != 1 {
		t.Errorf("delivered metric %v, want 1", got)
	}
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

func TestDeliverSmallAndEmptyMessages(t *testing.T) {
	st := newMailstore(t)
	s := newService(t, testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st)))
	stop := run(t, s)
	msgs := [][]byte{testMessage(t, 10), {}, testMessage(t, testCapacity), testMessage(t, testCapacity+1)}
	for _, m := range msgs {
		for _, f := range fragments(t, newID(t), m) {
			sendStored(t, s, "bob", f)
		}
	}
	waitFor(t, "deliveries", func() bool { return len(inbox(t, st, "bob")) >= len(msgs) })
	stop()
	got := inbox(t, st, "bob")
	if len(got) != len(msgs) {
		t.Fatalf("%d messages delivered, want %d", len(got), len(msgs))
	}
	for _, m := range msgs {
		found := false
		for _, g := range got {
			found = found || bytes.Equal(g, m)
		}
		if !found {
			t.Errorf("message of %d bytes not delivered intact", len(m))
		}
	}
}

func TestMalformedFragments(t *testing.T) {
	st := newMailstore(t)
	s := newService(t, testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st)))
	id := newID(t)
	frags := fragments(t, id, testMessage(t, 2*testCapacity+10))
	good := frags[0]

	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := []struct {
		name  string
		frag  []byte
		noAck bool
	}{
		{"truncated", good[:len(good)-1], false},
		{"extra byte", append(bytes.Clone(good), 0), false},
		{"version", mutate(func(b []byte) []byte { b[0] = 2; return b }), false},
		{"count zero", mutate(func(b []byte) []byte { b[19], b[20] = 0, 0; return b }), false},
		{"index past count", mutate(func(b []byte) []byte { b[17], b[18] = 0, 7; return b }), false},
		{"length does not match count", mutate(func(b []byte) []byte { b[24] ^= 0x40; return b }), false},
		{"header only", good[:client.FragmentHeaderSize], false},
		{"no index", good[:18], true},
		{"empty", nil, true},
		{"index beyond any message", mutate(func(b []byte) []byte { b[17], b[18] = 0xff, 0xff; return b }), true},
		{"over capacity", append(bytes.Clone(good), make([]byte, testCapacity)...), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := send(t, s, "bob", c.frag)
			if c.noAck {
				if a != nil {
					t.Fatalf("ack %+v for a fragment without id and index", a)
				}
				return
			}
			if a == nil || a.Status != client.AckMalformed || a.ID != id {
				t.Fatalf("ack %+v, want malformed for %s", a, id)
			}
		})
	}
	if n := count(t, s, bucketFrags); n != 0 {
		t.Fatalf("%d malformed fragments stored", n)
	}

	// A fragment that parses but disagrees with the message already started under its id.
	sendStored(t, s, "bob", frags[0])
	other := fragments(t, id, testMessage(t, 4*testCapacity))
	if a := send(t, s, "bob", other[1]); a == nil || a.Status != client.AckMalformed {
		t.Fatalf("ack %+v for a fragment that disagrees with its message, want malformed", a)
	}
	if n := count(t, s, bucketFrags); n != 1 {
		t.Fatalf("%d fragments stored, want 1", n)
	}
}

func TestUnknownUserAndNoSURB(t *testing.T) {
	st := newMailstore(t)
	s := newService(t, testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st)))
	frags := fragments(t, newID(t), testMessage(t, 100))
	for _, user := range []string{"carol", "", "Bob", strings.Repeat("a", 300)} {
		if a := send(t, s, user, frags[0]); a == nil || a.Status != client.AckUnknownRecipient {
			t.Errorf("user %q: ack %+v, want unknown recipient", user, a)
		}
	}
	if n := count(t, s, bucketMsgs); n != 0 {
		t.Fatalf("%d messages stored for unknown users", n)
	}
	// Without a SURB the fragment is stored all the same; nothing is sent back.
	r := &recorder{noSURB: true}
	if err := s.Deliver(context.Background(), &service.Request{Recipient: "bob", Data: frags[0]}, r); err != nil {
		t.Fatal(err)
	}
	if len(r.replies) != 0 || count(t, s, bucketOutbox) != 1 {
		t.Fatalf("no-SURB fragment: %d replies, %d in outbox", len(r.replies), count(t, s, bucketOutbox))
	}
}

func TestReplyFailureIsReported(t *testing.T) {
	st := newMailstore(t)
	s := newService(t, testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st)))
	frags := fragments(t, newID(t), testMessage(t, 100))
	r := &recorder{fail: errors.New("link down")}
	if err := s.Deliver(context.Background(), &service.Request{Recipient: "bob", Data: frags[0]}, r); err == nil {
		t.Fatal("a failed reply was not reported")
	}
	// The fragment is stored: the retransmission that follows a lost ack is a duplicate.
	sendStored(t, s, "bob", frags[0])
	if got := metricValue(s.m.duplicates); got != 1 {
		t.Fatalf("duplicates %v, want 1", got)
	}
}

func TestOverQuotaBeforeStoring(t *testing.T) {
	st := newMailstore(t)
	s := newService(t, testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st)))
	id := newID(t)
	frags := fragments(t, id, testMessage(t, 3*testCapacity))
	for i, f := range frags {
		a := send(t, s, "tiny", f)
		if a == nil || a.Status != client.AckOverQuota || a.ID != id || a.Index != uint16(i) {
			t.Fatalf("fragment %d: ack %+v, want over quota", i, a)
		}
	}
	if n := count(t, s, bucketFrags); n != 0 {
		t.Fatalf("%d fragments stored for a user over quota", n)
	}
	if got := metricValue(s.m.failures.WithLabelValues(reasonOverQuota)); got != 1 {
		t.Errorf("over quota failures %v, want 1 (the message, not each fragment)", got)
	}
	// A message that fits is still taken.
	small := testMessage(t, 500)
	for _, f := range fragments(t, newID(t), small) {
		sendStored(t, s, "tiny", f)
	}
	stop := run(t, s)
	waitFor(t, "delivery", func() bool { return len(inbox(t, st, "tiny")) == 1 })
	stop()
	if got := inbox(t, st, "tiny"); !bytes.Equal(got[0], small) {
		t.Fatal("small message not intact")
	}
}

func TestOverQuotaAtDeliveryBounces(t *testing.T) {
	st := newMailstore(t)
	s := newService(t, testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st)))
	id := newID(t)
	frags := fragments(t, id, testMessage(t, 3*testCapacity))
	for _, f := range frags {
		sendStored(t, s, "bob", f)
	}
	// The quota shrinks between the last fragment and delivery.
	if err := st.SetQuota("bob", 100); err != nil {
		t.Fatal(err)
	}
	stop := run(t, s)
	waitFor(t, "the failure", func() bool { return count(t, s, bucketOutbox) == 0 })
	stop()
	if got := inbox(t, st, "bob"); len(got) != 0 {
		t.Fatalf("%d messages delivered over quota", len(got))
	}
	// The sender lost an ack and retransmits: now it learns the message bounced.
	a := send(t, s, "bob", frags[1])
	if a == nil || a.Status != client.AckOverQuota || a.Index != 1 {
		t.Fatalf("ack %+v, want over quota", a)
	}
	if n := count(t, s, bucketFrags); n != 0 {
		t.Fatalf("%d fragments left after the failure", n)
	}
	if got := metricValue(s.m.failures.WithLabelValues(reasonOverQuota)); got != 1 {
		t.Errorf("over quota failures %v, want 1", got)
	}
}

func TestUserPendingLimit(t *testing.T) {
	st := newMailstore(t)
	cfg := testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st))
	cfg.MaxUserPending = int64(3 * testCapacity)
	s := newService(t, cfg)
	// An incomplete message is charged what it stores, not what it claims: a second message
	// fits beside it, and the first is evicted (oldest latest fragment) when the second needs
	// its room.
	first := fragments(t, newID(t), testMessage(t, 2*testCapacity+1)[:2*testCapacity+1])
	sendStored(t, s, "bob", first[0])
	sendStored(t, s, "bob", first[1])
	second := fragments(t, newID(t), testMessage(t, 2*testCapacity)[:2*testCapacity])
	sendStored(t, s, "bob", second[0])
	sendStored(t, s, "bob", second[1])
	if got := metricValue(s.m.evicted); got != 1 {
		t.Fatalf("%v messages evicted, want 1", got)
	}
	// The evicted message's sender learns of it at its next fragment, and bounces the mail.
	if a := send(t, s, "bob", first[2]); a == nil || a.Status != client.AckOverQuota {
		t.Fatalf("fragment of an evicted message: ack %+v, want over quota", a)
	}
	// A complete message is never evicted: a new one that does not fit beside it is over quota.
	third := fragments(t, newID(t), testMessage(t, 2*testCapacity)[:2*testCapacity])
	if a := send(t, s, "bob", third[0]); a == nil || a.Status != client.AckOverQuota {
		t.Fatalf("ack %+v, want over quota", a)
	}
	stop := run(t, s)
	waitFor(t, "delivery", func() bool { return len(inbox(t, st, "bob")) == 1 })
	stop()
}

func TestUserIncompleteLimit(t *testing.T) {
	st := newMailstore(t)
	cfg := testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st))
	cfg.MaxUserIncomplete = 2
	s := newService(t, cfg)
	var msgs [][][]byte
	for range 3 {
		m := fragments(t, newID(t), testMessage(t, 2*testCapacity)[:2*testCapacity])
		sendStored(t, s, "bob", m[0])
		msgs = append(msgs, m)
	}
	if a := send(t, s, "bob", msgs[0][1]); a == nil || a.Status != client.AckOverQuota {
		t.Fatalf("fragment of the evicted message: ack %+v, want over quota", a)
	}
	sendStored(t, s, "bob", msgs[1][1])
	sendStored(t, s, "bob", msgs[2][1])
	if n := count(t, s, bucketLRU); n != 0 {
		t.Fatalf("%d messages left in the eviction order, want 0", n)
	}
}

func TestTotalPendingLimit(t *testing.T) {
	st := newMailstore(t)
	if err := st.CreateUser("carol", 0); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st))
	cfg.MaxPending = int64(3 * testCapacity)
	s := newService(t, cfg)
	// Another user's incomplete message is evicted to make room.
	carols := fragments(t, newID(t), testMessage(t, 2*testCapacity)[:2*testCapacity])
	sendStored(t, s, "carol", carols[0])
	for _, f := range fragments(t, newID(t), testMessage(t, 2*testCapacity)[:2*testCapacity]) {
		sendStored(t, s, "bob", f)
	}
	second := fragments(t, newID(t), testMessage(t, 2*testCapacity)[:2*testCapacity])
	sendStored(t, s, "bob", second[0])
	if a := send(t, s, "carol", carols[1]); a == nil || a.Status != client.AckOverQuota {
		t.Fatalf("fragment of the evicted message: ack %+v, want over quota", a)
	}
	// Complete messages are never evicted: with them and the message's own fragment holding
	// everything, its next fragment is neither stored nor acknowledged; the sender retries.
	r := &recorder{}
	if err := s.Deliver(context.Background(), &service.Request{Recipient: "bob", Data: second[1]}, r); err == nil {
		t.Fatal("a fragment over the total limit was accepted")
	}
	if len(r.replies) != 0 {
		t.Fatal("a fragment that was not stored was acknowledged")
	}
	// Once the complete message is delivered, the retransmission is stored.
	stop := run(t, s)
	waitFor(t, "delivery", func() bool { return len(inbox(t, st, "bob")) == 1 })
	sendStored(t, s, "bob", second[1])
	waitFor(t, "delivery", func() bool { return len(inbox(t, st, "bob")) == 2 })
	stop()
}

// TestChargesRebuiltAtOpen: what messages are charged is recomputed from the stored fragments
// when the service opens, so a database that charged claimed lengths is corrected.
func TestChargesRebuiltAtOpen(t *testing.T) {
	st := newMailstore(t)
	cfg := testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st))
	s := newService(t, cfg)
	frags := fragments(t, newID(t), testMessage(t, 3*testCapacity)[:3*testCapacity])
	sendStored(t, s, "bob", frags[0])
	var before usage
	var total uint64
	s.db.View(func(tx *bolt.Tx) error { before, total = getUsage(tx, "bob"), getTotal(tx); return nil })
	if before.Incomplete != uint64(testCapacity) || before.Count != 1 || total != uint64(testCapacity) {
		t.Fatalf("usage %+v, total %d: want one fragment's %d bytes", before, total, testCapacity)
	}
	// Spoil the counts as an older version's claimed-length charge would have.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		if err := putUsage(tx, "bob", usage{Incomplete: 1 << 30, Count: 9}); err != nil {
			return err
		}
		return addTotal(tx, 1<<30)
	}); err != nil {
		t.Fatal(err)
	}
	s, _ = crash(t, s, cfg)
	var after usage
	s.db.View(func(tx *bolt.Tx) error { after, total = getUsage(tx, "bob"), getTotal(tx); return nil })
	if after != before || total != uint64(testCapacity) {
		t.Fatalf("after reopening: usage %+v, total %d; want %+v, %d", after, total, before, testCapacity)
	}
	for _, f := range frags[1:] {
		sendStored(t, s, "bob", f)
	}
	if n := count(t, s, bucketLRU) + count(t, s, bucketUserLRU); n != 0 {
		t.Fatalf("%d eviction index entries left for a complete message", n)
	}
}

func TestTooLarge(t *testing.T) {
	st := newMailstore(t)
	cfg := testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st))
	cfg.MaxMessageSize = 2 * testCapacity
	s := newService(t, cfg)
	frags := fragments(t, newID(t), testMessage(t, 2*testCapacity+1))
	if a := send(t, s, "bob", frags[2]); a == nil || a.Status != client.AckTooLarge || a.Index != 2 {
		t.Fatalf("ack %+v, want too large", a)
	}
	for _, f := range fragments(t, newID(t), testMessage(t, 2*testCapacity)[:2*testCapacity]) {
		sendStored(t, s, "bob", f)
	}
	// The limit is capped by what the fragment format can carry.
	cfg.Path = filepath.Join(t.TempDir(), "other.db")
	cfg.MaxMessageSize = 1 << 40
	s2 := newService(t, cfg)
	if s2.maxSize != client.MaxMessageSize(testCapacity) {
		t.Fatalf("max message size %d, want the format's %d", s2.maxSize, client.MaxMessageSize(testCapacity))
	}
}

func TestExpiry(t *testing.T) {
	st := newMailstore(t)
	cfg := testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st))
	var logs syncbuf.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	cfg.Expiry = time.Hour
	s := newService(t, cfg)
	clock := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }

	incomplete := fragments(t, newID(t), testMessage(t, 3*testCapacity))
	sendStored(t, s, "bob", incomplete[0])
	sendStored(t, s, "bob", incomplete[2])
	delivered := fragments(t, newID(t), testMessage(t, 100))
	sendStored(t, s, "bob", delivered[0])
	if err := s.deliverMessage(context.Background(), msgKey("bob", mustParse(t, delivered[0]).ID)); err != nil {
		t.Fatal(err)
	}

	clock = clock.Add(59 * time.Minute)
	if err := s.sweep(); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, bucketMsgs); n != 1 {
		t.Fatalf("%d incomplete messages before the expiry, want 1", n)
	}
	// Within the expiry the delivered id is remembered: a retransmission is acked, not stored.
	sendStored(t, s, "bob", delivered[0])
	if n := count(t, s, bucketOutbox); n != 0 {
		t.Fatal("a delivered message was queued again")
	}

	clock = clock.Add(2 * time.Minute)
	if err := s.sweep(); err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{bucketFrags, bucketMsgs, bucketPending, bucketDone} {
		if n := count(t, s, b); n != 0 {
			t.Errorf("bucket %s holds %d keys after the expiry", b, n)
		}
	}
	if got := metricValue(s.m.expired); got != 1 {
		t.Errorf("expired metric %v, want 1", got)
	}
	if !strings.Contains(logs.String(), "incomplete mail expired") || !strings.Contains(logs.String(), fmt.Sprintf("fragments=2 of=%d", len(incomplete))) {
		t.Errorf("no expiry log line in:\n%s", logs.String())
	}
	if got := inbox(t, st, "bob"); len(got) != 1 {
		t.Fatalf("%d messages in the inbox, want the one delivered", len(got))
	}
}

func mustParse(t *testing.T, b []byte) *client.Fragment {
	t.Helper()
	f, err := client.ParseFragment(b, testCapacity)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCrashWithIncompleteMessage(t *testing.T) {
	st := newMailstore(t)
	cfg := testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st))
	s := newService(t, cfg)
	msg := testMessage(t, 4*testCapacity)
	frags := fragments(t, newID(t), msg)
	for _, f := range frags[:3] {
		sendStored(t, s, "bob", f)
	}
	s, _ = crash(t, s, cfg)
	stop := run(t, s)
	// The sender did not see the ack of fragment 2 and resends it, then the rest arrives.
	sendStored(t, s, "bob", frags[2])
	for _, f := range frags[3:] {
		sendStored(t, s, "bob", f)
	}
	waitFor(t, "delivery", func() bool { return len(inbox(t, st, "bob")) > 0 })
	sendStored(t, s, "bob", frags[0])
	stop()
	if got := inbox(t, st, "bob"); len(got) != 1 || !bytes.Equal(got[0], msg) {
		t.Fatalf("%d messages delivered, want exactly one, intact", len(got))
	}
	if got := metricValue(s.m.duplicates); got != 2 {
		t.Errorf("duplicates %v after the restart, want 2", got)
	}
}

func TestCrashWithCompleteUndeliveredMessage(t *testing.T) {
	st := newMailstore(t)
	cfg := testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st))
	s := newService(t, cfg)
	msg := testMessage(t, 2*testCapacity)
	frags := fragments(t, newID(t), msg)
	for _, f := range frags {
		sendStored(t, s, "bob", f)
	}
	// Killed before Run delivered it.
	s, cfg = crash(t, s, cfg)
	if got := metricValue(s.m.outbox); got != 1 {
		t.Fatalf("outbox gauge %v after restart, want 1", got)
	}
	stop := run(t, s)
	waitFor(t, "delivery", func() bool { return len(inbox(t, st, "bob")) > 0 })
	stop()
	// Killed again after delivering: a retransmission is acked and nothing is delivered twice.
	s, _ = crash(t, s, cfg)
	stop = run(t, s)
	sendStored(t, s, "bob", frags[1])
	stop()
	if got := inbox(t, st, "bob"); len(got) != 1 || !bytes.Equal(got[0], msg) {
		t.Fatalf("%d messages delivered, want exactly one, intact", len(got))
	}
}

// flaky fails temporarily until it is told to work.
type flaky struct {
	Backend
	down  atomic.Bool
	tries atomic.Int64
}

func (f *flaky) Deliver(ctx context.Context, user string, msg []byte) error {
	f.tries.Add(1)
	if f.down.Load() {
		return errors.New("backend temporarily unavailable")
	}
	return f.Backend.Deliver(ctx, user, msg)
}

func TestTemporaryFailureRetries(t *testing.T) {
	st := newMailstore(t)
	b := &flaky{Backend: NewStoreBackend(st)}
	b.down.Store(true)
	cfg := testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), b)
	s := newService(t, cfg)
	stop := run(t, s)
	msg := testMessage(t, 2*testCapacity)
	for _, f := range fragments(t, newID(t), msg) {
		sendStored(t, s, "bob", f)
	}
	waitFor(t, "three attempts", func() bool { return b.tries.Load() >= 3 })
	// Restart while the backend is still down: the outbox survives.
	stop()
	s, _ = crash(t, s, cfg)
	stop = run(t, s)
	b.down.Store(false)
	waitFor(t, "delivery", func() bool { return len(inbox(t, st, "bob")) > 0 })
	stop()
	if got := inbox(t, st, "bob"); len(got) != 1 || !bytes.Equal(got[0], msg) {
		t.Fatalf("%d messages delivered, want exactly one, intact", len(got))
	}
	if got := metricValue(s.m.delivered); got != 1 {
		t.Errorf("delivered %v, want 1", got)
	}
}

func TestRetryBackoff(t *testing.T) {
	st := newMailstore(t)
	b := &flaky{Backend: NewStoreBackend(st)}
	b.down.Store(true)
	cfg := testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), b)
	// Minutes, so that no test machine is slow enough to reach a retry by itself.
	cfg.RetryMin, cfg.RetryMax = time.Minute, 4*time.Minute
	s := newService(t, cfg)
	frags := fragments(t, newID(t), testMessage(t, 100))
	sendStored(t, s, "bob", frags[0])
	key := msgKey("bob", mustParse(t, frags[0]).ID)
	retry := map[string]*retryState{}
	for i, want := range []time.Duration{1, 2, 4, 4, 4} {
		want *= time.Minute
		next, err := s.deliverDue(context.Background(), retry)
		if err != nil {
			t.Fatal(err)
		}
		st := retry[string(key)]
		if st == nil || st.attempts != i+1 || !next.Equal(st.next) {
			t.Fatalf("attempt %d: retry state %+v, next %v", i+1, st, next)
		}
		if d := time.Until(next); d > want || d < want-30*time.Second {
			t.Fatalf("attempt %d: next try in %v, want %v", i+1, d, want)
		}
		// Nothing is tried again before the backoff has passed.
		if again, err := s.deliverDue(context.Background(), retry); err != nil || !again.Equal(next) || b.tries.Load() != int64(i+1) {
			t.Fatalf("attempt %d: tried again before the backoff (%d tries)", i+1, b.tries.Load())
		}
		st.next = time.Now().Add(-time.Millisecond) // the backoff has passed
	}
	if got := metricValue(s.m.retries); got != 5 {
		t.Errorf("retries %v, want 5", got)
	}
	// Once the backend works, the next due attempt delivers and forgets the retry state.
	b.down.Store(false)
	if next, err := s.deliverDue(context.Background(), retry); err != nil || !next.IsZero() || len(retry) != 0 {
		t.Fatalf("after recovery: next %v, err %v, %d retry states", next, err, len(retry))
	}
	if got := inbox(t, st, "bob"); len(got) != 1 {
		t.Fatalf("%d messages delivered, want 1", len(got))
	}
}

func TestConcurrentDeliveriesExactlyOnce(t *testing.T) {
	st := newMailstore(t)
	s := newService(t, testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st)))
	stop := run(t, s)
	const messages = 8
	var all [][]byte
	var want [][]byte
	for range messages {
		m := testMessage(t, 3*testCapacity)
		want = append(want, m)
		fs := fragments(t, newID(t), m)
		all = append(all, fs...)
		all = append(all, fs...) // every fragment twice
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(all))
	for i, f := range all {
		wg.Go(func() {
			r := &recorder{}
			if err := s.Deliver(context.Background(), &service.Request{Recipient: "bob", Data: f}, r); err != nil {
				errs <- err
				return
			}
			if a := r.ack(t); a == nil || a.Status != client.AckStored {
				errs <- fmt.Errorf("fragment %d: ack %+v", i, a)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	waitFor(t, "deliveries", func() bool { return len(inbox(t, st, "bob")) >= messages })
	stop()
	got := inbox(t, st, "bob")
	if len(got) != messages {
		t.Fatalf("%d messages delivered, want %d", len(got), messages)
	}
	for _, m := range want {
		n := 0
		for _, g := range got {
			if bytes.Equal(g, m) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("a message delivered %d times", n)
		}
	}
	if s, d := metricValue(s.m.stored), metricValue(s.m.duplicates); s != float64(len(all)/2) || d != float64(len(all)/2) {
		t.Fatalf("stored %v, duplicates %v, want %d each", s, d, len(all)/2)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	st := newMailstore(t)
	good := testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st))
	for name, mod := range map[string]func(*Config){
		"no path":        func(c *Config) { c.Path = "" },
		"no backend":     func(c *Config) { c.Backend = nil },
		"bad geometry":   func(c *Config) { c.Geometry = sphinx.Geometry{} },
		"tiny geometry":  func(c *Config) { c.Geometry = sphinx.Geometry{Hops: 5, PayloadSize: 64} },
		"negative":       func(c *Config) { c.Expiry = -time.Second },
		"retry inverted": func(c *Config) { c.RetryMin, c.RetryMax = time.Minute, time.Second },
		"unwritable dir": func(c *Config) { c.Path = filepath.Join(t.TempDir(), "missing", "x.db") },
	} {
		c := good
		mod(&c)
		if s, err := New(c); err == nil {
			s.Close()
			t.Errorf("%s: accepted", name)
		}
	}
	good.Geometry = sphinx.DefaultGeometry()
	s := newService(t, good)
	if s.Name() != "mailbox" || s.expiry != DefaultExpiry || s.maxSize != DefaultMaxMessageSize || s.maxUserPending != 4*DefaultMaxMessageSize {
		t.Fatalf("defaults: name %q expiry %v max size %d", s.Name(), s.expiry, s.maxSize)
	}
	// A second service on the same file fails instead of hanging.
	if s2, err := New(good); err == nil {
		s2.Close()
		t.Fatal("a second service opened the same file")
	}
}

func TestRunSweepsExpiredMessages(t *testing.T) {
	st := newMailstore(t)
	cfg := testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), NewStoreBackend(st))
	cfg.Expiry = 50 * time.Millisecond
	s := newService(t, cfg)
	frags := fragments(t, newID(t), testMessage(t, 2*testCapacity))
	sendStored(t, s, "bob", frags[0])
	stop := run(t, s)
	waitFor(t, "the expiry", func() bool { return metricValue(s.m.expired) == 1 })
	stop()
	for _, b := range [][]byte{bucketFrags, bucketMsgs, bucketPending} {
		if n := count(t, s, b); n != 0 {
			t.Errorf("bucket %s holds %d keys after the expiry", b, n)
		}
	}
}

// A crash after the mail store committed the message but before the service recorded the
// delivery: the store backend's delivery key makes the retry deliver nothing.
func TestCrashBetweenStoreCommitAndBookkeeping(t *testing.T) {
	st := newMailstore(t)
	b := NewStoreBackend(st)
	cfg := testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), b)
	s := newService(t, cfg)
	id := newID(t)
	msg := testMessage(t, 2*testCapacity)
	for _, f := range fragments(t, id, msg) {
		sendStored(t, s, "bob", f)
	}
	// The previous run got as far as the store's commit, then died.
	if err := b.(OnceBackend).DeliverOnce(t.Context(), "bob", id[:], msg); err != nil {
		t.Fatal(err)
	}
	s, _ = crash(t, s, cfg)
	stop := run(t, s)
	waitFor(t, "the outbox to drain", func() bool { return metricValue(s.m.outbox) == 0 })
	stop()
	if got := inbox(t, st, "bob"); len(got) != 1 || !bytes.Equal(got[0], msg) {
		t.Fatalf("%d messages in the INBOX, want exactly one, intact", len(got))
	}
}
