package mailstore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	bolt "go.etcd.io/bbolt"
)

type boxRecord struct {
	ID          uint64 `json:"id"` // key of the mailbox's bucket under data/
	UIDValidity uint32 `json:"uidvalidity"`
	UIDNext     uint32 `json:"uidnext"`
	// Subscribed was where subscriptions were kept before they became their own list
	// (mail/<user>/subs); Open moves them there once and it is not read after.
	Subscribed bool   `json:"subscribed"`
	SpecialUse string `json:"special_use,omitempty"`
	// RecentUID is the first UID that no session has yet seen as \Recent (RFC 3501 section
	// 2.3.2): messages from it on are recent for the next session that selects the mailbox.
	// Absent in stores from before issue 16, so there every message is recent once.
	RecentUID uint32 `json:"recent_uid,omitempty"`
}

// MailboxInfo describes a mailbox. The counts are filled by Status, not by Mailboxes.
type MailboxInfo struct {
	Name        string
	UIDValidity uint32
	UIDNext     uint32
	Subscribed  bool
	SpecialUse  string // RFC 6154 attribute such as `\Sent`, or ""
	RecentUID   uint32 // see boxRecord

	Messages uint32
	Recent   uint32 // messages from RecentUID on
	Unseen   uint32
	Deleted  uint32
	Size     int64
}

// box is an open mailbox inside a transaction.
type box struct {
	name  string
	rec   boxRecord
	boxes *bolt.Bucket // the user's name index, to write rec back
	mail  *bolt.Bucket // the user's bucket
	meta  *bolt.Bucket
	body  *bolt.Bucket
}

func (b *box) save() error { return putJSON(b.boxes, []byte(b.name), &b.rec) }

func userMail(tx *bolt.Tx, user string) (*bolt.Bucket, error) {
	m := tx.Bucket(bucketMail).Bucket([]byte(user))
	if m == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchUser, user)
	}
	return m, nil
}

func openBox(tx *bolt.Tx, user, name string) (*box, error) {
	mail, err := userMail(tx, user)
	if err != nil {
		return nil, err
	}
	name, err = canonicalMailbox(name)
	if err != nil {
		return nil, err
	}
	boxes := mail.Bucket(bucketBoxes)
	v := boxes.Get([]byte(name))
	if v == nil {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchMailbox, name)
	}
	b := &box{name: name, boxes: boxes, mail: mail}
	if err := json.Unmarshal(v, &b.rec); err != nil {
		return nil, fmt.Errorf("%w: mailbox %q: %v", errCorruptDatabase, name, err)
	}
	data := mail.Bucket(bucketData).Bucket(binary.BigEndian.AppendUint64(nil, b.rec.ID))
	if data == nil {
		return nil, fmt.Errorf("%w: mailbox %q has no data", errCorruptDatabase, name)
	}
	b.meta, b.body = data.Bucket(bucketMeta), data.Bucket(bucketBody)
	if b.meta == nil || b.body == nil {
		return nil, fmt.Errorf("%w: mailbox %q has no data", errCorruptDatabase, name)
	}
	return b, nil
}

// createBox makes an empty mailbox under name (already canonical) and returns its record.
func createBox(tx *bolt.Tx, mail *bolt.Bucket, name, specialUse string) (boxRecord, error) {
	boxes := mail.Bucket(bucketBoxes)
	if boxes.Get([]byte(name)) != nil {
		return boxRecord{}, fmt.Errorf("%w: %q", ErrMailboxExists, name)
	}
	if boxes.Stats().KeyN >= MaxMailboxesPerUser {
		return boxRecord{}, fmt.Errorf("%w: at most %d per user", ErrTooManyMailbox, MaxMailboxesPerUser)
	}
	rec, err := newBoxData(tx, mail)
	if err != nil {
		return boxRecord{}, err
	}
	rec.SpecialUse = specialUse
	return rec, putJSON(boxes, []byte(name), &rec)
}

// newBoxData allocates a data bucket and a fresh UIDVALIDITY.
func newBoxData(tx *bolt.Tx, mail *bolt.Bucket) (boxRecord, error) {
	dataRoot := mail.Bucket(bucketData)
	id, err := dataRoot.NextSequence()
	if err != nil {
		return boxRecord{}, err
	}
	data, err := dataRoot.CreateBucket(binary.BigEndian.AppendUint64(nil, id))
	if err != nil {
		return boxRecord{}, err
	}
	if _, err := data.CreateBucket(bucketMeta); err != nil {
		return boxRecord{}, err
	}
	if _, err := data.CreateBucket(bucketBody); err != nil {
		return boxRecord{}, err
	}
	validity, err := nextUIDValidity(tx)
	if err != nil {
		return boxRecord{}, err
	}
	return boxRecord{ID: id, UIDValidity: validity, UIDNext: 1}, nil
}

