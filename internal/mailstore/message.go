package mailstore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MessageInfo is a message's metadata.
type MessageInfo struct {
	UID   uint32
	Flags []string // canonical: see canonicalFlags
	Date  time.Time
	Size  int64
}

// Message is a message with its bytes.
type Message struct {
	MessageInfo
	Body []byte
}

// Snapshot is the state of a mailbox at one instant.
type Snapshot struct {
	Name        string // canonical mailbox name
	ID          uint64 // stays with the mailbox through RENAME; see MailboxName
	UIDValidity uint32
	UIDNext     uint32
	RecentUID   uint32        // messages from this UID on are \Recent for the next SELECT
	Messages    []MessageInfo // ascending UID
}

// FlagOp says how UpdateFlags combines the given flags with a message's flags.
type FlagOp int

// Flag operations, as in IMAP STORE FLAGS, +FLAGS and -FLAGS.
const (
	FlagsSet FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// CopyResult maps source UIDs to the UIDs of the copies (UIDPLUS, RFC 4315).
type CopyResult struct {
	UIDValidity uint32   // of the destination
	Source      []uint32 // ascending
	Dest        []uint32 // Dest[i] is the copy of Source[i]
}

// meta value: int64 unix seconds, int32 zone offset in seconds, then the flags joined by spaces.
const metaHeaderSize = 12

func encodeMeta(date time.Time, flags []string) []byte {
	_, offset := date.Zone()
	v := make([]byte, metaHeaderSize, metaHeaderSize+16*len(flags))
	binary.BigEndian.PutUint64(v, uint64(date.Unix()))
	binary.BigEndian.PutUint32(v[8:], uint32(int32(offset)))
	return append(v, strings.Join(flags, " ")...)
}

func decodeMeta(k, v []byte) (MessageInfo, error) {
	if len(k) != 4 || len(v) < metaHeaderSize {
		return MessageInfo{}, fmt.Errorf("%w: message record of %d bytes", errCorruptDatabase, len(v))
	}
	sec := int64(binary.BigEndian.Uint64(v))
	offset := int(int32(binary.BigEndian.Uint32(v[8:])))
	m := MessageInfo{
		UID:  binary.BigEndian.Uint32(k),
		Date: time.Unix(sec, 0).In(time.FixedZone("", offset)),
	}
	if len(v) > metaHeaderSize {
		m.Flags = strings.Split(string(v[metaHeaderSize:]), " ")
	}
	return m, nil
}

// Deliver stores msg in the user's mailbox and returns its UID. It returns only after the
// transaction has been committed to disk, so the caller may acknowledge the message. A zero date
// means now.
func (s *Store) Deliver(user, mailbox string, msg []byte, flags []string, date time.Time) (uint32, error) {
	_, uid, err := s.Append(user, mailbox, msg, flags, date)
	return uid, err
}

// Append is Deliver that also returns the mailbox's UIDVALIDITY (for IMAP's APPENDUID).
func (s *Store) Append(user, mailbox string, msg []byte, flags []string, date time.Time) (uidValidity, uid uint32, err error) {
	if len(msg) > MaxMessageSize {
		return 0, 0, fmt.Errorf("mailstore: append: %w: %d bytes, limit %d", ErrTooLarge, len(msg), MaxMessageSize)
	}
	cflags, err := canonicalFlags(flags)
	if err != nil {
		return 0, 0, fmt.Errorf("mailstore: append: %w", err)
	}
	if date.IsZero() {
		date = time.Now()
	}
	err = s.batch(user, func(tx *bolt.Tx) error {
		b, err := openBox(tx, user, mailbox)
		if err != nil {
			return err
		}
		if err := reserve(tx, user, int64(len(msg))); err != nil {
			return err
		}
		uid, err = b.put(msg, cflags, date)
		uidValidity = b.rec.UIDValidity
		if err != nil {
			return err
		}
		return b.save()
	})
	if err != nil {
		return 0, 0, fmt.Errorf("mailstore: append: %w", err)
	}
	return uidValidity, uid, nil
}

// put adds a message under the next UID; the caller saves the record.
func (b *box) put(msg []byte, flags []string, date time.Time) (uint32, error) {
	uid := b.rec.UIDNext
	if uid == 0 || uid == ^uint32(0) {
		return 0, fmt.Errorf("%w: %q", ErrUIDsExhausted, b.name)
	}
	b.rec.UIDNext++
	k := uidKey(uid)
	if err := b.meta.Put(k, encodeMeta(date, flags)); err != nil {
		return 0, err
	}
	return uid, b.body.Put(k, msg)
}

// Snapshot returns the mailbox's UIDVALIDITY, UIDNEXT and every message's metadata.
func (s *Store) Snapshot(user, mailbox string) (Snapshot, error) {
	var snap Snapshot
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := openBox(tx, user, mailbox)
		if err != nil {
			return err
		}
		snap.Name, snap.ID, snap.UIDValidity, snap.UIDNext = b.name, b.rec.ID, b.rec.UIDValidity, b.rec.UIDNext
		snap.RecentUID = b.rec.RecentUID
		c := b.meta.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			m, err := decodeMeta(k, v)
			if err != nil {
				return err
			}
			m.Size = int64(len(b.body.Get(k)))
			snap.Messages = append(snap.Messages, m)
		}
		return nil
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("mailstore: snapshot: %w", err)
	}
	return snap, nil
}

