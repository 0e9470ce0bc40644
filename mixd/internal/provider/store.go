package provider

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// UserNamePattern is what a user name looks like: the local part of the user's mail address,
// which senders put in the Sphinx Recipient command (at most 64 bytes, sphinx.md §5).
var UserNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._+-]{0,63}$`)

var (
	// ErrUnknownUser is returned for a user that does not exist.
	ErrUnknownUser = errors.New("unknown user")
	// ErrUserExists is returned when adding a user whose name or link key is taken.
	ErrUserExists = errors.New("user exists")
	// ErrQueueFull is returned when a user's queue holds its limit.
	ErrQueueFull = errors.New("queue full")
	// ErrOverQuota is returned when a mail does not fit the user's quota beside the mail its
	// client has not fetched yet.
	ErrOverQuota = errors.New("over quota")
)

var (
	bucketUsers  = []byte("users")
	bucketLinks  = []byte("links") // link key -> user name
	bucketQueues = []byte("queues")
	// bucketMessages counts each user's items of kind ItemMessage (user -> u64). It is
	// derived: OpenStore recounts it from the queues.
	bucketMessages = []byte("messages")
	// bucketMailQueues holds each user's mail queue (docs/spec/services.md section 6): one
	// sub-bucket per user, u64 item number -> one chunk of sealed mail as it goes on the wire.
	bucketMailQueues = []byte("mailq")
	// bucketMailBytes sums the chunk bytes in each user's mail queue (user -> u64), for the
	// quota. It is derived: OpenStore recounts it from the mail queues.
	bucketMailBytes = []byte("mailbytes")
	// bucketMailIDs holds, per user, the ids of the mails queued for the user's client within
	// the expiry, so that a delivery repeated after a crash is queued once: 'i' || id -> empty,
	// and 't' || i64 time queued (ns) || id -> empty, the same set in the order it expires.
	bucketMailIDs = []byte("mailids")
)

// MaxMessageItems bounds the items of kind ItemMessage in one user's queue, apart from the
// queue limit that bounds its replies (docs/spec/services.md section 4.2). Anyone can send
// messages to any user's queue service, and the user's client fetches one item per retrieve in
// queue order: a small bound keeps a flood from making the user's ACKs and loop echoes wait
// behind more than this many items, and from keeping them out.
const MaxMessageItems = 64

// User is one account of the provider.
type User struct {
	Name    string             `json:"name"`
	LinkKey keys.LinkPublicKey `json:"link_key"`
	// QuotaBytes bounds the user's stored mail (enforced by the mailbox service, and by
	// EnqueueMail for the mail queue); 0 means no bound.
	QuotaBytes int64     `json:"quota_bytes"`
	Created    time.Time `json:"created"`
	// ReadsViaLink: the user's client reads its mail through its link (services.md section
	// 6.1), so the mailbox service puts the user's mail in the mail queue instead of its
	// backend. Set by the client's first retrieve-mail; cleared only by the operator.
	ReadsViaLink bool `json:"reads_via_link"`
}

// Validate checks the user's fields.
func (u *User) Validate() error {
	if !UserNamePattern.MatchString(u.Name) {
		return fmt.Errorf("user name %q: want 1 to 64 of a-z 0-9 . _ + - starting with a letter or digit (the mail address's local part, lowercase)", u.Name)
	}
	if u.LinkKey == (keys.LinkPublicKey{}) {
		return errors.New("user link key is missing (mailproxy init prints it)")
	}
	if u.QuotaBytes < 0 {
		return fmt.Errorf("quota %d is negative", u.QuotaBytes)
	}
	return nil
}

// Item kinds in a user queue.
const (
	// ItemMessage is data sent to the user's queue service.
	ItemMessage byte = 1
	// ItemReply is a reply that came back through one of the user's SURBs.
	ItemReply byte = 2
)

// Item is one entry of a user queue.
type Item struct {
	Seq    uint64
	Kind   byte
	SURBID [sphinx.SURBIDSize]byte
	Body   []byte
}

// Store is the provider's bbolt database of users and their two queues: the queue of ACKs, loop
// returns and messages (EnqueueBatch, Enqueue, Fetch) and the mail queue (EnqueueMail,
// FetchMail). mixd queues the first with group commits (EnqueueBatch), many items for many users
// per transaction.
//
// Items a client has acknowledged (those below the number of its retrieve) are not deleted by
// the retrieve itself, which would cost a write and an fsync per retrieve on the store's one
// writer: Fetch and FetchMail note them, and the next write that fsyncs anyway (an enqueue or
// EnqueueMail), or a prune at most every pruneInterval, deletes them. Losing these notes in a
// crash loses nothing: the client never asks for an item below its number again, and its next
// retrieve notes them again.
type Store struct {
	db  *bolt.DB
	now func() time.Time // a field so that tests can move the clock

	mu        sync.Mutex
	stale     map[staleKey]uint64 // items below this number are the client's
	lastPrune time.Time
}

// queue is one kind of per-user queue: one sub-bucket per user of items numbered by bbolt's
// sequence, and one derived per-user counter, the sum of weight over the user's items, kept in
// step by every enqueue and deletion and recounted by OpenStore.
type queue struct {
	name    string
	bucket  []byte
	counter []byte
	weight  func(v []byte) uint64
}

var (
	// replyQueue counts its messages, which are bounded apart from its replies (services.md
	// section 4.2).
	replyQueue = &queue{name: "queue", bucket: bucketQueues, counter: bucketMessages, weight: func(v []byte) uint64 {
		if len(v) > 0 && v[0] == ItemMessage {
			return 1
		}
		return 0
	}}
	// mailQueue counts its bytes, which count against the user's quota (services.md 6.3).
	mailQueue = &queue{name: "mail queue", bucket: bucketMailQueues, counter: bucketMailBytes, weight: func(v []byte) uint64 {
		return uint64(len(v))
	}}
	queues = []*queue{replyQueue, mailQueue}
)

// staleKey names one user's queue of one kind.
type staleKey struct {
	q    *queue
	user string
}

// pruneInterval is how often retrieves alone may cost a write to delete acknowledged items.
const pruneInterval = time.Second

// OpenStore opens (creating if needed) the database at path.
func OpenStore(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("provider store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketUsers, bucketLinks, bucketQueues, bucketMailQueues, bucketMailIDs} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		// Users made before the mail queue existed get theirs.
		err := tx.Bucket(bucketUsers).ForEach(func(name, _ []byte) error { return createUserBuckets(tx, name) })
		if err != nil {
			return err
		}
		for _, q := range queues {
			if err := recount(tx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("provider store %s: %w", path, err)
	}
	return &Store{db: db, now: time.Now, lastPrune: time.Now()}, nil
}

// createUserBuckets makes the per-user buckets of a user: both queues and the mail ids.
func createUserBuckets(tx *bolt.Tx, name []byte) error {
	for _, b := range [][]byte{bucketQueues, bucketMailQueues, bucketMailIDs} {
		if _, err := tx.Bucket(b).CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// AddUser creates a user; the name and the link key must both be new.
func (s *Store) AddUser(u User) error {
	if err := u.Validate(); err != nil {
		return err
	}
	if u.Created.IsZero() {
		u.Created = time.Now().UTC().Truncate(time.Second)
	}
	data, err := json.Marshal(u)
	if err != nil {
		return err
	}
	s.forgetStale(u.Name)
	return s.db.Update(func(tx *bolt.Tx) error {
		users, links := tx.Bucket(bucketUsers), tx.Bucket(bucketLinks)
		if users.Get([]byte(u.Name)) != nil {
			return fmt.Errorf("%w: %s", ErrUserExists, u.Name)
		}
		if other := links.Get(u.LinkKey[:]); other != nil {
			return fmt.Errorf("%w: link key already belongs to %s", ErrUserExists, other)
		}
		if err := users.Put([]byte(u.Name), data); err != nil {
			return err
		}
		if err := links.Put(u.LinkKey[:], []byte(u.Name)); err != nil {
			return err
		}
		return createUserBuckets(tx, []byte(u.Name))
	})
}

// RemoveUser deletes a user, its queues and its mail ids.
func (s *Store) RemoveUser(name string) error {
	s.forgetStale(name)
	return s.db.Update(func(tx *bolt.Tx) error {
		u, err := getUser(tx, name)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketLinks).Delete(u.LinkKey[:]); err != nil {
			return err
		}
		if err := tx.Bucket(bucketUsers).Delete([]byte(name)); err != nil {
			return err
		}
		for _, b := range [][]byte{bucketQueues, bucketMailQueues, bucketMailIDs} {
			if err := tx.Bucket(b).DeleteBucket([]byte(name)); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return err
			}
		}
		for _, q := range queues {
			if err := tx.Bucket(q.counter).Delete([]byte(name)); err != nil {
				return err
			}
		}
		return nil
	})
}

func getUser(tx *bolt.Tx, name string) (*User, error) {
	data := tx.Bucket(bucketUsers).Get([]byte(name))
	if data == nil {
		return nil, fmt.Errorf("%w: %s", ErrUnknownUser, name)
	}
	var u User
	if err := json.Unmarshal(data, &u); err != nil {
		return nil, fmt.Errorf("user %s: corrupt record: %w", name, err)
	}
	return &u, nil
}

// User returns one user.
func (s *Store) User(name string) (*User, error) {
	var u *User
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		u, err = getUser(tx, name)
		return err
	})
	return u, err
}

// SetReadsViaLink sets or clears the user's ReadsViaLink, durably. Setting it to the value it
// has costs no write.
func (s *Store) SetReadsViaLink(name string, v bool) error {
	u, err := s.User(name)
	if err != nil {
		return err
	}
	if u.ReadsViaLink == v {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		u, err := getUser(tx, name)
		if err != nil {
			return err
		}
		u.ReadsViaLink = v
		data, err := json.Marshal(u)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketUsers).Put([]byte(name), data)
	})
}

// UserByLinkKey finds the user a client link authenticates as.
func (s *Store) UserByLinkKey(k keys.LinkPublicKey) (*User, error) {
	var u *User
	err := s.db.View(func(tx *bolt.Tx) error {
		name := tx.Bucket(bucketLinks).Get(k[:])
		if name == nil {
			return fmt.Errorf("%w: no user has link key %s", ErrUnknownUser, k)
		}
		var err error
		u, err = getUser(tx, string(name))
		return err
	})
	return u, err
}

// Users lists the users by name.
func (s *Store) Users() ([]User, error) {
	var out []User
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			var u User
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("user %s: corrupt record: %w", k, err)
			}
			out = append(out, u)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

func encodeItem(it *Item) []byte {
	b := make([]byte, 0, 1+len(it.SURBID)+len(it.Body))
	b = append(b, it.Kind)
	b = append(b, it.SURBID[:]...)
	return append(b, it.Body...)
}

func decodeItem(seq uint64, b []byte) (*Item, error) {
	if len(b) < 1+sphinx.SURBIDSize || (b[0] != ItemMessage && b[0] != ItemReply) {
		return nil, fmt.Errorf("queue item %d: corrupt", seq)
	}
	it := &Item{Seq: seq, Kind: b[0], Body: append([]byte(nil), b[1+sphinx.SURBIDSize:]...)}
	copy(it.SURBID[:], b[1:])
	return it, nil
}

// Enqueue appends an item to a user's queue; it returns once the item is committed to disk.
// Items the user's client has acknowledged are deleted in the same transaction first. It is
// EnqueueBatch of one item.
func (s *Store) Enqueue(user string, it *Item, limit int) error {
	res, err := s.EnqueueBatch([]Enqueued{{User: user, Item: it}}, limit)
	if err != nil {
		return err
	}
	return res[0]
}

// MaxEnqueueBatch bounds the items of one EnqueueBatch: everything a batch holds is in memory
// until its commit, and mixd's writer takes at most this many (mixd/internal/node).
const MaxEnqueueBatch = 1024

// Enqueued is one item for EnqueueBatch and the user whose queue it goes to.
type Enqueued struct {
	User string
	Item *Item
}

// EnqueueBatch appends items to their users' queues in one transaction, so that one commit
// (one pair of fdatasyncs) makes them all durable, and returns once it is committed: a group
// commit for mixd's delivery of ACKs, loop echoes and queue messages (docs/spec/services.md
// section 4.2). Items the clients have acknowledged are deleted in the same transaction first.
//
// An item refused for its user alone (ErrUnknownUser, ErrQueueFull) is not stored and its
// error is in the result at its index; the others are still committed. Each user's bounds count
// the items before it in the batch, as if each had been committed alone in batch order, and the
// items of one user are queued in batch order. The error is for the transaction: when it is not
// nil nothing is committed and the results mean nothing.
//
// A batch whose items are all refused is rolled back, not committed: anyone can send items for a
// full queue or an unknown user, and a commit with nothing to queue would cost them the
// fdatasyncs a refusal did not cost before group commits (its prune waits for the next write).
func (s *Store) EnqueueBatch(items []Enqueued, limit int) ([]error, error) {
	if len(items) > MaxEnqueueBatch {
		return nil, fmt.Errorf("queue: a batch of %d items, more than %d", len(items), MaxEnqueueBatch)
	}
	res := make([]error, len(items))
	err := s.update(func(tx *bolt.Tx, deleted map[staleKey]int) error {
		counts := map[string]*queueCount{}
		queued := 0
		for i, e := range items {
			c, ok := counts[e.User]
			if !ok {
				c = countQueue(tx, e.User, deleted)
				counts[e.User] = c
			}
			if res[i] = c.admit(e.User, e.Item.Kind, limit); res[i] != nil {
				continue
			}
			if err := appendItems(tx, replyQueue, e.User, [][]byte{encodeItem(e.Item)}); err != nil {
				return err
			}
			queued++
		}
		if queued == 0 {
			return errNothingQueued
		}
		return nil
	})
	if err != nil && !errors.Is(err, errNothingQueued) {
		return nil, err
	}
	return res, nil
}

// errNothingQueued rolls back a batch whose items were all refused.
var errNothingQueued = errors.New("nothing queued")

// queueCount is what one user's queue holds in a write transaction, the batch's items included
// (bbolt's bucket statistics see neither the transaction's puts nor its deletions).
type queueCount struct {
	known    bool
	messages uint64
	replies  uint64
}

// countQueue counts user's queue at the start of a batch, after the prune (whose deletions
// are in deleted).
func countQueue(tx *bolt.Tx, user string, deleted map[staleKey]int) *queueCount {
	q := tx.Bucket(bucketQueues).Bucket([]byte(user))
	if q == nil {
		return &queueCount{}
	}
	messages := getCount(tx, replyQueue, user)
	// The message counter is recounted at every open, so it cannot exceed the items; were it
	// to, the replies count as none rather than the batch failing for every user.
	total := uint64(max(q.Stats().KeyN-deleted[staleKey{replyQueue, user}], 0))
	return &queueCount{known: true, messages: messages, replies: total - min(total, messages)}
}

// admit counts an item of kind into the queue, or says why the queue refuses it. Messages and
// replies are bounded apart, so that messages anyone can send never keep out the replies to the
// user's own packets.
func (c *queueCount) admit(user string, kind byte, limit int) error {
	switch {
	case !c.known:
		return fmt.Errorf("%w: %s", ErrUnknownUser, user)
	case kind == ItemMessage:
		if bound := uint64(max(min(limit, MaxMessageItems), 0)); c.messages >= bound {
			return fmt.Errorf("%w: %s holds %d queue messages", ErrQueueFull, user, bound)
		}
		c.messages++
	case kind == ItemReply:
		if bound := uint64(max(limit, 0)); c.replies >= bound {
			return fmt.Errorf("%w: %s holds %d replies", ErrQueueFull, user, bound)
		}
		c.replies++
	default:
		return fmt.Errorf("queue of %s: an item of kind %d", user, kind)
	}
	return nil
}

// MailItem is one item of a user's mail queue: a chunk of sealed mail (services.md 6.2).
type MailItem struct {
	Seq   uint64
	Chunk []byte
}

// EnqueueMail puts the chunks of the mail id, in order, in the user's mail queue, in one
// transaction that returns once committed (services.md section 6.3). An id queued for the user
// within keep before is not queued again and EnqueueMail returns nil: a delivery repeated
// after a crash is queued once. The user's QuotaBytes, when above 0, bounds the chunk bytes
// waiting in the mail queue, these included; a mail that does not fit is refused with an error
// wrapping ErrOverQuota. Ids older than keep are forgotten in the same transaction.
func (s *Store) EnqueueMail(user string, id [16]byte, chunks [][]byte, keep time.Duration) error {
	if len(chunks) == 0 {
		return errors.New("mail queue: a mail of no chunks")
	}
	if keep <= 0 {
		return fmt.Errorf("mail queue: ids kept for %v: a repeated delivery would be queued twice", keep)
	}
	var size uint64
	for _, c := range chunks {
		if len(c) == 0 {
			return errors.New("mail queue: an empty chunk")
		}
		size += uint64(len(c))
	}
	now := s.now()
	return s.update(func(tx *bolt.Tx, _ map[staleKey]int) error {
		u, err := getUser(tx, user)
		if err != nil {
			return err
		}
		ids := tx.Bucket(bucketMailIDs).Bucket([]byte(user))
		if ids == nil {
			return fmt.Errorf("%w: %s has no mail ids", ErrUnknownUser, user)
		}
		if err := forgetMailIDs(ids, now.Add(-keep)); err != nil {
			return fmt.Errorf("mail ids of %s: %w", user, err)
		}
		if ids.Get(mailIDKey(id)) != nil {
			return nil
		}
		if used := getCount(tx, mailQueue, user); u.QuotaBytes > 0 && used+size > uint64(u.QuotaBytes) {
			return fmt.Errorf("%w: %s has %d bytes of mail waiting for the client and a quota of %d, %d more do not fit", ErrOverQuota, user, used, u.QuotaBytes, size)
		}
		if err := appendItems(tx, mailQueue, user, chunks); err != nil {
			return err
		}
		if err := ids.Put(mailIDKey(id), nil); err != nil {
			return err
		}
		return ids.Put(mailAgeKey(now, id), nil)
	})
}

// Mail id keys (bucketMailIDs).
const (
	mailIDPrefix  = 'i'
	mailAgePrefix = 't'
	mailAgeKeyLen = 1 + 8 + 16
)

func mailIDKey(id [16]byte) []byte { return append([]byte{mailIDPrefix}, id[:]...) }

func mailAgeKey(t time.Time, id [16]byte) []byte {
	k := binary.BigEndian.AppendUint64([]byte{mailAgePrefix}, uint64(t.UnixNano()))
	return append(k, id[:]...)
}

// parseMailAgeKey decodes a 't' key of bucketMailIDs.
func parseMailAgeKey(k []byte) (time.Time, [16]byte, error) {
	var id [16]byte
	if len(k) != mailAgeKeyLen || k[0] != mailAgePrefix {
		return time.Time{}, id, fmt.Errorf("corrupt mail id record %x", k)
	}
	copy(id[:], k[9:])
	return time.Unix(0, int64(binary.BigEndian.Uint64(k[1:9]))), id, nil
}

// forgetMailIDs deletes the ids queued before cutoff: the 't' keys sort after every 'i' key
// and in time order, so this reads only what it deletes and the first key it keeps.
func forgetMailIDs(ids *bolt.Bucket, cutoff time.Time) error {
	c := ids.Cursor()
	for k, _ := c.Seek([]byte{mailAgePrefix}); k != nil; k, _ = c.Seek([]byte{mailAgePrefix}) {
		at, id, err := parseMailAgeKey(k)
		if err != nil {
			return err
		}
		if !at.Before(cutoff) {
			return nil
		}
		if err := c.Delete(); err != nil {
			return err
		}
		if err := ids.Delete(mailIDKey(id)); err != nil {
			return err
		}
	}
	return nil
}

// update runs f in a write transaction that first deletes the acknowledged items (see Store);
// f learns how many it deleted per queue.
func (s *Store) update(f func(tx *bolt.Tx, deleted map[staleKey]int) error) error {
	stale := s.takeStale()
	err := s.db.Update(func(tx *bolt.Tx) error {
		deleted, err := prune(tx, stale)
		if err != nil {
			return err
		}
		return f(tx, deleted)
	})
	if err != nil {
		s.restoreStale(stale) // the deletions did not happen: keep them for the next write
	}
	return err
}

// appendItems appends values to user's queue q and adds them to its counter.
func appendItems(tx *bolt.Tx, q *queue, user string, values [][]byte) error {
	b := tx.Bucket(q.bucket).Bucket([]byte(user))
	if b == nil {
		return fmt.Errorf("%w: %s", ErrUnknownUser, user)
	}
	n := getCount(tx, q, user)
	for _, v := range values {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), v); err != nil {
			return err
		}
		n += q.weight(v)
	}
	return putCount(tx, q, user, n)
}

// Fetch returns the first item of the user's queue at or after from, if any, and how many
// items remain after it. The items below from are the client's: they are deleted later (see
// Store), and never returned again. It is FetchN for one item.
func (s *Store) Fetch(user string, from uint64) (*Item, int, error) {
	items, remaining, err := s.FetchN(user, from, 1)
	if err != nil || len(items) == 0 {
		return nil, 0, err
	}
	return items[0], remaining[0], nil
}

// FetchMail is Fetch for the user's mail queue.
func (s *Store) FetchMail(user string, from uint64) (*MailItem, int, error) {
	items, remaining, err := s.FetchMailN(user, from, 1)
	if err != nil || len(items) == 0 {
		return nil, 0, err
	}
	return items[0], remaining[0], nil
}

// noteStale records that the items of a user's queue below from are acknowledged, and prunes
// every noted item when the last prune is pruneInterval old. A failed prune is kept for the
// next write.
func (s *Store) noteStale(k staleKey, from uint64) {
	s.mu.Lock()
	if s.stale == nil {
		s.stale = map[staleKey]uint64{}
	}
	s.stale[k] = max(s.stale[k], from)
	due := time.Since(s.lastPrune) >= pruneInterval
	s.mu.Unlock()
	if due {
		_ = s.Prune()
	}
}

// Prune deletes every item a client has acknowledged, now (one write).
func (s *Store) Prune() error {
	s.mu.Lock()
	none := len(s.stale) == 0
	s.mu.Unlock()
	if none {
		return nil
	}
	return s.update(func(*bolt.Tx, map[staleKey]int) error { return nil })
}

func (s *Store) takeStale() map[staleKey]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.stale
	s.stale = nil
	s.lastPrune = time.Now()
	return m
}

func (s *Store) restoreStale(m map[staleKey]uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, from := range m {
		if s.stale == nil {
			s.stale = map[staleKey]uint64{}
		}
		s.stale[k] = max(s.stale[k], from)
	}
}

func (s *Store) forgetStale(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range queues {
		delete(s.stale, staleKey{q, user})
	}
}

// prune deletes, for each queue of stale, the items below its number, and returns how many it
// deleted per queue (bbolt's bucket statistics do not see deletions before the commit).
func prune(tx *bolt.Tx, stale map[staleKey]uint64) (map[staleKey]int, error) {
	deleted := map[staleKey]int{}
	for sk, from := range stale {
		b := tx.Bucket(sk.q.bucket).Bucket([]byte(sk.user))
		if b == nil {
			continue // removed since
		}
		c := b.Cursor()
		n := getCount(tx, sk.q, sk.user)
		for k, v := c.First(); k != nil && binary.BigEndian.Uint64(k) < from; k, v = c.First() {
			n -= min(n, sk.q.weight(v))
			if err := c.Delete(); err != nil {
				return nil, err
			}
			deleted[sk]++
		}
		if err := putCount(tx, sk.q, sk.user, n); err != nil {
			return nil, err
		}
	}
	return deleted, nil
}

func getCount(tx *bolt.Tx, q *queue, user string) uint64 {
	v := tx.Bucket(q.counter).Get([]byte(user))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putCount(tx *bolt.Tx, q *queue, user string, n uint64) error {
	b := tx.Bucket(q.counter)
	if n == 0 {
		return b.Delete([]byte(user))
	}
	return b.Put([]byte(user), binary.BigEndian.AppendUint64(nil, n))
}

// recount rebuilds q's counter from its items, so that the count can never drift from what is
// stored (and a database from before the counter gets one).
func recount(tx *bolt.Tx, q *queue) error {
	if tx.Bucket(q.counter) != nil {
		if err := tx.DeleteBucket(q.counter); err != nil {
			return err
		}
	}
	cb, err := tx.CreateBucket(q.counter)
	if err != nil {
		return err
	}
	return tx.Bucket(q.bucket).ForEachBucket(func(user []byte) error {
		var n uint64
		err := tx.Bucket(q.bucket).Bucket(user).ForEach(func(_, v []byte) error {
			n += q.weight(v)
			return nil
		})
		if err != nil || n == 0 {
			return err
		}
		return cb.Put(bytes.Clone(user), binary.BigEndian.AppendUint64(nil, n))
	})
}

// QueueLen is the number of items waiting for a user (acknowledged items are pruned first).
func (s *Store) QueueLen(user string) (int, error) { return s.queueLen(replyQueue, user) }

// MailQueueLen is QueueLen for the user's mail queue.
func (s *Store) MailQueueLen(user string) (int, error) { return s.queueLen(mailQueue, user) }

func (s *Store) queueLen(q *queue, user string) (int, error) {
	if err := s.Prune(); err != nil {
		return 0, err
	}
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(q.bucket).Bucket([]byte(user))
		if b == nil {
			return fmt.Errorf("%w: %s", ErrUnknownUser, user)
		}
		n = b.Stats().KeyN
		return nil
	})
	return n, err
}

// MailBytes is the chunk bytes in the user's mail queue that its client has not acknowledged
// (what EnqueueMail checks against the quota); acknowledged items are pruned first.
func (s *Store) MailBytes(user string) (int64, error) {
	if err := s.Prune(); err != nil {
		return 0, err
	}
	var n uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketUsers).Get([]byte(user)) == nil {
			return fmt.Errorf("%w: %s", ErrUnknownUser, user)
		}
		n = getCount(tx, mailQueue, user)
		return nil
	})
	return int64(min(n, math.MaxInt64)), err
}
