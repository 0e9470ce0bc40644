package mailstore

import (
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketDelivered holds, per user, the delivery keys DeliverOnce has seen:
// mail/<name>/delivered/<key> = 4-byte UID.
var bucketDelivered = []byte("delivered")

// MaxDeliveryKey bounds DeliverOnce keys.
const MaxDeliveryKey = 64

// DeliverOnce is Deliver with an idempotency key: the message and the key are committed in one
// transaction, and a later call with the same key delivers nothing and returns the first UID
// with duplicate set. The mixnet's mailbox service passes the message id, so a crash between
// this commit and its own bookkeeping cannot deliver a message twice. Keys live as long as the
// user (about 20 bytes each).
func (s *Store) DeliverOnce(user, mailbox string, key, msg []byte) (uid uint32, duplicate bool, err error) {
	if len(key) == 0 || len(key) > MaxDeliveryKey {
		return 0, false, fmt.Errorf("mailstore: deliver: key of %d bytes, want 1 to %d", len(key), MaxDeliveryKey)
	}
	if len(msg) > MaxMessageSize {
		return 0, false, fmt.Errorf("mailstore: deliver: %w: %d bytes, limit %d", ErrTooLarge, len(msg), MaxMessageSize)
	}
	date := time.Now()
	err = s.batch(user, func(tx *bolt.Tx) error {
		uid, duplicate = 0, false // Batch may run this more than once
		ub := tx.Bucket(bucketMail).Bucket([]byte(user))
		if ub == nil {
			return fmt.Errorf("%w: %q", ErrNoSuchUser, user)
		}
		seen, err := ub.CreateBucketIfNotExists(bucketDelivered)
		if err != nil {
			return err
		}
		if v := seen.Get(key); len(v) == 4 {
			uid, duplicate = binary.BigEndian.Uint32(v), true
			return nil
		}
		b, err := openBox(tx, user, mailbox)
		if err != nil {
			return err
		}
		if err := reserve(tx, user, int64(len(msg))); err != nil {
			return err
		}
		if uid, err = b.put(msg, nil, date); err != nil {
			return err
		}
		if err := b.save(); err != nil {
			return err
		}
		return seen.Put(key, binary.BigEndian.AppendUint32(nil, uid))
	})
	if err != nil {
		return 0, false, fmt.Errorf("mailstore: deliver: %w", err)
	}
	return uid, duplicate, nil
}
