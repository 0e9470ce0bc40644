package proxy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The proxy's own store (DataDir/mailproxy.db) remembers, per engine message, what the engine
// does not: the mail's recipient address, subject and header (for a bounce), whether it is a
// bounce itself, and what was done about its outcome. It also maps (account, recipient,
// original Message-ID) to the message queued for it, so that a mail program resubmitting a
// mail whose 250 it missed does not send it twice.
const recordsFile = "mailproxy.db"

var (
	bucketRecords = []byte("records")
	bucketSeen    = []byte("seen")
)

// Kinds of record.
const (
	kindMail   = "mail"
	kindBounce = "bounce"
)

type record struct {
	Kind      string    `json:"kind"`
	Account   string    `json:"account"`
	Recipient string    `json:"recipient"`
	Subject   string    `json:"subject,omitempty"`
	Headers   []byte    `json:"headers,omitempty"`
	Accepted  time.Time `json:"accepted"`
	// SeenKey is this mail's key in bucketSeen (empty without a Message-ID).
	SeenKey string `json:"seen_key,omitempty"`
	// Reported is set once the outcome was logged (and, for a failed mail, a bounce queued or
	// its failure recorded).
	Reported bool `json:"reported,omitempty"`
	// Bounce is the engine id of the bounce queued for this failed mail; BounceError says why
	// none could be queued.
	Bounce      string `json:"bounce,omitempty"`
	BounceError string `json:"bounce_error,omitempty"`
	// BounceLocal: the bounce went straight into the local INBOX (read_via_link), not through
	// the mixnet.
	BounceLocal bool `json:"bounce_local,omitempty"`
	// Sent is how the mail left (MessageReport.Sent).
	Sent string `json:"sent,omitempty"`
	// Of is, for a bounce, the id of the failed mail.
	Of string `json:"of,omitempty"`
}

type records struct{ db *bolt.DB }

func openRecords(dir string) (*records, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	db, err := bolt.Open(filepath.Join(dir, recordsFile), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("records %s: %w (is another mailproxy using this data directory?)", dir, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketRecords, bucketSeen} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return &records{db: db}, nil
}

func (r *records) close() error { return r.db.Close() }

func recKey(account, id string) []byte { return []byte(account + "\x00" + id) }

// put stores rec under (account, id) and, when rec.SeenKey is set, the seen mapping, in one
// committed transaction.
func (r *records) put(id string, rec *record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return r.db.Update(func(tx *bolt.Tx) error {
		if rec.SeenKey != "" {
			if err := tx.Bucket(bucketSeen).Put([]byte(rec.SeenKey), []byte(id)); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketRecords).Put(recKey(rec.Account, id), b)
	})
}

// get returns the record of (account, id), or nil when there is none.
func (r *records) get(account, id string) (*record, error) {
	var rec *record
	err := r.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketRecords).Get(recKey(account, id))
		if v == nil {
			return nil
		}
		rec = &record{}
		return json.Unmarshal(v, rec)
	})
	return rec, err
}

// seen returns the engine id queued earlier under key, or "".
func (r *records) seen(key string) (string, error) {
	var id string
	err := r.db.View(func(tx *bolt.Tx) error {
		id = string(tx.Bucket(bucketSeen).Get([]byte(key)))
		return nil
	})
	return id, err
}

// remove deletes the record of (account, id) and its seen mapping.
func (r *records) remove(account, id string) error {
	return r.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRecords)
		if v := b.Get(recKey(account, id)); v != nil {
			var rec record
			if err := json.Unmarshal(v, &rec); err == nil && rec.SeenKey != "" {
				if err := tx.Bucket(bucketSeen).Delete([]byte(rec.SeenKey)); err != nil {
					return err
				}
			}
		}
		return b.Delete(recKey(account, id))
	})
}