// CreateMailbox creates an empty mailbox, and its missing parents. It subscribes to none of them
// (RFC 3501 section 6.3.6: subscriptions are the client's list, kept apart from the mailboxes).
func (s *Store) CreateMailbox(user, name string) error {
	cname, err := canonicalMailbox(name)
	if err != nil {
		return fmt.Errorf("mailstore: create mailbox: %w", err)
	}
	err = s.update(user, func(tx *bolt.Tx) error {
		mail, err := userMail(tx, user)
		if err != nil {
			return err
		}
		// Superior levels that do not exist yet are created too (RFC 3501 section 6.3.3).
		parts := strings.Split(cname, string(Delimiter))
		for i := 1; i < len(parts); i++ {
			parent := strings.Join(parts[:i], string(Delimiter))
			if strings.EqualFold(parent, Inbox) {
				parent = Inbox
			}
			if mail.Bucket(bucketBoxes).Get([]byte(parent)) == nil {
				if _, err := createBox(tx, mail, parent, ""); err != nil {
					return err
				}
			}
		}
		_, err = createBox(tx, mail, cname, "")
		return err
	})
	if err != nil {
		return fmt.Errorf("mailstore: create mailbox: %w", err)
	}
	return nil
}

// DeleteMailbox deletes a mailbox and its messages, giving their bytes back to the quota. INBOX
// cannot be deleted. Mailboxes below it in the hierarchy stay.
func (s *Store) DeleteMailbox(user, name string) error {
	err := s.update(user, func(tx *bolt.Tx) error {
		b, err := openBox(tx, user, name)
		if err != nil {
			return err
		}
		if b.name == Inbox {
			return fmt.Errorf("%w: %s", ErrCannotDelete, Inbox)
		}
		var freed int64
		if err := b.body.ForEach(func(_, v []byte) error { freed += int64(len(v)); return nil }); err != nil {
			return err
		}
		mail, _ := userMail(tx, user)
		if err := mail.Bucket(bucketData).DeleteBucket(binary.BigEndian.AppendUint64(nil, b.rec.ID)); err != nil {
			return err
		}
		if err := b.boxes.Delete([]byte(b.name)); err != nil {
			return err
		}
		return addUsed(tx, user, -freed)
	})
	if err != nil {
		return fmt.Errorf("mailstore: delete mailbox: %w", err)
	}
	return nil
}

