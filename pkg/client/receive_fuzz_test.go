package client

import (
	"bytes"
	"errors"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bounds of FuzzReceive, small so that three items run into them.
const (
	fuzzMaxPartial = 2
	fuzzMaxInbox   = 2
)

// FuzzReceive feeds three queue items, as a provider would hand them to a program that
// consumes queue messages, to the inbox reassembly (store.receive, as handleItem calls it).
// Whatever comes in: items that do not parse as fragments are left to handleItem to drop; the
// rest are stored or refused as malformed or over a bound, never with another error; a message
// completes exactly when every index is there, as the concatenation of the first copy of each
// fragment and of its total length; the bounds on partial and received messages hold; and a
// stored item records the next retrieve number with it.
func FuzzReceive(f *testing.F) {
	seeds := readSeeds(f, "fragment")
	names := make([]string, 0, len(seeds))
	for name := range seeds {
		names = append(names, name)
	}
	slices.Sort(names)
	for i := range names {
		f.Add(seeds[names[i]], seeds[names[(i+1)%len(names)]], seeds[names[(i+2)%len(names)]])
	}
	s, err := openStore(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	defer s.close()
	s.db.NoSync = true // the test looks at the transactions, not at the disk
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		if err := s.db.Update(func(tx *bolt.Tx) error {
			for _, name := range [][]byte{bucketRx, bucketRxMeta, bucketRxDone, bucketInbox} {
				if err := tx.DeleteBucket(name); err != nil {
					return err
				}
				if _, err := tx.CreateBucket(name); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		stored := map[MessageID]map[uint16][]byte{}
		now := time.Now()
		for i, item := range [][]byte{a, b, c} {
			fr, err := ParseFragment(item, seedCapacity)
			if err != nil {
				continue
			}
			next := uint32(i + 2)
			rec, err := s.receive(fr, seedCapacity, fuzzMaxPartial, fuzzMaxInbox, next, now)
			switch {
			case err == nil:
			case errors.Is(err, ErrMalformed), errors.Is(err, errTooManyPartial), errors.Is(err, errInboxFull):
				continue
			default:
				t.Fatalf("item %d: %v", i, err)
			}
			if seq, _ := s.seq(); seq != next {
				t.Fatalf("item %d stored with retrieve number %d, want %d", i, seq, next)
			}
			if stored[fr.ID] == nil {
				stored[fr.ID] = map[uint16][]byte{}
			}
			if _, ok := stored[fr.ID][fr.Index]; !ok {
				stored[fr.ID][fr.Index] = fr.Data
			}
			if rec == nil {
				continue
			}
			var want []byte
			for index := range fr.Count {
				d, ok := stored[fr.ID][index]
				if !ok {
					t.Fatalf("message %s complete without fragment %d", fr.ID, index)
				}
				want = append(want, d...)
			}
			if rec.ID != fr.ID || !bytes.Equal(rec.Data, want) || len(rec.Data) != int(fr.TotalLength) {
				t.Fatalf("message %s reassembled as %d bytes, want %d (total length %d)", fr.ID, len(rec.Data), len(want), fr.TotalLength)
			}
		}
		if err := s.db.View(func(tx *bolt.Tx) error {
			partial, inbox := tx.Bucket(bucketRxMeta).Stats().KeyN, tx.Bucket(bucketInbox).Stats().KeyN
			if partial > fuzzMaxPartial || partial+inbox > fuzzMaxInbox {
				t.Fatalf("%d partial and %d received messages kept", partial, inbox)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
}
