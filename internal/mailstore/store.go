package mailstore

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/panoramix-mixnet/panoramix/pkg/passwd"
)

// Errors callers tell apart; they are wrapped with the offending name.
var (
	ErrNoSuchUser      = errors.New("no such user")
	ErrUserExists      = errors.New("user already exists")
	ErrNoSuchMailbox   = errors.New("no such mailbox")
	ErrMailboxExists   = errors.New("mailbox already exists")
	ErrInvalidName     = errors.New("invalid name")
	ErrInvalidFlag     = errors.New("invalid flag")
	ErrOverQuota       = errors.New("mailbox quota exceeded")
	ErrTooLarge        = errors.New("message too large")
	ErrTooManyMailbox  = errors.New("too many mailboxes")
	ErrAuthFailed      = errors.New("authentication failed")
	ErrCannotDelete    = errors.New("mailbox cannot be deleted")
	ErrUIDsExhausted   = errors.New("mailbox UID space exhausted")
	errCorruptDatabase = errors.New("corrupt mail store")
)

// DefaultMailboxes are created for every new user, with their RFC 6154 special use.
var DefaultMailboxes = []struct{ Name, SpecialUse string }{
	{Inbox, ""},
	{"Sent", `\Sent`},
	{"Trash", `\Trash`},
}

var (
	bucketUsers  = []byte("users")
	bucketMail   = []byte("mail")
	bucketGlobal = []byte("global")
	bucketBoxes  = []byte("boxes")
	bucketData   = []byte("data")
	bucketMeta   = []byte("meta")
	bucketBody   = []byte("body")
	bucketSubs   = []byte("subs")
	keyUIDValid  = []byte("uidvalidity")
)

// openTimeout bounds the wait for bbolt's file lock, so a second process opening the same store
// fails with a clear error instead of hanging.
const openTimeout = 2 * time.Second

const batchDelay = time.Millisecond

// Store is the mailbox store. It is safe for concurrent use.
type Store struct {
	db *bolt.DB

	mu      sync.Mutex
	watches map[string]*watch

	// verify checks a password against a stored PHC string; a field so tests can count calls.
	verify func(phc, password string) error
}

type watch struct {
	version uint64
	ch      chan struct{}
}

type userRecord struct {
	Password string `json:"password,omitempty"` // PHC string from pkg/passwd
	Quota    int64  `json:"quota"`              // bytes; 0 means no limit
	Used     int64  `json:"used"`               // bytes of all messages in all mailboxes
	Created  int64  `json:"created"`            // unix seconds
}

// Open opens (creating if needed) the store in the bbolt file at path.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return nil, fmt.Errorf("mailstore: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketUsers, bucketMail, bucketGlobal} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return migrateSubscriptions(tx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("mailstore: initialise %s: %w", path, err)
	}
	// A lone delivery waits at most this long for others to share its commit; the fsync it
	// shares costs several milliseconds, so the wait is cheap and concurrent deliveries gain.
	db.MaxBatchDelay = batchDelay
	return &Store{db: db, watches: make(map[string]*watch), verify: passwd.Verify}, nil
}

// Close closes the store. Pending calls finish first (bbolt waits for open transactions).
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("mailstore: close: %w", err)
	}
	return nil
}

// Changes returns the user's change counter and a channel that is closed at the next change of
// the user's mail after this call. Read the counter before looking at the store, so that a change
// made while looking is not missed.
func (s *Store) Changes(user string) (uint64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.watchLocked(user)
	return w.version, w.ch
}

func (s *Store) notify(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.watchLocked(user)
	w.version++
	close(w.ch)
	w.ch = make(chan struct{})
}

func (s *Store) watchLocked(user string) *watch {
	w := s.watches[user]
	if w == nil {
		w = &watch{ch: make(chan struct{})}
		s.watches[user] = w
	}
	return w
}

// update runs fn in a write transaction and, once it has committed, wakes the user's watchers.
func (s *Store) update(user string, fn func(tx *bolt.Tx) error) error {
	if err := s.db.Update(fn); err != nil {
		return err
	}
	s.notify(user)
	return nil
}

