package client

import (
	"context"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestRetrySlack(t *testing.T) {
	e := &Engine{cfg: Config{RetryBudget: 8, AckSlack: 30 * time.Second, RetryFor: 120 * time.Hour}}
	want := map[int]time.Duration{1: 30 * time.Second, 7: 30 * time.Second, 8: time.Minute, 9: 2 * time.Minute,
		13: 32 * time.Minute, 14: time.Hour, 15: time.Hour, 1 << 20: time.Hour}
	for n, w := range want {
		if got := e.retrySlack(n); got != w {
			t.Errorf("transmission %d: slack %v, want %v", n, got, w)
		}
	}
	// Without RetryFor the message fails after the budget; the slack never grows.
	e.cfg.RetryFor = 0
	if got := e.retrySlack(20); got != 30*time.Second {
		t.Errorf("without RetryFor: slack %v, want AckSlack", got)
	}
	// A slack above the cap is kept: backoff never shortens the wait.
	e.cfg.RetryFor, e.cfg.AckSlack = time.Hour, 2*time.Hour
	if got := e.retrySlack(20); got != 2*time.Hour {
		t.Errorf("AckSlack above the cap: slack %v, want 2h", got)
	}
}

// fragmentRecord reads a fragment's durable record.
func fragmentRecord(t *testing.T, e *Engine, id MessageID, index uint16) fragRecord {
	t.Helper()
	var fr fragRecord
	err := e.st.db.View(func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketFrags), fragKey(id, index), &fr)
		if err == nil && !ok {
			t.Fatalf("fragment %d of %s has no record", index, id)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return fr
}

// With RetryFor, a fragment never acknowledged (its provider down but listed) is retransmitted
// past the retry budget with waits that double up to MaxRetryWait, across a restart of the
// engine, and its message fails only once it is older than RetryFor, with a reason that says
// how long it was tried. Virtual time: the engine is driven at chosen instants.
func TestRetryForBacksOffUntilLifetime(t *testing.T) {
	n := newLocalNet(t)
	dir := t.TempDir()
	const budget, retryFor = 3, 12 * time.Hour
	mod := func(c *Config) { c.RetryBudget, c.AckSlack, c.RetryFor = budget, time.Second, retryFor }
	e := n.engine(dir, mod)
	defer func() { e.Close() }()
	id, err := e.Send(context.Background(), Destination{Domain: "beta.example", Recipient: "bob"}, []byte("waits out an outage"))
	if err != nil {
		t.Fatal(err)
	}
	v := n.view(e)
	created, _ := e.Status(id)
	now := created.Created
	// A transmission's deadline is its slack plus at most the route's delays (9 hops, each at
	// most MaxDelay) and one retrieve interval.
	extra := 9*n.params.MaxDelay + DefaultRetrieveInterval
	// The waits grow: each must lie in [slack, slack+extra] with slack doubling past the budget
	// (comparing whole gaps with each other would compare the routes' random delays too).
	sent := 0
	for ; ; sent++ {
		pkt, real, err := e.realOrDrop(v, now)
		if err != nil || pkt == nil {
			t.Fatalf("transmission %d: %v", sent+1, err)
		}
		if !real {
			break // failed: the slot carried a drop packet
		}
		k := sent + 1
		fr := fragmentRecord(t, e, id, 0)
		if fr.Attempts != k {
			t.Fatalf("transmission %d: %d attempts recorded", k, fr.Attempts)
		}
		slack := time.Second
		if k >= budget {
			slack = min(time.Second<<(k-budget+1), MaxRetryWait)
		}
		gap := fr.Deadline.Sub(now)
		if gap < slack || gap > slack+extra {
			t.Fatalf("transmission %d: next one %v later, want %v plus at most %v", k, gap, slack, extra)
		}
		// Not due before its deadline, whatever the budget says; due at it.
		if d, exp, err := e.st.nextDue(fr.Deadline.Add(-time.Millisecond), budget, retryFor, nil); err != nil || d != nil || exp != nil {
			t.Fatalf("transmission %d: due before its deadline (%v, %v, %v)", k, d, exp, err)
		}
		if k == budget+3 {
			// A restart in the middle of the backoff keeps it: the wait is in the stored deadline.
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
			e = n.engine(dir, mod)
			if d, _, _ := e.st.nextDue(fr.Deadline.Add(-time.Millisecond), budget, retryFor, nil); d != nil {
				t.Fatal("after a restart the fragment is due before its backoff ended")
			}
		}
		if st, _ := e.Status(id); st.State != StateSending || st.Transmissions != k {
			t.Fatalf("transmission %d: status %+v", k, st)
		}
		now = fr.Deadline
		// Old SURB keys are pruned as Run does; the fragment's list of SURBs follows.
		e.maintain(now, v, true)
		// Once the waits are hourly, the SURBs made within three epochs (3 h here) of the last
		// prune are at most 5.
		if k >= budget+11+6 && len(fr.SURBs) > 5 {
			t.Fatalf("transmission %d: the fragment lists %d SURBs: pruned ones are kept", k, len(fr.SURBs))
		}
		if sent > 1000 {
			t.Fatal("still retransmitting after 1000 transmissions")
		}
	}
	if age := now.Sub(created.Created); age <= retryFor {
		t.Fatalf("gave up at age %v, before RetryFor %v", age, retryFor)
	}
	if age := now.Sub(created.Created); age > retryFor+MaxRetryWait+extra {
		t.Fatalf("gave up at age %v, more than a wait past RetryFor %v", age, retryFor)
	}
	// 3 at the AckSlack, then waits of 2 s to 2048 s (11), then hourly for the rest of 12 h.
	if sent < budget+11+10 {
		t.Fatalf("%d transmissions, want at least %d", sent, budget+11+10)
	}
	st, _ := e.Status(id)
	if st.State != StateFailed || st.Transmissions != sent ||
		!strings.Contains(st.Reason, "fragment 0 not acknowledged after") || !strings.Contains(st.Reason, "(retried for 12h0m0s)") {
		t.Fatalf("after RetryFor: %+v", st)
	}
	t.Logf("%d transmissions; %s", sent, st.Reason)
}
