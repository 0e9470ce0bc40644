package mailbox

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// Name is the service name senders put in the Recipient command.
const Name = "mailbox"

// Defaults of Config.
const (
	DefaultExpiry         = 24 * time.Hour
	DefaultMaxMessageSize = 32 << 20
	// DefaultMaxPending bounds the bytes of all messages held for delivery (incomplete or in
	// the outbox): fragments for users that exist cost disk until they expire, and anyone can
	// send them.
	DefaultMaxPending = 1 << 30
	// DefaultMaxUserIncomplete bounds one user's incomplete messages. Their bytes are bounded
	// too (MaxUserPending); the number bounds what fragments of a few bytes cost in records.
	DefaultMaxUserIncomplete = 1024
	// DefaultRetryMin and DefaultRetryMax bound the backoff between delivery attempts.
	DefaultRetryMin = time.Second
	DefaultRetryMax = 5 * time.Minute
)

// openTimeout bounds the wait for the bbolt file lock, so that a second mixd on the same file
// fails with a clear error instead of hanging.
const openTimeout = 2 * time.Second

// batchDelay is how long a fragment's commit waits for others to share its fsync.
const batchDelay = time.Millisecond

// Config configures a Service.
type Config struct {
	// Path is the bbolt file for fragments, the delivery queue and delivered-message ids.
	Path string
	// Geometry fixes the fragment capacity: client.FragmentCapacity(Geometry).
	Geometry sphinx.Geometry
	// Backend delivers complete messages.
	Backend Backend
	// Expiry: incomplete messages older than this are dropped, and outcomes of finished
	// messages are remembered at least this long. Default 24h.
	Expiry time.Duration
	// MaxMessageSize refuses larger messages (ack "too large"); default 32 MiB, capped by
	// client.MaxMessageSize of the fragment capacity.
	MaxMessageSize int
	// MaxUserPending bounds the bytes of one user's messages held for delivery, counting what
	// is stored, not what a first fragment claims (docs/spec/services.md section 4). A new
	// message whose length does not fit beside the user's complete messages is refused as over
	// quota; room for a fragment is made by evicting the user's incomplete messages, the one
	// whose latest fragment is oldest first. Default 4 * MaxMessageSize.
	MaxUserPending int64
	// MaxUserIncomplete bounds one user's incomplete messages; beyond it the same eviction
	// makes room. Default DefaultMaxUserIncomplete.
	MaxUserIncomplete int
	// MaxPending bounds the bytes of all messages held for delivery. Room for a fragment is
	// made by evicting incomplete messages of any user, oldest latest fragment first; a
	// fragment that still does not fit (complete messages fill the service) is not stored nor
	// acknowledged, so its sender retries later. Default DefaultMaxPending.
	MaxPending int64
	// RetryMin and RetryMax bound the exponential backoff of delivery attempts after a
	// temporary failure; defaults DefaultRetryMin and DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// Logger receives the service's log lines; nil discards them.
	Logger *slog.Logger
	// Registerer receives the mixd_mailbox_* metrics; may be nil.
	Registerer prometheus.Registerer
}

// Service is the mailbox service. Deliver is safe for concurrent use; Run runs once.
type Service struct {
	db       *bolt.DB
	backend  Backend
	log      *slog.Logger
	m        *metrics
	capacity int

	expiry                     time.Duration
	maxSize                    int
	maxUserPending, maxPending int64
	maxUserIncomplete          int
	retryMin, retryMax         time.Duration

	storing atomic.Int32 // store calls in progress

	now  func() time.Time // a field so tests can move the clock
	wake chan struct{}    // a message completed: Run should look at the outbox
}