// RenameMailbox renames a mailbox and every mailbox below it in the hierarchy. Renaming INBOX
// moves its messages to the new mailbox and leaves INBOX empty with a new UIDVALIDITY
// (RFC 3501 section 6.3.5).
func (s *Store) RenameMailbox(user, from, to string) error {
	cto, err := canonicalMailbox(to)
	if err != nil {
		return fmt.Errorf("mailstore: rename mailbox: %w", err)
	}
	err = s.update(user, func(tx *bolt.Tx) error {
		b, err := openBox(tx, user, from)
		if err != nil {
			return err
		}
		if cto == Inbox {
			return fmt.Errorf("%w: cannot rename to %s", ErrMailboxExists, Inbox)
		}
		if b.boxes.Get([]byte(cto)) != nil {
			return fmt.Errorf("%w: %q", ErrMailboxExists, cto)
		}
		mail, _ := userMail(tx, user)
		if b.name == Inbox {
			moved := b.rec
			if err := putJSON(b.boxes, []byte(cto), &moved); err != nil {
				return err
			}
			fresh, err := newBoxData(tx, mail)
			if err != nil {
				return err
			}
			if subs := mail.Bucket(bucketSubs); subs != nil && subs.Get([]byte(Inbox)) != nil {
				if err := subscribe(subs, cto); err != nil {
					return err
				}
			}
			return putJSON(b.boxes, []byte(Inbox), &fresh)
		}
		// Collect first: bbolt cursors must not run while keys are added and removed.
		renames := map[string]string{b.name: cto}
		prefix := b.name + string(Delimiter)
		c := b.boxes.Cursor()
		for k, _ := c.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, _ = c.Next() {
			newName := cto + string(Delimiter) + strings.TrimPrefix(string(k), prefix)
			if _, err := canonicalMailbox(newName); err != nil {
				return err
			}
			if b.boxes.Get([]byte(newName)) != nil {
				return fmt.Errorf("%w: %q", ErrMailboxExists, newName)
			}
			renames[string(k)] = newName
		}
		subs := mail.Bucket(bucketSubs)
		for oldName, newName := range renames {
			// A subscription follows its mailbox to the new name.
			if subs != nil && subs.Get([]byte(oldName)) != nil {
				if err := subs.Delete([]byte(oldName)); err != nil {
					return err
				}
				if err := subscribe(subs, newName); err != nil {
					return err
				}
			}
			v := append([]byte(nil), b.boxes.Get([]byte(oldName))...)
			if err := b.boxes.Delete([]byte(oldName)); err != nil {
				return err
			}
			if err := b.boxes.Put([]byte(newName), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mailstore: rename mailbox: %w", err)
	}
	return nil
}

// SetSubscribed adds a name to the user's subscriptions or removes it (IMAP SUBSCRIBE,
// UNSUBSCRIBE). The subscriptions are a list of names of their own (RFC 3501 sections 6.3.6
// and 6.3.9): a name may be subscribed whether or not a mailbox has it, DELETE keeps it, and
// UNSUBSCRIBE of a name without a mailbox works.
func (s *Store) SetSubscribed(user, name string, subscribed bool) error {
	cname, err := canonicalMailbox(name)
	if err != nil {
		return fmt.Errorf("mailstore: subscribe: %w", err)
	}
	err = s.update(user, func(tx *bolt.Tx) error {
		mail, err := userMail(tx, user)
		if err != nil {
			return err
		}
		subs, err := mail.CreateBucketIfNotExists(bucketSubs)
		if err != nil {
			return err
		}
		if !subscribed {
			return subs.Delete([]byte(cname))
		}
		if subs.Get([]byte(cname)) == nil && subs.Stats().KeyN >= MaxSubscriptions {
			return fmt.Errorf("%w: at most %d subscriptions per user", ErrTooManyMailbox, MaxSubscriptions)
		}
		return subscribe(subs, cname)
	})
	if err != nil {
		return fmt.Errorf("mailstore: subscribe: %w", err)
	}
	return nil
}

func subscribe(subs *bolt.Bucket, name string) error { return subs.Put([]byte(name), []byte{}) }

// Subscriptions returns the user's subscribed names, sorted.
func (s *Store) Subscriptions(user string) ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		mail, err := userMail(tx, user)
		if err != nil {
			return err
		}
		out = subscriptions(mail)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mailstore: subscriptions: %w", err)
	}
	return out, nil
}

func subscriptions(mail *bolt.Bucket) []string {
	var out []string
	if subs := mail.Bucket(bucketSubs); subs != nil {
		_ = subs.ForEach(func(k, _ []byte) error { out = append(out, string(k)); return nil })
	}
	return out
}

// migrateSubscriptions gives every user of a store from before issue 16 the list of
// subscriptions that the per-mailbox flag held.
func migrateSubscriptions(tx *bolt.Tx) error {
	return tx.Bucket(bucketMail).ForEachBucket(func(user []byte) error {
		mail := tx.Bucket(bucketMail).Bucket(user)
		if mail.Bucket(bucketSubs) != nil {
			return nil
		}
		subs, err := mail.CreateBucket(bucketSubs)
		if err != nil {
			return err
		}
		boxes := mail.Bucket(bucketBoxes)
		if boxes == nil {
			return nil
		}
		return boxes.ForEach(func(k, v []byte) error {
			var rec boxRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("%w: mailbox %q: %v", errCorruptDatabase, k, err)
			}
			if rec.Subscribed {
				return subscribe(subs, string(k))
			}
			return nil
		})
	})
}

