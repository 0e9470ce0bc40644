package client

import (
	"context"
	"errors"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestPrune(t *testing.T) {
	s, err := openStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	now := time.Now()
	old, fresh := now.Add(-time.Hour), now
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSURBs)
		putJSON(b, []byte("old-surb-id-0000"), &surbRecord{Created: old, Keys: []byte{1}})
		return putJSON(b, []byte("new-surb-id-0000"), &surbRecord{Created: fresh, Keys: []byte{1}})
	})
	if err != nil {
		t.Fatal(err)
	}
	const capacity = 8
	oldMsg, _ := Split(MessageID{1}, make([]byte, 20), capacity)
	newMsg, _ := Split(MessageID{2}, make([]byte, 20), capacity)
	doneMsg, _ := Split(MessageID{3}, make([]byte, 5), capacity)
	s.receive(oldMsg[0], capacity, 10, 64, 1, old)
	s.receive(newMsg[0], capacity, 10, 64, 2, fresh)
	if r, err := s.receive(doneMsg[0], capacity, 10, 64, 3, old); err != nil || r == nil {
		t.Fatalf("one-fragment message not complete: %v", err)
	}
	surbs, partial, err := s.prune(now.Add(-time.Minute), now.Add(-time.Minute))
	if err != nil || surbs != 1 || partial != 1 {
		t.Fatalf("pruned %d SURBs and %d partial messages (%v), want 1 and 1", surbs, partial, err)
	}
	s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketSURBs).Get([]byte("new-surb-id-0000")) == nil {
			t.Error("a fresh SURB was pruned")
		}
		if tx.Bucket(bucketRxMeta).Get(newMsg[0].ID[:]) == nil || tx.Bucket(bucketRx).Get(fragKey(newMsg[0].ID, 0)) == nil {
			t.Error("a fresh partial message was pruned")
		}
		if tx.Bucket(bucketRx).Get(fragKey(oldMsg[0].ID, 0)) != nil {
			t.Error("an old partial message's fragment is still stored")
		}
		if tx.Bucket(bucketRxDone).Get(doneMsg[0].ID[:]) != nil {
			t.Error("an old completed id is still remembered")
		}
		return nil
	})
}

func TestRunAndClose(t *testing.T) {
	n := newLocalNet(t)
	e := n.engine(t.TempDir(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	time.Sleep(100 * time.Millisecond)
	// Nothing listens at the provider's address: Run keeps trying, and says why.
	if err := e.Run(ctx); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: %v", err)
	}
	if err := e.Close(); !errors.Is(err, ErrRunning) {
		t.Fatalf("Close while running: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if ls := e.LinkState(); ls.Connected || ls.LastError == "" {
		t.Fatalf("link state %+v", ls)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}

// Finishing a message deletes the SURB records of all its transmissions, and only those.
func TestFinishDeletesItsSURBs(t *testing.T) {
	s, err := openStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	now := time.Now()
	add := func(id MessageID) {
		frags, _ := Split(id, make([]byte, 5), 8)
		st := &Status{ID: id, Destination: Destination{Domain: "example.org", Recipient: "poll", Service: "survey"}, State: StateQueued, Size: 5, Fragments: 1, Created: now, Updated: now, NeedsAck: true}
		if _, _, err := s.addMessage(st, [][]byte{frags[0].Marshal()}); err != nil {
			t.Fatal(err)
		}
	}
	add(MessageID{1})
	add(MessageID{2})
	// Message 1 is sent twice (a retransmission), message 2 once.
	surbs := [][16]byte{{1, 1}, {1, 2}, {2, 1}}
	for _, id := range surbs {
		mid := MessageID{id[0]}
		if err := s.markSent(mid, 0, &id, &surbRecord{Message: mid, Created: now, Keys: []byte{7}}, now.Add(time.Minute), now); err != nil {
			t.Fatal(err)
		}
	}
	// The ACK of message 1's first transmission finishes it.
	res, st, err := s.applyReply(surbs[0], func([]byte) (*Ack, error) { return &Ack{ID: MessageID{1}, Status: AckStored}, nil }, 1, now)
	if err != nil || res != ackApplied || st.State != StateDelivered {
		t.Fatalf("ack: %v %v %+v", res, err, st)
	}
	s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSURBs)
		for i, want := range []bool{false, false, true} {
			if got := b.Get(surbs[i][:]) != nil; got != want {
				t.Errorf("SURB %x stored: %v, want %v", surbs[i], got, want)
			}
		}
		return nil
	})
}