// New validates cfg and opens (creating if needed) the service's database.
func New(cfg Config) (*Service, error) {
	if cfg.Path == "" {
		return nil, errors.New("mailbox: no database path")
	}
	if err := cfg.Geometry.Validate(); err != nil {
		return nil, fmt.Errorf("mailbox: %w", err)
	}
	capacity := client.FragmentCapacity(cfg.Geometry)
	if capacity < 1 {
		return nil, fmt.Errorf("mailbox: geometry %v leaves no room for fragment data", cfg.Geometry)
	}
	if cfg.Backend == nil {
		return nil, errors.New("mailbox: no delivery backend")
	}
	if cfg.Expiry < 0 || cfg.MaxMessageSize < 0 || cfg.MaxUserPending < 0 || cfg.MaxUserIncomplete < 0 || cfg.MaxPending < 0 || cfg.RetryMin < 0 || cfg.RetryMax < 0 {
		return nil, errors.New("mailbox: negative expiry, size limit or retry interval")
	}
	s := &Service{
		backend:           cfg.Backend,
		log:               cfg.Logger,
		capacity:          capacity,
		expiry:            cmp(cfg.Expiry, DefaultExpiry),
		maxSize:           min(cmp(cfg.MaxMessageSize, DefaultMaxMessageSize), client.MaxMessageSize(capacity)),
		maxPending:        cmp(cfg.MaxPending, DefaultMaxPending),
		maxUserIncomplete: cmp(cfg.MaxUserIncomplete, DefaultMaxUserIncomplete),
		retryMin:          cmp(cfg.RetryMin, DefaultRetryMin),
		retryMax:          cmp(cfg.RetryMax, DefaultRetryMax),
		now:               time.Now,
		wake:              make(chan struct{}, 1),
		maxUserPending:    cfg.MaxUserPending,
	}
	if s.maxUserPending == 0 {
		s.maxUserPending = 4 * int64(s.maxSize)
	}
	if s.retryMax < s.retryMin {
		return nil, fmt.Errorf("mailbox: retry maximum %v below the minimum %v", s.retryMax, s.retryMin)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s.m = m
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return nil, fmt.Errorf("mailbox: open %s: %w", cfg.Path, err)
	}
	db.MaxBatchDelay = batchDelay
	var outbox int
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		outbox = tx.Bucket(bucketOutbox).Stats().KeyN
		return rebuild(tx)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("mailbox: initialise %s: %w", cfg.Path, err)
	}
	s.db = db
	s.m.outbox.Set(float64(outbox))
	return s, nil
}

// cmp returns v, or def when v is zero.
func cmp[T int | int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Name returns "mailbox".
func (s *Service) Name() string { return Name }

// Close closes the database. Call it after Run has returned.
func (s *Service) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("mailbox: close: %w", err)
	}
	return nil
}

var _ service.Service = (*Service)(nil)

// storeResult is what storing one fragment came to.
type storeResult int

const (
	resStored    storeResult = iota // stored now
	resDuplicate                    // already stored, or the message was already delivered
	resFinished                     // the message had failed for good: answer with the status
	resMismatch                     // another fragment of the id disagrees on count or length
	resFull                         // the service holds too much: no ack, the sender retries
)

// errNoRoom rolls back a store transaction that evicted messages but still found no room.
var errNoRoom = errors.New("no room")

