package provider

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	bolt "go.etcd.io/bbolt"
)

// FetchN returns up to k items of the user's queue at or after from, oldest first, in one read
// transaction, and for each how many items follow it: the answers to a retrieve (from, k)
// (docs/spec/wire.md section 7). As with Fetch, the items below from are the client's and are
// deleted later; only from acknowledges, so the items returned stay queued until a later
// retrieve passes them (calling Fetch with the number after an item would note that item as
// acknowledged before the client has it).
func (s *Store) FetchN(user string, from uint64, k int) ([]*Item, []int, error) {
	seqs, vals, remaining, err := s.fetchN(replyQueue, user, from, k)
	if err != nil {
		return nil, nil, err
	}
	items := make([]*Item, len(seqs))
	for i := range seqs {
		if items[i], err = decodeItem(seqs[i], vals[i]); err != nil {
			return nil, nil, err
		}
	}
	return items, remaining, nil
}

// FetchMailN is FetchN for the user's mail queue.
func (s *Store) FetchMailN(user string, from uint64, k int) ([]*MailItem, []int, error) {
	seqs, vals, remaining, err := s.fetchN(mailQueue, user, from, k)
	if err != nil {
		return nil, nil, err
	}
	items := make([]*MailItem, len(seqs))
	for i := range seqs {
		items[i] = &MailItem{Seq: seqs[i], Chunk: vals[i]}
	}
	return items, remaining, nil
}

// fetchN returns the numbers and copies of up to k items of user's queue q at or after from,
// oldest first, and for each how many items follow it.
func (s *Store) fetchN(q *queue, user string, from uint64, k int) (seqs []uint64, vals [][]byte, remaining []int, err error) {
	if k < 1 {
		return nil, nil, nil, fmt.Errorf("%s of %s: fetch of %d items", q.name, user, k)
	}
	stale := false
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(q.bucket).Bucket([]byte(user))
		if b == nil {
			return fmt.Errorf("%w: %s", ErrUnknownUser, user)
		}
		c := b.Cursor()
		key, val := c.First()
		if key != nil && binary.BigEndian.Uint64(key) < from {
			stale = true
			key, val = c.Seek(binary.BigEndian.AppendUint64(nil, from))
		}
		if key == nil {
			return nil
		}
		// Items are only appended (numbered by the bucket's sequence, one by one, in the
		// transaction that puts them) and deleted from the front, so the numbers in a queue
		// have no gaps: what follows an item is the last number minus its, without reading it.
		lastKey, _ := b.Cursor().Last()
		if len(lastKey) != 8 {
			return fmt.Errorf("%s of %s: corrupt item number %x", q.name, user, lastKey)
		}
		last := binary.BigEndian.Uint64(lastKey)
		for ; key != nil && len(seqs) < k; key, val = c.Next() {
			if len(key) != 8 {
				return fmt.Errorf("%s of %s: corrupt item number %x", q.name, user, key)
			}
			seq := binary.BigEndian.Uint64(key)
			seqs = append(seqs, seq)
			vals = append(vals, bytes.Clone(val))
			remaining = append(remaining, int(min(last-seq, math.MaxInt32)))
		}
		return nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	if stale {
		s.noteStale(staleKey{q, user}, from)
	}
	return seqs, vals, remaining, nil
}
