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
	bucketLRU     = []byte("lru")
	bucketUserLRU = []byte("ulru")
	// keyPendingAll holds the total over all users; a user's key is 'u' || name.
	keyPendingAll = []byte("t")
)

var allBuckets = [][]byte{bucketFrags, bucketMsgs, bucketOutbox, bucketDone, bucketPending, bucketLRU, bucketUserLRU}

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
	Last            time.Time // latest fragment stored: the eviction order of incomplete messages
	Stored          uint32    // bytes of fragment data stored, what the message is charged
}

// msgRecordSize is the record's size; msgRecordSizeV1 that of records written before Last and
// Stored existed, which New rewrites (rebuild).
const (
	msgRecordSize   = 2 + 2 + 4 + 8 + 1 + 8 + 4
	msgRecordSizeV1 = 2 + 2 + 4 + 8 + 1
)

func (r *msgRecord) marshal() []byte {
	b := make([]byte, msgRecordSize)
	binary.BigEndian.PutUint16(b[0:], r.Count)
	binary.BigEndian.PutUint16(b[2:], r.Received)
	binary.BigEndian.PutUint32(b[4:], r.Total)
	binary.BigEndian.PutUint64(b[8:], uint64(r.First.UnixNano()))
	if r.Complete {
		b[16] = 1
	}
	binary.BigEndian.PutUint64(b[17:], uint64(r.Last.UnixNano()))
	binary.BigEndian.PutUint32(b[25:], r.Stored)
	return b
}

func parseMsgRecord(b []byte) (msgRecord, error) {
	if (len(b) != msgRecordSize && len(b) != msgRecordSizeV1) || b[16] > 1 {
		return msgRecord{}, fmt.Errorf("%w: message record of %d bytes", errCorrupt, len(b))
	}
	r := msgRecord{
		Count:    binary.BigEndian.Uint16(b[0:]),
		Received: binary.BigEndian.Uint16(b[2:]),
		Total:    binary.BigEndian.Uint32(b[4:]),
		First:    time.Unix(0, int64(binary.BigEndian.Uint64(b[8:]))),
		Complete: b[16] == 1,
	}
	r.Last = r.First
	if len(b) == msgRecordSize {
		r.Last = time.Unix(0, int64(binary.BigEndian.Uint64(b[17:])))
		r.Stored = binary.BigEndian.Uint32(b[25:])
	}
	return r, nil
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

// usage is what one user's messages held for delivery cost: the bytes and number of its
// incomplete messages (which anyone can send and which are evicted to make room) and the bytes
// of its complete ones (which wait for the backend and are never evicted).
type usage struct {
	Incomplete, Complete uint64
	Count                uint32
}

const usageSize = 8 + 8 + 4

func getUsage(tx *bolt.Tx, user string) usage {
	v := tx.Bucket(bucketPending).Get(pendingKey(user))
	if len(v) != usageSize {
		return usage{}
	}
	return usage{
		Incomplete: binary.BigEndian.Uint64(v[0:]),
		Complete:   binary.BigEndian.Uint64(v[8:]),
		Count:      binary.BigEndian.Uint32(v[16:]),
	}
}

func putUsage(tx *bolt.Tx, user string, u usage) error {
	b := tx.Bucket(bucketPending)
	if u == (usage{}) {
		return b.Delete(pendingKey(user))
	}
	v := make([]byte, usageSize)
	binary.BigEndian.PutUint64(v[0:], u.Incomplete)
	binary.BigEndian.PutUint64(v[8:], u.Complete)
	binary.BigEndian.PutUint32(v[16:], u.Count)
	return b.Put(pendingKey(user), v)
}

// getTotal is the bytes of all messages held for delivery.
func getTotal(tx *bolt.Tx) uint64 {
	v := tx.Bucket(bucketPending).Get(keyPendingAll)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func addTotal(tx *bolt.Tx, delta int64) error {
	n := max(int64(getTotal(tx))+delta, 0)
	if n == 0 {
		return tx.Bucket(bucketPending).Delete(keyPendingAll)
	}
	return tx.Bucket(bucketPending).Put(keyPendingAll, binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// userPrefix is the part of a message key that names the user.
func userPrefix(mk []byte) []byte { return mk[:1+int(mk[0])] }

// lruKey is i64 last || msgkey: the global eviction order. userLRUKey is u8 len(user) || user ||
// i64 last || id: one user's eviction order.
func lruKey(mk []byte, last time.Time) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(last.UnixNano())), mk...)
}

func userLRUKey(mk []byte, last time.Time) []byte {
	p := userPrefix(mk)
	k := binary.BigEndian.AppendUint64(bytes.Clone(p), uint64(last.UnixNano()))
	return append(k, mk[len(p):]...)
}

// indexIncomplete puts an incomplete message into both eviction orders; unindex takes it out.
func indexIncomplete(tx *bolt.Tx, mk []byte, last time.Time) error {
	if err := tx.Bucket(bucketLRU).Put(lruKey(mk, last), nil); err != nil {
		return err
	}
	return tx.Bucket(bucketUserLRU).Put(userLRUKey(mk, last), nil)
}

func unindex(tx *bolt.Tx, mk []byte, last time.Time) error {
	if err := tx.Bucket(bucketLRU).Delete(lruKey(mk, last)); err != nil {
		return err
	}
	return tx.Bucket(bucketUserLRU).Delete(userLRUKey(mk, last))
}

// oldestIncomplete returns the key of the incomplete message whose latest fragment is the
// oldest, of the user named by prefix (a message key's userPrefix) or of anyone when prefix is
// nil, other than except; nil when there is none.
func oldestIncomplete(tx *bolt.Tx, prefix, except []byte) []byte {
	if prefix == nil {
		c := tx.Bucket(bucketLRU).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if mk := k[8:]; !bytes.Equal(mk, except) {
				return bytes.Clone(mk)
			}
		}
		return nil
	}
	c := tx.Bucket(bucketUserLRU).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		mk := append(bytes.Clone(prefix), k[len(prefix)+8:]...)
		if !bytes.Equal(mk, except) {
			return mk
		}
	}
	return nil
}