// Deliver stores one fragment for user req.Recipient and acknowledges it through reply
// (docs/spec/services.md section 2, fragment format of pkg/client). It returns an error only
// for a failure of the service itself (database, reply); refusals are answered with an ack
// status and return nil.
func (s *Service) Deliver(ctx context.Context, req *service.Request, reply service.Replier) error {
	user := req.Recipient
	f, err := client.ParseFragment(req.Data, s.capacity)
	if err != nil {
		s.m.failures.WithLabelValues(reasonMalformed).Inc()
		s.log.Debug("malformed fragment", "user", user, "err", err)
		if id, index, ok := client.FragmentIDs(req.Data); ok {
			return s.ack(ctx, reply, id, index, client.AckMalformed)
		}
		return nil
	}
	if user == "" || len(user) > maxUserSize {
		s.m.failures.WithLabelValues(reasonUnknownRecipient).Inc()
		return s.ack(ctx, reply, f.ID, f.Index, client.AckUnknownRecipient)
	}
	if int64(f.TotalLength) > int64(s.maxSize) {
		s.m.failures.WithLabelValues(reasonTooLarge).Inc()
		s.log.Debug("message too large", "user", user, "id", f.ID, "size", f.TotalLength, "limit", s.maxSize)
		return s.ack(ctx, reply, f.ID, f.Index, client.AckTooLarge)
	}
	mk := msgKey(user, f.ID)

	// What is known of the message decides whether the user and the quota need checking: only
	// its first fragment pays for those look-ups (which may be a network round trip).
	var done *doneRecord
	var known bool
	var userComplete uint64
	err = s.db.View(func(tx *bolt.Tx) error {
		var err error
		if done, err = getDone(tx, mk); err != nil || done != nil {
			return err
		}
		rec, err := getMsg(tx, mk)
		known = rec != nil
		userComplete = getUsage(tx, user).Complete
		return err
	})
	if err != nil {
		return fmt.Errorf("mailbox: look up message: %w", err)
	}
	if done != nil {
		s.m.duplicates.Inc()
		return s.ack(ctx, reply, f.ID, f.Index, done.Status)
	}
	refuse := client.AckStored // AckStored: none
	if !known {
		// Only complete messages count against the new one: incomplete ones can be anyone's
		// forgeries, and are evicted to make room if need be.
		status, err := s.checkNew(ctx, user, int64(userComplete)+int64(f.TotalLength))
		if err != nil {
			return err
		}
		switch status {
		case client.AckUnknownRecipient:
			s.m.failures.WithLabelValues(reasonUnknownRecipient).Inc()
			s.log.Debug("fragment for an unknown user", "user", user, "id", f.ID)
			return s.ack(ctx, reply, f.ID, f.Index, status)
		case client.AckOverQuota:
			refuse = status
		}
	}

	res, status, complete, evicted, err := s.store(user, mk, f, refuse)
	if err != nil {
		return fmt.Errorf("mailbox: store fragment: %w", err)
	}
	for _, e := range evicted {
		eu, eid, _ := splitMsgKey(e.key)
		s.m.evicted.Inc()
		s.log.Info("incomplete mail evicted to make room; its sender will be told over quota", "user", eu, "id", eid, "fragments", e.rec.Received, "of", e.rec.Count, "for", user)
	}
	switch res {
	case resStored:
		s.m.stored.Inc()
		if complete {
			s.m.outbox.Inc()
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
		return s.ack(ctx, reply, f.ID, f.Index, client.AckStored)
	case resDuplicate:
		s.m.duplicates.Inc()
		return s.ack(ctx, reply, f.ID, f.Index, client.AckStored)
	case resFinished:
		if status == client.AckOverQuota && refuse == status {
			s.m.failures.WithLabelValues(reasonOverQuota).Inc()
			s.log.Info("message refused: recipient over quota", "user", user, "id", f.ID, "size", f.TotalLength)
		} else {
			s.m.duplicates.Inc()
		}
		return s.ack(ctx, reply, f.ID, f.Index, status)
	case resMismatch:
		s.m.failures.WithLabelValues(reasonMalformed).Inc()
		s.log.Debug("fragment disagrees with its message", "user", user, "id", f.ID, "index", f.Index)
		return s.ack(ctx, reply, f.ID, f.Index, client.AckMalformed)
	}
	// resFull
	return fmt.Errorf("mailbox: fragment of %s for %q not stored: %d bytes of messages already held for delivery", f.ID, user, s.maxPending)
}

// checkNew checks the recipient of a message the service knows nothing of yet, and whether size
// more bytes fit the user's quota. It returns AckStored when the message may be stored.
func (s *Service) checkNew(ctx context.Context, user string, size int64) (client.AckStatus, error) {
	ok, err := s.backend.UserExists(ctx, user)
	switch {
	case err != nil:
		// The backend is unreachable (LMTP server down): take the fragment anyway, so that the
		// mail waits here rather than at the sender; delivery will find out about the user.
		s.log.Debug("cannot check the recipient, accepting the fragment", "user", user, "err", err)
	case !ok:
		return client.AckUnknownRecipient, nil
	}
	if size > s.maxUserPending {
		return client.AckOverQuota, nil
	}
	qc, isQC := s.backend.(QuotaChecker)
	if !isQC {
		return client.AckStored, nil
	}
	err = qc.CheckQuota(ctx, user, size)
	switch {
	case err == nil:
	case errors.Is(err, ErrOverQuota):
		return client.AckOverQuota, nil
	case errors.Is(err, ErrUnknownUser):
		return client.AckUnknownRecipient, nil
	default:
		s.log.Debug("cannot check the quota, accepting the fragment", "user", user, "err", err)
	}
	return client.AckStored, nil
}

// evicted is an incomplete message store dropped to make room.
type evicted struct {
	key []byte
	rec msgRecord
}

// store stores fragment f in one committed transaction. refuse, when not AckStored, is the
// outcome to record instead if the message is still new. Room for the fragment is made by
// evicting other incomplete messages (docs/spec/services.md section 4), which it returns.
func (s *Service) store(user string, mk []byte, f *client.Fragment, refuse client.AckStatus) (res storeResult, status client.AckStatus, complete bool, gone []evicted, err error) {
	// A lone fragment commits at once; concurrent ones share a commit (and its fsync). Batch
	// may run the function more than once: every result is set afresh each time.
	commit := s.db.Batch
	if s.storing.Add(1) == 1 {
		commit = s.db.Update
	}
	defer s.storing.Add(-1)
	err = commit(func(tx *bolt.Tx) error {
		res, status, complete, gone = resStored, client.AckStored, false, nil
		now := s.now()
		done, err := getDone(tx, mk)
		if err != nil {
			return err
		}
		if done != nil {
			res, status = resFinished, done.Status
			if done.Status == client.AckStored {
				res = resDuplicate
			}
			return nil
		}
		rec, err := getMsg(tx, mk)
		if err != nil {
			return err
		}
		isNew := rec == nil
		if isNew {
			if refuse != client.AckStored {
				res, status = resFinished, refuse
				d := doneRecord{Status: refuse, At: now}
				return tx.Bucket(bucketDone).Put(mk, d.marshal())
			}
			rec = &msgRecord{Count: f.Count, Total: f.TotalLength, First: now, Last: now}
		}
		if rec.Count != f.Count || rec.Total != f.TotalLength {
			res = resMismatch
			return nil
		}
		fb := tx.Bucket(bucketFrags)
		fk := fragKey(mk, f.Index)
		if fb.Get(fk) != nil {
			res = resDuplicate
			return nil
		}
		size := uint64(len(f.Data))
		completes := rec.Received+1 == rec.Count
		if gone, err = s.makeRoom(tx, mk, size, isNew && !completes, now); err != nil {
			return err
		}

		// Take the message out of the incomplete set, add the fragment, put it back in the
		// set it now belongs to.
		u := getUsage(tx, user)
		if !isNew {
			if err := unindex(tx, mk, rec.Last); err != nil {
				return err
			}
			u.Incomplete -= min(u.Incomplete, uint64(rec.Stored))
			u.Count -= min(u.Count, 1)
		}
		if err := fb.Put(fk, f.Data); err != nil {
			return err
		}
		rec.Received++
		rec.Stored += uint32(size)
		rec.Last = now
		if rec.Received == rec.Count {
			rec.Complete = true
			complete = true
			u.Complete += uint64(rec.Stored)
			if err := tx.Bucket(bucketOutbox).Put(mk, binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))); err != nil {
				return err
			}
		} else {
			u.Incomplete += uint64(rec.Stored)
			u.Count++
			if err := indexIncomplete(tx, mk, now); err != nil {
				return err
			}
		}
		if err := putUsage(tx, user, u); err != nil {
			return err
		}
		if err := addTotal(tx, int64(size)); err != nil {
			return err
		}
		return tx.Bucket(bucketMsgs).Put(mk, rec.marshal())
	})
	if errors.Is(err, errNoRoom) {
		return resFull, client.AckStored, false, nil, nil
	}
	return res, status, complete, gone, err
}