// ClaimRecent makes the messages of the mailbox with the given ID (from Snapshot) that no
// session has seen as \Recent recent for the caller: those with UIDs in [from, to). It moves
// the mailbox's mark past them, so that no other session sees them as recent.
func (s *Store) ClaimRecent(user, name string, id uint64) (from, to uint32, err error) {
	// Not s.update: who sees a message as recent is no change of the user's mail to wake others.
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := openBox(tx, user, name)
		if err != nil {
			return err
		}
		if b.rec.ID != id {
			return fmt.Errorf("%w: %q was replaced", ErrNoSuchMailbox, name)
		}
		from, to = b.rec.RecentUID, b.rec.UIDNext
		if b.rec.RecentUID == b.rec.UIDNext {
			return nil
		}
		b.rec.RecentUID = b.rec.UIDNext
		return b.save()
	})
	if err != nil {
		return 0, 0, fmt.Errorf("mailstore: claim recent: %w", err)
	}
	return from, to, nil
}

// Mailboxes lists the user's mailboxes sorted by name, without message counts.
func (s *Store) Mailboxes(user string) ([]MailboxInfo, error) {
	var out []MailboxInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		mail, err := userMail(tx, user)
		if err != nil {
			return err
		}
		return mail.Bucket(bucketBoxes).ForEach(func(k, v []byte) error {
			var rec boxRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("%w: mailbox %q: %v", errCorruptDatabase, k, err)
			}
			out = append(out, rec.info(string(k)))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("mailstore: list mailboxes: %w", err)
	}
	subs, err := s.Subscriptions(user)
	if err != nil {
		return nil, err
	}
	for i := range out {
		_, out[i].Subscribed = slices.BinarySearch(subs, out[i].Name)
	}
	return out, nil
}

// MailboxName returns the current name of the mailbox with the given ID (from Snapshot), so that
// a session can follow its selected mailbox through a RENAME by another session.
func (s *Store) MailboxName(user string, id uint64) (string, error) {
	var name string
	err := s.db.View(func(tx *bolt.Tx) error {
		mail, err := userMail(tx, user)
		if err != nil {
			return err
		}
		return mail.Bucket(bucketBoxes).ForEach(func(k, v []byte) error {
			var rec boxRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("%w: mailbox %q: %v", errCorruptDatabase, k, err)
			}
			if rec.ID == id {
				name = string(k)
			}
			return nil
		})
	})
	if err != nil {
		return "", fmt.Errorf("mailstore: mailbox name: %w", err)
	}
	if name == "" {
		return "", fmt.Errorf("mailstore: %w: id %d", ErrNoSuchMailbox, id)
	}
	return name, nil
}

// Status returns a mailbox's data with message counts.
func (s *Store) Status(user, name string) (MailboxInfo, error) {
	var info MailboxInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		b, err := openBox(tx, user, name)
		if err != nil {
			return err
		}
		info = b.rec.info(b.name)
		info.Subscribed = slices.Contains(subscriptions(b.mail), b.name)
		return b.meta.ForEach(func(k, v []byte) error {
			m, err := decodeMeta(k, v)
			if err != nil {
				return err
			}
			info.Messages++
			if m.UID >= b.rec.RecentUID {
				info.Recent++
			}
			if !HasFlag(m.Flags, FlagSeen) {
				info.Unseen++
			}
			if HasFlag(m.Flags, FlagDeleted) {
				info.Deleted++
			}
			info.Size += int64(len(b.body.Get(k)))
			return nil
		})
	})
	if err != nil {
		return MailboxInfo{}, fmt.Errorf("mailstore: status: %w", err)
	}
	return info, nil
}

func (r *boxRecord) info(name string) MailboxInfo {
	return MailboxInfo{Name: name, UIDValidity: r.UIDValidity, UIDNext: r.UIDNext, SpecialUse: r.SpecialUse, RecentUID: r.RecentUID}
}

// addUsed changes the user's bytes-used counter by delta.
func addUsed(tx *bolt.Tx, user string, delta int64) error {
	var u userRecord
	if err := getUser(tx, user, &u); err != nil {
		return err
	}
	u.Used = max(u.Used+delta, 0)
	return putJSON(tx.Bucket(bucketUsers), []byte(user), &u)
}

// reserve checks that size more bytes fit the user's quota and counts them as used.
func reserve(tx *bolt.Tx, user string, size int64) error {
	var u userRecord
	if err := getUser(tx, user, &u); err != nil {
		return err
	}
	if u.Quota > 0 && u.Used+size > u.Quota {
		return fmt.Errorf("%w: %q uses %d of %d bytes, %d more do not fit", ErrOverQuota, user, u.Used, u.Quota, size)
	}
	u.Used += size
	return putJSON(tx.Bucket(bucketUsers), []byte(user), &u)
}