// dropMessage deletes a message's fragments, record, outbox entry and index entries and
// releases what it was charged.
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
	u := getUsage(tx, user)
	if rec.Complete {
		u.Complete -= min(u.Complete, uint64(rec.Stored))
	} else {
		if err := unindex(tx, mk, rec.Last); err != nil {
			return err
		}
		u.Incomplete -= min(u.Incomplete, uint64(rec.Stored))
		u.Count -= min(u.Count, 1)
	}
	if err := putUsage(tx, user, u); err != nil {
		return err
	}
	return addTotal(tx, -int64(rec.Stored))
}

// rebuild recomputes what every message is charged and the eviction orders from the fragments
// themselves, so that the counts can never drift from what is stored (and databases written
// when a message was charged its claimed length are corrected).
func rebuild(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketPending, bucketLRU, bucketUserLRU} {
		if err := tx.DeleteBucket(b); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(b); err != nil {
			return err
		}
	}
	type msg struct {
		key []byte
		rec msgRecord
	}
	var msgs []msg
	err := tx.Bucket(bucketMsgs).ForEach(func(k, v []byte) error {
		rec, err := parseMsgRecord(v)
		if err != nil {
			return err
		}
		if _, _, err := splitMsgKey(k); err != nil {
			return err
		}
		msgs = append(msgs, msg{bytes.Clone(k), rec})
		return nil
	})
	if err != nil {
		return err
	}
	fc := tx.Bucket(bucketFrags).Cursor()
	var total uint64
	for _, m := range msgs {
		var stored uint64
		for k, v := fc.Seek(m.key); k != nil && len(k) == len(m.key)+2 && bytes.HasPrefix(k, m.key); k, v = fc.Next() {
			stored += uint64(len(v))
		}
		m.rec.Stored = uint32(min(stored, 1<<32-1))
		user, _, _ := splitMsgKey(m.key)
		u := getUsage(tx, user)
		if m.rec.Complete {
			u.Complete += uint64(m.rec.Stored)
		} else {
			u.Incomplete += uint64(m.rec.Stored)
			u.Count++
			if err := indexIncomplete(tx, m.key, m.rec.Last); err != nil {
				return err
			}
		}
		if err := putUsage(tx, user, u); err != nil {
			return err
		}
		if err := tx.Bucket(bucketMsgs).Put(m.key, m.rec.marshal()); err != nil {
			return err
		}
		total += uint64(m.rec.Stored)
	}
	return addTotal(tx, int64(total))
}