// Read returns the messages with the given UIDs (ascending, missing ones skipped), with their
// bytes if withBody. To bound memory it stops once the bytes read exceed maxBytes (always
// returning at least one message); the caller continues after the last UID returned.
func (s *Store) Read(user, mailbox string, uids []uint32, withBody bool, maxBytes int64) ([]Message, error) {
	var out []Message
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := openBox(tx, user, mailbox)
		if err != nil {
			return err
		}
		var total int64
		for _, uid := range sortedUnique(uids) {
			k := uidKey(uid)
			v := b.meta.Get(k)
			if v == nil {
				continue
			}
			info, err := decodeMeta(k, v)
			if err != nil {
				return err
			}
			body := b.body.Get(k)
			info.Size = int64(len(body))
			m := Message{MessageInfo: info}
			if withBody {
				// bbolt's slices die with the transaction.
				m.Body = bytes.Clone(body)
				total += info.Size
			}
			out = append(out, m)
			if withBody && total > maxBytes {
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mailstore: read: %w", err)
	}
	return out, nil
}

// UpdateFlags changes the flags of the messages with the given UIDs and returns the messages'
// new metadata (missing UIDs skipped).
func (s *Store) UpdateFlags(user, mailbox string, uids []uint32, op FlagOp, flags []string) ([]MessageInfo, error) {
	cflags, err := canonicalFlags(flags)
	if err != nil {
		return nil, fmt.Errorf("mailstore: store flags: %w", err)
	}
	var out []MessageInfo
	err = s.update(user, func(tx *bolt.Tx) error {
		out = out[:0]
		b, err := openBox(tx, user, mailbox)
		if err != nil {
			return err
		}
		for _, uid := range sortedUnique(uids) {
			k := uidKey(uid)
			v := b.meta.Get(k)
			if v == nil {
				continue
			}
			m, err := decodeMeta(k, v)
			if err != nil {
				return err
			}
			var next []string
			switch op {
			case FlagsSet:
				next = cflags
			case FlagsAdd:
				next = append(slices.Clone(m.Flags), cflags...)
			case FlagsRemove:
				next = slices.DeleteFunc(slices.Clone(m.Flags), func(f string) bool { return HasFlag(cflags, f) })
			default:
				return fmt.Errorf("unknown flag operation %d", op)
			}
			if next, err = canonicalFlags(next); err != nil {
				return err
			}
			m.Flags = next
			m.Size = int64(len(b.body.Get(k)))
			if err := b.meta.Put(k, encodeMeta(m.Date, next)); err != nil {
				return err
			}
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mailstore: store flags: %w", err)
	}
	return out, nil
}

// Expunge removes the messages flagged \Deleted, only among uids unless uids is nil, and returns
// the removed UIDs in ascending order.
func (s *Store) Expunge(user, mailbox string, uids []uint32) ([]uint32, error) {
	var removed []uint32
	err := s.update(user, func(tx *bolt.Tx) error {
		removed = removed[:0]
		b, err := openBox(tx, user, mailbox)
		if err != nil {
			return err
		}
		var keys [][]byte
		if uids == nil {
			if err := b.meta.ForEach(func(k, _ []byte) error { keys = append(keys, bytes.Clone(k)); return nil }); err != nil {
				return err
			}
		} else {
			for _, uid := range sortedUnique(uids) {
				keys = append(keys, uidKey(uid))
			}
		}
		var freed int64
		for _, k := range keys {
			v := b.meta.Get(k)
			if v == nil {
				continue
			}
			m, err := decodeMeta(k, v)
			if err != nil {
				return err
			}
			if !HasFlag(m.Flags, FlagDeleted) {
				continue
			}
			freed += int64(len(b.body.Get(k)))
			if err := b.meta.Delete(k); err != nil {
				return err
			}
			if err := b.body.Delete(k); err != nil {
				return err
			}
			removed = append(removed, m.UID)
		}
		if len(removed) == 0 {
			return nil
		}
		return addUsed(tx, user, -freed)
	})
	if err != nil {
		return nil, fmt.Errorf("mailstore: expunge: %w", err)
	}
	return removed, nil
}

// Copy copies messages to another mailbox of the same user, keeping flags and internal date.
// The copies count against the quota.
func (s *Store) Copy(user, src string, uids []uint32, dst string) (CopyResult, error) {
	res, err := s.copyMessages(user, src, uids, dst, false)
	if err != nil {
		return CopyResult{}, fmt.Errorf("mailstore: copy: %w", err)
	}
	return res, nil
}

// Move moves messages to another mailbox of the same user atomically: after a crash either both
// the copies exist and the originals are gone, or nothing changed.
func (s *Store) Move(user, src string, uids []uint32, dst string) (CopyResult, error) {
	res, err := s.copyMessages(user, src, uids, dst, true)
	if err != nil {
		return CopyResult{}, fmt.Errorf("mailstore: move: %w", err)
	}
	return res, nil
}

func (s *Store) copyMessages(user, src string, uids []uint32, dst string, move bool) (CopyResult, error) {
	var res CopyResult
	err := s.update(user, func(tx *bolt.Tx) error {
		res = CopyResult{}
		from, err := openBox(tx, user, src)
		if err != nil {
			return err
		}
		to, err := openBox(tx, user, dst)
		if err != nil {
			return err
		}
		res.UIDValidity = to.rec.UIDValidity
		var added int64
		for _, uid := range sortedUnique(uids) {
			k := uidKey(uid)
			v := from.meta.Get(k)
			if v == nil {
				continue
			}
			m, err := decodeMeta(k, v)
			if err != nil {
				return err
			}
			body := from.body.Get(k)
			if from.rec.ID == to.rec.ID {
				// Copying into the same mailbox: the source slice would be invalidated by the put.
				body = bytes.Clone(body)
			}
			newUID, err := to.put(body, m.Flags, m.Date)
			if err != nil {
				return err
			}
			if move {
				if err := from.meta.Delete(k); err != nil {
					return err
				}
				if err := from.body.Delete(k); err != nil {
					return err
				}
			} else {
				added += int64(len(body))
			}
			res.Source = append(res.Source, uid)
			res.Dest = append(res.Dest, newUID)
		}
		if added > 0 {
			if err := reserve(tx, user, added); err != nil {
				return err
			}
		}
		// Only the destination's UIDNEXT changed; when source and destination are one mailbox,
		// to holds the up-to-date record.
		return to.save()
	})
	return res, err
}
