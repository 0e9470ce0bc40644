// Package dedup remembers, durably, which (message, recipient) pairs the filter has already
// passed on, so that a message Postfix retries after a temporary failure is not sent twice
// (contrib/postfix/README.md, "Exactly once"), and, for each message in the mixnet, what the
// filter needs to bounce it to its sender if the mixnet fails to deliver it. Keys are SHA-256 hashes of the envelope sender, the
// recipient and the message bytes as Postfix handed them over: a retry of the same queue file
// produces the same bytes, and two different queue files differ at least in Postfix's own
// Received field (it carries the queue id).
package dedup

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Key identifies one recipient's copy of one message.
type Key [sha256.Size]byte

// keyLabel separates this hash from any other use of SHA-256 over mail.
const keyLabel = "panoramix postfix-filter dedup v1\x00"

// NewKey hashes the envelope and the message bytes. Lengths are prefixed, so no two different
// (from, rcpt, data) triples give the same input.
func NewKey(from, rcpt string, data []byte) Key {
	h := sha256.New()
	h.Write([]byte(keyLabel))
	var n [8]byte
	for _, b := range [][]byte{[]byte(from), []byte(rcpt), data} {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	var k Key
	h.Sum(k[:0])
	return k
}

// Route is where a copy went.
type Route string

const (
	// Mixnet: queued in the client engine; MessageID is the engine's id.
	Mixnet Route = "mixnet"
	// Reinjected: accepted by Postfix's re-injection smtpd.
	Reinjected Route = "reinjected"
)

// Record is what is remembered about a copy.
type Record struct {
	Route     Route     `json:"route"`
	MessageID string    `json:"message_id,omitempty"`
	Time      time.Time `json:"time"`
}

// Outgoing is what is kept of a message in the mixnet until it is finished: enough to tell its
// sender if it fails.
type Outgoing struct {
	From      string    `json:"from"`
	Rcpt      string    `json:"rcpt"`
	Subject   string    `json:"subject,omitempty"`
	MessageID string    `json:"message_id,omitempty"`
	Time      time.Time `json:"time"`
}

var (
	bucket       = []byte("done")
	bucketOutbox = []byte("outbox")
)

// batchDelay is how long a Put waits for concurrent ones to share its commit (bbolt's default
// is 10 ms, which would add 10 ms to every message's reply).
const batchDelay = 2 * time.Millisecond

// Store is the durable set of copies passed on.
type Store struct {
	db *bolt.DB
}

// Open opens (or creates) the store file path; its directory is created 0700.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("dedup: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("dedup: open %s: %w", path, err)
	}
	// Every Put holds up an SMTP reply: wait little for others to share the fsync with.
	db.MaxBatchDelay = batchDelay
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucket, bucketOutbox} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("dedup: %w", err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Lookup returns the record of k, if any.
func (s *Store) Lookup(k Key) (Record, bool, error) {
	var r Record
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucket).Get(k[:])
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &r)
	})
	if err != nil {
		return Record{}, false, fmt.Errorf("dedup: lookup: %w", err)
	}
	return r, found, nil
}

// Put records k durably (committed and fsync'd when it returns). Concurrent calls share
// fsyncs (bbolt Batch).
func (s *Store) Put(k Key, r Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := s.db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(k[:], v) }); err != nil {
		return fmt.Errorf("dedup: put: %w", err)
	}
	return nil
}

// PutMixnet records k for a copy queued in the mixnet under r.MessageID, together with what is
// needed to bounce it, in one commit.
func (s *Store) PutMixnet(k Key, r Record, o Outgoing) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	ov, err := json.Marshal(o)
	if err != nil {
		return err
	}
	if err := s.db.Batch(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucket).Put(k[:], v); err != nil {
			return err
		}
		return tx.Bucket(bucketOutbox).Put([]byte(r.MessageID), ov)
	}); err != nil {
		return fmt.Errorf("dedup: put: %w", err)
	}
	return nil
}

// Outgoing returns what was kept of the message with the engine id id.
func (s *Store) Outgoing(id string) (Outgoing, bool, error) {
	var o Outgoing
	var found bool
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketOutbox).Get([]byte(id))
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &o)
	})
	if err != nil {
		return Outgoing{}, false, fmt.Errorf("dedup: outgoing: %w", err)
	}
	return o, found, nil
}

// DeleteOutgoing forgets a finished message.
func (s *Store) DeleteOutgoing(id string) error {
	if err := s.db.Batch(func(tx *bolt.Tx) error { return tx.Bucket(bucketOutbox).Delete([]byte(id)) }); err != nil {
		return fmt.Errorf("dedup: delete outgoing: %w", err)
	}
	return nil
}

// Prune deletes the records older than before and returns how many. Postfix gives up on a
// message after maximal_queue_lifetime (5 days by default), so records older than that can no
// longer match a retry.
func (s *Store) Prune(before time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil || r.Time.Before(before) {
				if err := c.Delete(); err != nil {
					return err
				}
				n++
			}
		}
		oc := tx.Bucket(bucketOutbox).Cursor()
		for k, v := oc.First(); k != nil; k, v = oc.Next() {
			var o Outgoing
			if err := json.Unmarshal(v, &o); err != nil || o.Time.Before(before) {
				if err := oc.Delete(); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("dedup: prune: %w", err)
	}
	return n, nil
}
