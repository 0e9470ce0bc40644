package provider

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
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
)

var (
	bucketUsers  = []byte("users")
	bucketLinks  = []byte("links") // link key -> user name
	bucketQueues = []byte("queues")
	// bucketMessages counts each user's items of kind ItemMessage (user -> u64). It is
	// derived: OpenStore recounts it from the queues.
	bucketMessages = []byte("messages")
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
	// QuotaBytes bounds the user's stored mail (enforced by the mailbox service).
	QuotaBytes int64     `json:"quota_bytes"`
	Created    time.Time `json:"created"`
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

// Store is the provider's bbolt database of users and queues.
//
// Items a client has acknowledged (those below the number of its retrieve) are not deleted by
// the retrieve itself, which would cost a write and an fsync per retrieve on the store's one
// writer: Fetch notes them, and the next write that fsyncs anyway (an Enqueue), or a prune at
// most every pruneInterval, deletes them. Losing these notes in a crash loses nothing: the
// client never asks for an item below its number again, and its next retrieve notes them again.
type Store struct {
	db *bolt.DB

	mu        sync.Mutex
	stale     map[string]uint64 // user -> items below this number are the client's
	lastPrune time.Time
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
		for _, b := range [][]byte{bucketUsers, bucketLinks, bucketQueues} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return recountMessages(tx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("provider store %s: %w", path, err)
	}
	return &Store{db: db, lastPrune: time.Now()}, nil
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
		_, err := tx.Bucket(bucketQueues).CreateBucketIfNotExists([]byte(u.Name))
		return err
	})
}

// RemoveUser deletes a user and its queue.
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
		if err := tx.Bucket(bucketQueues).DeleteBucket([]byte(name)); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
		return tx.Bucket(bucketMessages).Delete([]byte(name))
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
// Items the user's client has acknowledged are deleted in the same transaction first.
func (s *Store) Enqueue(user string, it *Item, limit int) error {
	stale := s.takeStale()
	err := s.db.Update(func(tx *bolt.Tx) error {
		deleted, err := prune(tx, stale)
		if err != nil {
			return err
		}
		q := tx.Bucket(bucketQueues).Bucket([]byte(user))
		if q == nil {
			return fmt.Errorf("%w: %s", ErrUnknownUser, user)
		}
		// Messages and replies are bounded apart, so that messages anyone can send never keep
		// out the replies to the user's own packets.
		messages := getMessages(tx, user)
		if it.Kind == ItemMessage {
			if bound := min(limit, MaxMessageItems); messages >= uint64(bound) {
				return fmt.Errorf("%w: %s holds %d queue messages", ErrQueueFull, user, bound)
			}
			messages++
		} else if q.Stats().KeyN-deleted[user]-int(messages) >= limit {
			return fmt.Errorf("%w: %s holds %d replies", ErrQueueFull, user, limit)
		}
		if err := putMessages(tx, user, messages); err != nil {
			return err
		}
		seq, err := q.NextSequence()
		if err != nil {
			return err
		}
		var k [8]byte
		binary.BigEndian.PutUint64(k[:], seq)
		return q.Put(k[:], encodeItem(it))
	})
	if err != nil {
		s.restoreStale(stale) // the deletions did not happen: keep them for the next write
	}
	return err
}