// batch is update through bbolt's Batch: concurrent deliveries share one commit and one fsync.
// fn may run more than once (bbolt retries the others when one fails), so it must only change
// the transaction and variables it resets itself.
func (s *Store) batch(user string, fn func(tx *bolt.Tx) error) error {
	if err := s.db.Batch(fn); err != nil {
		return err
	}
	s.notify(user)
	return nil
}

// UserInfo describes a user account.
type UserInfo struct {
	Name        string
	Quota       int64 // bytes; 0 means no limit
	Used        int64 // bytes
	HasPassword bool
	Created     time.Time
}

// CreateUser creates a user with the given quota in bytes (0: no limit) and the default mailboxes.
// The user cannot log in until SetPassword.
func (s *Store) CreateUser(name string, quota int64) error {
	if err := checkUserName(name); err != nil {
		return fmt.Errorf("mailstore: create user: %w", err)
	}
	if quota < 0 {
		return fmt.Errorf("mailstore: create user %q: negative quota", name)
	}
	err := s.update(name, func(tx *bolt.Tx) error {
		users := tx.Bucket(bucketUsers)
		if users.Get([]byte(name)) != nil {
			return fmt.Errorf("%w: %q", ErrUserExists, name)
		}
		if err := putJSON(users, []byte(name), &userRecord{Quota: quota, Created: time.Now().Unix()}); err != nil {
			return err
		}
		mail, err := tx.Bucket(bucketMail).CreateBucket([]byte(name))
		if err != nil {
			return err
		}
		if _, err := mail.CreateBucket(bucketBoxes); err != nil {
			return err
		}
		if _, err := mail.CreateBucket(bucketData); err != nil {
			return err
		}
		subs, err := mail.CreateBucket(bucketSubs)
		if err != nil {
			return err
		}
		for _, mb := range DefaultMailboxes {
			if _, err := createBox(tx, mail, mb.Name, mb.SpecialUse); err != nil {
				return err
			}
			if err := subscribe(subs, mb.Name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mailstore: create user: %w", err)
	}
	return nil
}

// DeleteUser removes a user and all their mail.
func (s *Store) DeleteUser(name string) error {
	err := s.update(name, func(tx *bolt.Tx) error {
		users := tx.Bucket(bucketUsers)
		if users.Get([]byte(name)) == nil {
			return fmt.Errorf("%w: %q", ErrNoSuchUser, name)
		}
		if err := users.Delete([]byte(name)); err != nil {
			return err
		}
		return tx.Bucket(bucketMail).DeleteBucket([]byte(name))
	})
	if err != nil {
		return fmt.Errorf("mailstore: delete user: %w", err)
	}
	return nil
}

// SetPassword stores a password hash (a PHC string from pkg/passwd) for the user. The hash is
// parsed first, so a malformed or absurdly expensive hash never reaches the database.
func (s *Store) SetPassword(name, phc string) error {
	if _, err := passwd.Parse(phc); err != nil {
		return fmt.Errorf("mailstore: set password for %q: %w", name, err)
	}
	return s.modifyUser(name, func(u *userRecord) error { u.Password = phc; return nil })
}

// SetQuota changes the user's quota in bytes (0: no limit). Mail already stored stays even if it
// is now over quota; new mail is refused until the user makes room.
func (s *Store) SetQuota(name string, quota int64) error {
	if quota < 0 {
		return fmt.Errorf("mailstore: set quota for %q: negative quota", name)
	}
	return s.modifyUser(name, func(u *userRecord) error { u.Quota = quota; return nil })
}

func (s *Store) modifyUser(name string, fn func(*userRecord) error) error {
	err := s.update(name, func(tx *bolt.Tx) error {
		users := tx.Bucket(bucketUsers)
		var u userRecord
		if err := getUser(tx, name, &u); err != nil {
			return err
		}
		if err := fn(&u); err != nil {
			return err
		}
		return putJSON(users, []byte(name), &u)
	})
	if err != nil {
		return fmt.Errorf("mailstore: %w", err)
	}
	return nil
}

// User returns one user's account data.
func (s *Store) User(name string) (UserInfo, error) {
	var info UserInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		var u userRecord
		if err := getUser(tx, name, &u); err != nil {
			return err
		}
		info = u.info(name)
		return nil
	})
	if err != nil {
		return UserInfo{}, fmt.Errorf("mailstore: %w", err)
	}
	return info, nil
}

// Users lists all users, sorted by name.
func (s *Store) Users() ([]UserInfo, error) {
	var out []UserInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			var u userRecord
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("%w: user %q: %v", errCorruptDatabase, k, err)
			}
			out = append(out, u.info(string(k)))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("mailstore: list users: %w", err)
	}
	return out, nil
}

