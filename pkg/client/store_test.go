package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
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
	// Nothing listens at the provider's address: Run keeps trying, and says why (waited for,
	// not slept for: on a loaded machine the first dial can take longer than any fixed pause).
	for deadline := time.Now().Add(10 * time.Second); e.LinkState().LastError == ""; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no dial error reported in 10 s: %+v", e.LinkState())
		}
	}
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

// scanNextDue is nextDue as it was before the index: a scan of every queued message's
// fragment records in one read transaction. TestNextDueIndexMatchesScan holds the index to
// its results, and BenchmarkNextDue compares their costs.
func (s *store) scanNextDue(now time.Time, budget int, retryFor time.Duration, wait func(*Status) bool) (d *due, expired map[MessageID]string, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		msgs, frags, data := tx.Bucket(bucketMessages), tx.Bucket(bucketFrags), tx.Bucket(bucketFragData)
		oc := tx.Bucket(bucketOrder).Cursor()
		for _, idb := oc.First(); idb != nil; _, idb = oc.Next() {
			var id MessageID
			copy(id[:], idb)
			var st *Status
			status := func() (*Status, error) {
				if st == nil {
					st = &Status{}
					if _, err := getJSON(msgs, id[:], st); err != nil {
						return nil, err
					}
					st.ID = id
				}
				return st, nil
			}
			if wait != nil {
				st, err := status()
				if err != nil {
					return err
				}
				if wait(st) {
					continue
				}
			}
			fc := frags.Cursor()
			for k, v := fc.Seek(id[:]); k != nil && bytes.HasPrefix(k, id[:]); k, v = fc.Next() {
				var fr fragRecord
				if err := json.Unmarshal(v, &fr); err != nil {
					return fmt.Errorf("client store: corrupt fragment %x: %w", k, err)
				}
				if fr.Done || (fr.Attempts > 0 && now.Before(fr.Deadline)) {
					continue
				}
				index := binary.BigEndian.Uint16(k[MessageIDSize:])
				st, err := status()
				if err != nil {
					return err
				}
				if fr.Attempts >= budget {
					age := now.Sub(st.Created)
					var reason string
					switch {
					case retryFor <= 0:
						reason = fmt.Sprintf("fragment %d not acknowledged after %d transmissions", index, fr.Attempts)
					case age > retryFor:
						reason = fmt.Sprintf("fragment %d not acknowledged after %d transmissions in %v (retried for %v)",
							index, fr.Attempts, age.Round(time.Second), retryFor)
					}
					if reason != "" {
						if expired == nil {
							expired = map[MessageID]string{}
						}
						expired[id] = reason
						break
					}
				}
				b := data.Get(k)
				if b == nil {
					return fmt.Errorf("client store: fragment %x has no data", k)
				}
				d = &due{msg: st, index: index, fragment: bytes.Clone(b), attempts: fr.Attempts}
				return nil
			}
		}
		return nil
	})
	return d, expired, err
}

// sameDue reports how two nextDue results differ, or "".
func sameDue(d1, d2 *due, e1, e2 map[MessageID]string, err1, err2 error) string {
	if (err1 == nil) != (err2 == nil) || (err1 != nil && err1.Error() != err2.Error()) {
		return fmt.Sprintf("errors %v and %v", err1, err2)
	}
	if !reflect.DeepEqual(e1, e2) {
		return fmt.Sprintf("expired %v and %v", e1, e2)
	}
	if (d1 == nil) != (d2 == nil) {
		return fmt.Sprintf("due %v and %v", d1, d2)
	}
	if d1 == nil {
		return ""
	}
	j1, _ := json.Marshal(d1.msg)
	j2, _ := json.Marshal(d2.msg)
	if d1.msg.ID != d2.msg.ID || d1.index != d2.index || d1.attempts != d2.attempts || !bytes.Equal(d1.fragment, d2.fragment) || !bytes.Equal(j1, j2) {
		return fmt.Sprintf("due %s/%d (%d attempts, %s) and %s/%d (%d attempts, %s)", d1.msg.ID, d1.index, d1.attempts, j1, d2.msg.ID, d2.index, d2.attempts, j2)
	}
	return ""
}

