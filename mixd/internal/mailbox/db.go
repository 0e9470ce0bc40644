package mailbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
)

var (
	bucketFrags   = []byte("frags")
	bucketMsgs    = []byte("msgs")
	bucketOutbox  = []byte("outbox")
	bucketDone    = []byte("done")
	bucketPending = []byte("pending")
	// keyPendingAll holds the total over all users; a user's key is 'u' || name.
	keyPendingAll = []byte("t")
)

var allBuckets = [][]byte{bucketFrags, bucketMsgs, bucketOutbox, bucketDone, bucketPending}

var errCorrupt = errors.New("mailbox: corrupt database")

// maxUserSize bounds a recipient name; it is also the largest length the key's prefix byte holds.
const maxUserSize = 255

// msgKey is u8 len(user) || user || message id; the length prefix keeps one user's keys from
// being a prefix of another's.
func msgKey(user string, id client.MessageID) []byte {
	k := make([]byte, 0, 1+len(user)+client.MessageIDSize+2)
	k = append(k, byte(len(user)))
	k = append(k, user...)
	return append(k, id[:]...)
}

func fragKey(mk []byte, index uint16) []byte {
	return binary.BigEndian.AppendUint16(bytes.Clone(mk), index)
}

func splitMsgKey(k []byte) (user string, id client.MessageID, err error) {
	if len(k) < 1 || len(k) != 1+int(k[0])+client.MessageIDSize {
		return "", id, fmt.Errorf("%w: message key %x", errCorrupt, k)
	}
	n := int(k[0])
	copy(id[:], k[1+n:])
	return string(k[1 : 1+n]), id, nil
}

// msgRecord is what the service knows about a message whose fragments it holds.
type msgRecord struct {
	Count, Received uint16
	Total           uint32
	First           time.Time // first fragment stored
	Complete        bool
}

const msgRecordSize = 2 + 2 + 4 + 8 + 1

func (r *msgRecord) marshal() []byte {
	b := make([]byte, msgRecordSize)
	binary.BigEndian.PutUint16(b[0:], r.Count)
	binary.BigEndian.PutUint16(b[2:], r.Received)
	binary.BigEndian.PutUint32(b[4:], r.Total)
	binary.BigEndian.PutUint64(b[8:], uint64(r.First.UnixNano()))
	if r.Complete {
		b[16] = 1
	}
	return b
}

func parseMsgRecord(b []byte) (msgRecord, error) {
	if len(b) != msgRecordSize || b[16] > 1 {
		return msgRecord{}, fmt.Errorf("%w: message record of %d bytes", errCorrupt, len(b))
	}
	return msgRecord{
		Count:    binary.BigEndian.Uint16(b[0:]),
		Received: binary.BigEndian.Uint16(b[2:]),
		Total:    binary.BigEndian.Uint32(b[4:]),
		First:    time.Unix(0, int64(binary.BigEndian.Uint64(b[8:]))),
		Complete: b[16] == 1,
	}, nil
}

// doneRecord remembers the outcome of a message that is no longer held.
type doneRecord struct {
	Status client.AckStatus
	At     time.Time
}

func (r *doneRecord) marshal() []byte {
	b := make([]byte, 9)
	b[0] = byte(r.Status)
	binary.BigEndian.PutUint64(b[1:], uint64(r.At.UnixNano()))
	return b
}

func parseDoneRecord(b []byte) (doneRecord, error) {
	if len(b) != 9 {
		return doneRecord{}, fmt.Errorf("%w: done record of %d bytes", errCorrupt, len(b))
	}
	return doneRecord{Status: client.AckStatus(b[0]), At: time.Unix(0, int64(binary.BigEndian.Uint64(b[1:])))}, nil
}

func getDone(tx *bolt.Tx, mk []byte) (*doneRecord, error) {
	v := tx.Bucket(bucketDone).Get(mk)
	if v == nil {
		return nil, nil
	}
	r, err := parseDoneRecord(v)
	return &r, err
}

func getMsg(tx *bolt.Tx, mk []byte) (*msgRecord, error) {
	v := tx.Bucket(bucketMsgs).Get(mk)
	if v == nil {
		return nil, nil
	}
	r, err := parseMsgRecord(v)
	return &r, err
}

func pendingKey(user string) []byte { return append([]byte{'u'}, user...) }

func getPending(tx *bolt.Tx, key []byte) uint64 {
	v := tx.Bucket(bucketPending).Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// addPending changes the user's and the total count of bytes held for delivery.
func addPending(tx *bolt.Tx, user string, delta int64) error {
	b := tx.Bucket(bucketPending)
	for _, k := range [][]byte{pendingKey(user), keyPendingAll} {
		n := max(int64(getPending(tx, k))+delta, 0)
		if n == 0 {
			if err := b.Delete(k); err != nil {
				return err
			}
			continue
		}
		if err := b.Put(k, binary.BigEndian.AppendUint64(nil, uint64(n))); err != nil {
			return err
		}
	}
	return nil
}

// dropMessage deletes a message's fragments, record and outbox entry and releases its bytes.
func dropMessage(tx *bolt.Tx, mk []byte, rec *msgRecord) error {
	user, _, err := splitMsgKey(mk)
	if err != nil {
		return err
	}
	fb := tx.Bucket(bucketFrags)
	c := fb.Cursor()
	var keys [][]byte
	for k, _ := c.Seek(mk); k != nil && len(k) == len(mk)+2 && bytes.HasPrefix(k, mk); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := fb.Delete(k); err != nil {
			return err
		}
	}
	if err := tx.Bucket(bucketMsgs).Delete(mk); err != nil {
		return err
	}
	if err := tx.Bucket(bucketOutbox).Delete(mk); err != nil {
		return err
	}
	return addPending(tx, user, -int64(rec.Total))
}