// makeRoom evicts incomplete messages other than mk until size more bytes (and, if newIncomplete,
// one more incomplete message) fit the user's and the service's bounds. An evicted message is
// remembered as over quota, so that its sender's next fragments are answered with that status
// and the sender bounces the mail instead of losing it silently. It returns errNoRoom when
// complete messages alone leave no room.
func (s *Service) makeRoom(tx *bolt.Tx, mk []byte, size uint64, newIncomplete bool, now time.Time) ([]evicted, error) {
	user := userPrefix(mk)
	userName, _, err := splitMsgKey(mk)
	if err != nil {
		return nil, err
	}
	var gone []evicted
	evict := func(prefix []byte) error {
		victim := oldestIncomplete(tx, prefix, mk)
		if victim == nil {
			return errNoRoom
		}
		rec, err := getMsg(tx, victim)
		if err != nil {
			return err
		}
		if rec == nil {
			return fmt.Errorf("%w: eviction index names a missing message %x", errCorrupt, victim)
		}
		if err := dropMessage(tx, victim, rec); err != nil {
			return err
		}
		d := doneRecord{Status: client.AckOverQuota, At: now}
		if err := tx.Bucket(bucketDone).Put(victim, d.marshal()); err != nil {
			return err
		}
		gone = append(gone, evicted{victim, *rec})
		return nil
	}
	for {
		u := getUsage(tx, userName)
		count := u.Count
		if newIncomplete {
			count++
		}
		if int(count) <= s.maxUserIncomplete && u.Incomplete+u.Complete+size <= uint64(s.maxUserPending) {
			break
		}
		if err := evict(user); err != nil {
			return nil, err
		}
	}
	for getTotal(tx)+size > uint64(s.maxPending) {
		if err := evict(nil); err != nil {
			return nil, err
		}
	}
	return gone, nil
}

// ack answers through the SURB, if the request carried one.
func (s *Service) ack(ctx context.Context, reply service.Replier, id client.MessageID, index uint16, status client.AckStatus) error {
	if !reply.CanReply() {
		return nil
	}
	a := client.Ack{ID: id, Index: index, Status: status}
	if err := reply.Reply(ctx, a.Marshal()); err != nil {
		return fmt.Errorf("mailbox: ack %s fragment %d (%s): %w", id, index, status, err)
	}
	return nil
}