// The next-due index gives what the scan of the store gives, through random sends,
// transmissions, acks (stored and refused), failures and reopenings of the store, at random
// instants (backwards too), budgets, retry lifetimes and away domains.
func TestNextDueIndexMatchesScan(t *testing.T) {
	var none, picked, expired int
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { nextDueAgainstScan(t, seed, &none, &picked, &expired) })
	}
	// The comparison means something only if every kind of answer came up.
	if none < 100 || picked < 100 || expired < 20 {
		t.Fatalf("nothing due %d times, a fragment %d, only expired messages %d: the random walk does not exercise every outcome", none, picked, expired)
	}
	t.Logf("nothing due %d times, a fragment %d, only expired messages %d", none, picked, expired)
}

func nextDueAgainstScan(t *testing.T, seed uint64, none, picked, expired *int) {
	rng := rand.New(rand.NewPCG(seed, 17))
	dir := t.TempDir()
	open := func() *store {
		s, err := openStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		s.db.NoSync = true // the disk is not what is tested
		return s
	}
	s := open()
	defer func() { s.close() }()
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var msgs []MessageID
	type sent struct {
		surb  [16]byte
		msg   MessageID
		index uint16
	}
	var inFlight []sent
	var lastDeadline time.Time
	domains := []string{"alpha.example", "beta.example", "gamma.example"}
	for step := range 500 {
		now = now.Add(time.Duration(rng.IntN(2500)-500) * time.Millisecond)
		// What an engine does at a slot, checked against the scan each time.
		at := now.Add(time.Duration(rng.IntN(2000)-1000) * time.Millisecond)
		if rng.IntN(4) == 0 && !lastDeadline.IsZero() {
			at = lastDeadline // the instant a fragment falls due
		}
		budget := 1 + rng.IntN(3)
		retryFor := []time.Duration{0, 40 * time.Second}[rng.IntN(2)]
		var wait func(*Status) bool
		if rng.IntN(2) == 0 {
			away := domains[rng.IntN(len(domains))]
			wait = func(st *Status) bool { return st.Destination.Domain == away && at.Sub(st.Created) <= 30*time.Second }
		}
		d, exp, err := s.nextDue(at, budget, retryFor, wait)
		d2, exp2, err2 := s.scanNextDue(at, budget, retryFor, wait)
		if diff := sameDue(d, d2, exp, exp2, err, err2); diff != "" {
			t.Fatalf("step %d: index and scan differ: %s", step, diff)
		}
		switch {
		case d != nil:
			*picked++
		case exp != nil:
			*expired++
		default:
			*none++
		}
		if err != nil {
			t.Fatal(err)
		}
		for id := range exp {
			if err := s.failMessage(id, "expired", at); err != nil {
				t.Fatal(err)
			}
		}
		if d != nil {
			var surb [16]byte
			binary.BigEndian.PutUint64(surb[:], rng.Uint64())
			var sr *surbRecord
			if d.msg.NeedsAck {
				sr = &surbRecord{Message: d.msg.ID, Index: d.index, Created: at, Keys: []byte{1}}
				inFlight = append(inFlight, sent{surb, d.msg.ID, d.index})
			}
			lastDeadline = at.Add(time.Duration(rng.IntN(8000)) * time.Millisecond)
			if err := s.markSent(d.msg.ID, d.index, &surb, sr, lastDeadline, at); err != nil {
				t.Fatal(err)
			}
		}
		// What arrives meanwhile.
		switch x := rng.IntN(100); {
		case x < 25 || len(msgs) == 0:
			var id MessageID
			binary.BigEndian.PutUint64(id[:], rng.Uint64())
			nf := 1 + rng.IntN(4)
			frags := make([][]byte, nf)
			for i := range frags {
				frags[i] = []byte(fmt.Sprintf("%s/%d", id, i))
			}
			dst := Destination{Domain: domains[rng.IntN(len(domains))], Recipient: "bob", Service: "mailbox"}
			st := &Status{ID: id, Destination: dst, State: StateQueued, Fragments: nf, Created: now, Updated: now, NeedsAck: rng.IntN(4) != 0}
			if _, _, err := s.addMessage(st, frags); err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, id)
		case x < 75 && len(inFlight) > 0:
			i := rng.IntN(len(inFlight))
			f := inFlight[i]
			inFlight = append(inFlight[:i], inFlight[i+1:]...)
			status := AckStored
			if rng.IntN(10) == 0 {
				status = AckRefused
			}
			open := func([]byte) (*Ack, error) { return &Ack{ID: f.msg, Index: f.index, Status: status}, nil }
			if _, _, err := s.applyReply(f.surb, open, uint32(step), now); err != nil {
				t.Fatal(err)
			}
		case x < 80:
			if err := s.failMessage(msgs[rng.IntN(len(msgs))], "test", now); err != nil {
				t.Fatal(err)
			}
		case x < 85:
			if err := s.close(); err != nil {
				t.Fatal(err)
			}
			s = open()
		}
	}
}