// Fetch returns the first item of the user's queue at or after from, if any, and how many
// items remain after it. The items below from are the client's: they are deleted later (see
// Store), and never returned again.
func (s *Store) Fetch(user string, from uint64) (*Item, int, error) {
	var it *Item
	var remaining int
	stale := false
	err := s.db.View(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueues).Bucket([]byte(user))
		if q == nil {
			return fmt.Errorf("%w: %s", ErrUnknownUser, user)
		}
		c := q.Cursor()
		k, v := c.First()
		if k != nil && binary.BigEndian.Uint64(k) < from {
			stale = true
			var fk [8]byte
			binary.BigEndian.PutUint64(fk[:], from)
			k, v = c.Seek(fk[:])
		}
		if k == nil {
			return nil
		}
		var err error
		if it, err = decodeItem(binary.BigEndian.Uint64(k), v); err != nil {
			return err
		}
		for k, _ = c.Next(); k != nil; k, _ = c.Next() {
			remaining++
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if stale {
		s.noteStale(user, from)
	}
	return it, remaining, nil
}

// noteStale records that user's items below from are acknowledged, and prunes every noted
// item when the last prune is pruneInterval old. A failed prune is kept for the next write.
func (s *Store) noteStale(user string, from uint64) {
	s.mu.Lock()
	if s.stale == nil {
		s.stale = map[string]uint64{}
	}
	s.stale[user] = max(s.stale[user], from)
	due := time.Since(s.lastPrune) >= pruneInterval
	s.mu.Unlock()
	if due {
		_ = s.Prune()
	}
}

// Prune deletes every item a client has acknowledged, now (one write).
func (s *Store) Prune() error {
	stale := s.takeStale()
	if len(stale) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		_, err := prune(tx, stale)
		return err
	})
	if err != nil {
		s.restoreStale(stale)
	}
	return err
}

func (s *Store) takeStale() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.stale
	s.stale = nil
	s.lastPrune = time.Now()
	return m
}

func (s *Store) restoreStale(m map[string]uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for u, from := range m {
		if s.stale == nil {
			s.stale = map[string]uint64{}
		}
		s.stale[u] = max(s.stale[u], from)
	}
}

func (s *Store) forgetStale(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.stale, user)
}

// prune deletes, for each user of stale, the items below its number, and returns how many it
// deleted per user (bbolt's bucket statistics do not see deletions before the commit).
func prune(tx *bolt.Tx, stale map[string]uint64) (map[string]int, error) {
	deleted := map[string]int{}
	for user, from := range stale {
		q := tx.Bucket(bucketQueues).Bucket([]byte(user))
		if q == nil {
			continue // removed since
		}
		c := q.Cursor()
		messages := getMessages(tx, user)
		for k, v := c.First(); k != nil && binary.BigEndian.Uint64(k) < from; k, v = c.First() {
			if len(v) > 0 && v[0] == ItemMessage {
				messages -= min(messages, 1)
			}
			if err := c.Delete(); err != nil {
				return nil, err
			}
			deleted[user]++
		}
		if err := putMessages(tx, user, messages); err != nil {
			return nil, err
		}
	}
	return deleted, nil
}

func getMessages(tx *bolt.Tx, user string) uint64 {
	v := tx.Bucket(bucketMessages).Get([]byte(user))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putMessages(tx *bolt.Tx, user string, n uint64) error {
	b := tx.Bucket(bucketMessages)
	if n == 0 {
		return b.Delete([]byte(user))
	}
	return b.Put([]byte(user), binary.BigEndian.AppendUint64(nil, n))
}

// recountMessages rebuilds bucketMessages from the queues, so that the count can never drift
// from what is stored (and a database from before the count gets one).
func recountMessages(tx *bolt.Tx) error {
	if tx.Bucket(bucketMessages) != nil {
		if err := tx.DeleteBucket(bucketMessages); err != nil {
			return err
		}
	}
	mb, err := tx.CreateBucket(bucketMessages)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketQueues).ForEachBucket(func(user []byte) error {
		var n uint64
		err := tx.Bucket(bucketQueues).Bucket(user).ForEach(func(_, v []byte) error {
			if len(v) > 0 && v[0] == ItemMessage {
				n++
			}
			return nil
		})
		if err != nil || n == 0 {
			return err
		}
		return mb.Put(bytes.Clone(user), binary.BigEndian.AppendUint64(nil, n))
	})
}

// QueueLen is the number of items waiting for a user (acknowledged items are pruned first).
func (s *Store) QueueLen(user string) (int, error) {
	if err := s.Prune(); err != nil {
		return 0, err
	}
	var n int
	err := s.db.View(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueues).Bucket([]byte(user))
		if q == nil {
			return fmt.Errorf("%w: %s", ErrUnknownUser, user)
		}
		n = q.Stats().KeyN
		return nil
	})
	return n, err
}
