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
	// MaxUserPending bounds the bytes of one user's messages held for delivery; a new message
	// beyond it is refused as over quota. Default 4 * MaxMessageSize.
	MaxUserPending int64
	// MaxPending bounds the bytes of all messages held for delivery; a fragment of a new
	// message beyond it is not stored nor acknowledged, so its sender retries later.
	// Default DefaultMaxPending.
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
	if cfg.Expiry < 0 || cfg.MaxMessageSize < 0 || cfg.MaxUserPending < 0 || cfg.MaxPending < 0 || cfg.RetryMin < 0 || cfg.RetryMax < 0 {
		return nil, errors.New("mailbox: negative expiry, size limit or retry interval")
	}
	s := &Service{
		backend:        cfg.Backend,
		log:            cfg.Logger,
		capacity:       capacity,
		expiry:         cmp(cfg.Expiry, DefaultExpiry),
		maxSize:        min(cmp(cfg.MaxMessageSize, DefaultMaxMessageSize), client.MaxMessageSize(capacity)),
		maxPending:     cmp(cfg.MaxPending, DefaultMaxPending),
		retryMin:       cmp(cfg.RetryMin, DefaultRetryMin),
		retryMax:       cmp(cfg.RetryMax, DefaultRetryMax),
		now:            time.Now,
		wake:           make(chan struct{}, 1),
		maxUserPending: cfg.MaxUserPending,
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
		return nil
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
	var userPending uint64
	err = s.db.View(func(tx *bolt.Tx) error {
		var err error
		if done, err = getDone(tx, mk); err != nil || done != nil {
			return err
		}
		rec, err := getMsg(tx, mk)
		known = rec != nil
		userPending = getPending(tx, pendingKey(user))
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
		status, err := s.checkNew(ctx, user, int64(userPending)+int64(f.TotalLength))
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

	res, status, complete, err := s.store(user, mk, f, refuse)
	if err != nil {
		return fmt.Errorf("mailbox: store fragment: %w", err)
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

// store stores fragment f in one committed transaction. refuse, when not AckStored, is the
// outcome to record instead if the message is still new.
func (s *Service) store(user string, mk []byte, f *client.Fragment, refuse client.AckStatus) (res storeResult, status client.AckStatus, complete bool, err error) {
	// A lone fragment commits at once; concurrent ones share a commit (and its fsync). Batch
	// may run the function more than once: every result is set afresh each time.
	commit := s.db.Batch
	if s.storing.Add(1) == 1 {
		commit = s.db.Update
	}
	defer s.storing.Add(-1)
	err = commit(func(tx *bolt.Tx) error {
		res, status, complete = resStored, client.AckStored, false
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
		if rec == nil {
			if refuse != client.AckStored {
				res, status = resFinished, refuse
				d := doneRecord{Status: refuse, At: now}
				return tx.Bucket(bucketDone).Put(mk, d.marshal())
			}
			if getPending(tx, keyPendingAll)+uint64(f.TotalLength) > uint64(s.maxPending) {
				res = resFull
				return nil
			}
			rec = &msgRecord{Count: f.Count, Total: f.TotalLength, First: now}
			if err := addPending(tx, user, int64(f.TotalLength)); err != nil {
				return err
			}
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
		if err := fb.Put(fk, f.Data); err != nil {
			return err
		}
		rec.Received++
		if rec.Received == rec.Count {
			rec.Complete = true
			complete = true
			if err := tx.Bucket(bucketOutbox).Put(mk, binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMsgs).Put(mk, rec.marshal())
	})
	return res, status, complete, err
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