// One op: one nextDue on a queue of n one-fragment messages all in flight (none due, the
// usual case at a lambda_P slot), by the index and by the scan it replaced.
func BenchmarkNextDue(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		s, err := openStore(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		for i := range n {
			var id MessageID
			binary.BigEndian.PutUint64(id[:], uint64(i)+1)
			st := &Status{ID: id, Destination: Destination{Domain: "beta.example", Recipient: "bob", Service: "mailbox"}, State: StateQueued, Fragments: 1, Created: now, Updated: now, NeedsAck: true}
			if _, _, err := s.addMessage(st, [][]byte{make([]byte, 100)}); err != nil {
				b.Fatal(err)
			}
			if err := s.markSent(id, 0, &[16]byte{byte(i), byte(i >> 8), 1}, &surbRecord{Message: id, Created: now, Keys: []byte{1}}, now.Add(time.Hour), now); err != nil {
				b.Fatal(err)
			}
		}
		wait := func(*Status) bool { return false }
		for _, way := range []struct {
			name string
			f    func(time.Time, int, time.Duration, func(*Status) bool) (*due, map[MessageID]string, error)
		}{{"index", s.nextDue}, {"scan", s.scanNextDue}} {
			b.Run(fmt.Sprintf("%s/queued=%d", way.name, n), func(b *testing.B) {
				for b.Loop() {
					if d, _, err := way.f(now, 3, 0, wait); d != nil || err != nil {
						b.Fatalf("due %v, err %v", d, err)
					}
				}
			})
		}
		s.close()
	}
}

// Writers and nextDue at once (run with -race): sends, transmissions, acks and failures from
// several goroutines while slots read the index; afterwards the index still equals the scan.
func TestNextDueIndexConcurrent(t *testing.T) {
	s, err := openStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	s.db.NoSync = true
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	const writers, perWriter = 4, 40
	done := make(chan struct{})
	slots := make(chan error, 1)
	go func() {
		for {
			select {
			case <-done:
				close(slots)
				return
			default:
			}
			if _, _, err := s.nextDue(now.Add(time.Minute), 3, 0, nil); err != nil {
				slots <- err
				close(slots)
				return
			}
		}
	}()
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			errs <- func() error {
				for i := range perWriter {
					var id MessageID
					id[0], id[1] = byte(w), byte(i)
					st := &Status{ID: id, Destination: Destination{Domain: "beta.example", Recipient: "bob", Service: "mailbox"}, State: StateQueued, Fragments: 2, Created: now, Updated: now, NeedsAck: true}
					if _, _, err := s.addMessage(st, [][]byte{{1}, {2}}); err != nil {
						return err
					}
					surb := [16]byte{byte(w), byte(i), 1}
					if err := s.markSent(id, 0, &surb, &surbRecord{Message: id, Index: 0, Created: now, Keys: []byte{1}}, now.Add(time.Duration(i)*time.Second), now); err != nil {
						return err
					}
					switch i % 3 {
					case 0:
						open := func([]byte) (*Ack, error) { return &Ack{ID: id, Index: 0, Status: AckStored}, nil }
						if _, _, err := s.applyReply(surb, open, 1, now); err != nil {
							return err
						}
					case 1:
						if err := s.failMessage(id, "test", now); err != nil {
							return err
						}
					}
				}
				return nil
			}()
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	if err := <-slots; err != nil {
		t.Fatalf("nextDue during the writes: %v", err)
	}
	for _, at := range []time.Duration{0, 10 * time.Second, time.Minute} {
		for _, budget := range []int{1, 3} {
			d1, e1, err1 := s.nextDue(now.Add(at), budget, 0, nil)
			d2, e2, err2 := s.scanNextDue(now.Add(at), budget, 0, nil)
			if diff := sameDue(d1, d2, e1, e2, err1, err2); diff != "" {
				t.Fatalf("at +%v, budget %d: index and scan differ: %s", at, budget, diff)
			}
		}
	}
	s.idx.mu.Lock()
	n := s.idx.n
	s.idx.mu.Unlock()
	// Failed messages leave; acked ones stay, their second fragment never sent.
	want := 0
	for i := range perWriter {
		if i%3 != 1 {
			want += writers
		}
	}
	if n != want {
		t.Fatalf("%d messages in the index, want %d (those not failed)", n, want)
	}
}