func (u *userRecord) info(name string) UserInfo {
	return UserInfo{Name: name, Quota: u.Quota, Used: u.Used, HasPassword: u.Password != "", Created: time.Unix(u.Created, 0)}
}

var (
	dummyOnce sync.Once
	dummyHash string
)

// Authenticate checks a user's password. Unknown users and users without a password cost the
// same hash computation as a wrong password, so the answer's timing does not reveal which user
// names exist. Every failure wraps ErrAuthFailed; a stored hash that does not parse adds the
// parse error so the operator can see it in the log.
func (s *Store) Authenticate(name, password string) error {
	phc, err := s.PasswordHash(name)
	if err != nil {
		return fmt.Errorf("mailstore: authenticate: %w", err)
	}
	if phc == "" {
		dummyOnce.Do(func() { dummyHash, _ = passwd.Hash("panoramix timing equaliser") })
		_ = s.verify(dummyHash, password)
		return fmt.Errorf("mailstore: %w for %q", ErrAuthFailed, name)
	}
	switch err := s.verify(phc, password); {
	case err == nil:
		return nil
	case errors.Is(err, passwd.ErrMismatch):
		return fmt.Errorf("mailstore: %w for %q", ErrAuthFailed, name)
	default:
		return fmt.Errorf("mailstore: %w for %q: stored hash unusable: %w", ErrAuthFailed, name, err)
	}
}

// PasswordHash returns the user's stored password hash (a PHC string), "" if the user has none
// or does not exist. The IMAP server's login cache keys its entries with it, so that a changed
// password voids them.
func (s *Store) PasswordHash(name string) (string, error) {
	var phc string
	err := s.db.View(func(tx *bolt.Tx) error {
		var u userRecord
		if err := getUser(tx, name, &u); err != nil {
			return err
		}
		phc = u.Password
		return nil
	})
	if err != nil && !errors.Is(err, ErrNoSuchUser) {
		return "", fmt.Errorf("mailstore: password hash: %w", err)
	}
	return phc, nil
}

func getUser(tx *bolt.Tx, name string, u *userRecord) error {
	v := tx.Bucket(bucketUsers).Get([]byte(name))
	if v == nil {
		return fmt.Errorf("%w: %q", ErrNoSuchUser, name)
	}
	if err := json.Unmarshal(v, u); err != nil {
		return fmt.Errorf("%w: user %q: %v", errCorruptDatabase, name, err)
	}
	return nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, data)
}

// nextUIDValidity hands out UIDVALIDITY values that never repeat in this store: the current time
// in seconds, or one more than the last value if the clock has not moved past it. A mailbox that
// is deleted and re-created therefore never reuses an old UIDVALIDITY (RFC 3501 section 2.3.1.1).
func nextUIDValidity(tx *bolt.Tx) (uint32, error) {
	g := tx.Bucket(bucketGlobal)
	var last uint32
	if v := g.Get(keyUIDValid); len(v) == 4 {
		last = binary.BigEndian.Uint32(v)
	}
	next := max(uint32(time.Now().Unix()), last+1)
	if next == 0 {
		return 0, fmt.Errorf("%w: UIDVALIDITY counter wrapped", errCorruptDatabase)
	}
	return next, g.Put(keyUIDValid, binary.BigEndian.AppendUint32(nil, next))
}

func uidKey(uid uint32) []byte { return binary.BigEndian.AppendUint32(nil, uid) }

func sortedUnique(uids []uint32) []uint32 {
	out := slices.Clone(uids)
	slices.Sort(out)
	return slices.Compact(out)
}
