package mailbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
)

// Permanent delivery failures. A backend wraps one of them when retrying cannot help; the
// service then gives up on the message and answers retransmissions with the matching ack status.
// Any other error is temporary: the message stays in the outbox and is retried.
var (
	ErrUnknownUser = errors.New("mailbox: unknown user")
	ErrOverQuota   = errors.New("mailbox: over quota")
	// ErrTooLarge: the backend refuses the message for its size.
	ErrTooLarge = errors.New("mailbox: message too large for the backend")
	// ErrRejected: the backend refused the message permanently for another reason (an LMTP 5xx
	// that is neither about the user, the quota nor the size).
	ErrRejected = errors.New("mailbox: message refused by the backend")
)

// Backend delivers complete messages into users' mailboxes.
type Backend interface {
	// Deliver stores one complete message for user durably before returning nil.
	Deliver(ctx context.Context, user string, msg []byte) error
	// UserExists says whether the user has a mailbox here.
	UserExists(ctx context.Context, user string) (bool, error)
}

// QuotaChecker is implemented by a backend that can tell, before any fragment of a message is
// stored, that the message will not fit the user's quota. The service calls it for the first
// fragment of each message with size = the message's length plus the bytes of the user's
// messages it holds but has not delivered yet.
type QuotaChecker interface {
	// CheckQuota returns an error wrapping ErrOverQuota when size more bytes do not fit.
	CheckQuota(ctx context.Context, user string, size int64) error
}

// storeBackend delivers into the INBOX of the embedded mail store.
type storeBackend struct{ s *mailstore.Store }

// NewStoreBackend returns a Backend that delivers into the user's INBOX in s. The store's own
// commit fsyncs, so Deliver returns only when the message is durable.
func NewStoreBackend(s *mailstore.Store) Backend { return &storeBackend{s: s} }

// OnceBackend is a Backend that can record a delivery key in the same commit as the message,
// so that the service can deliver exactly once even if it crashes after the backend accepted
// the message and before it recorded that (the store backend; LMTP cannot).
type OnceBackend interface {
	Backend
	DeliverOnce(ctx context.Context, user string, key, msg []byte) error
}

// DeliverOnce delivers into INBOX unless a message with this key was delivered before.
func (b *storeBackend) DeliverOnce(ctx context.Context, user string, key, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, _, err := b.s.DeliverOnce(user, mailstore.Inbox, key, msg); err != nil {
		return storeError(err)
	}
	return nil
}

func (b *storeBackend) Deliver(ctx context.Context, user string, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := b.s.Deliver(user, mailstore.Inbox, msg, nil, time.Time{}); err != nil {
		return storeError(err)
	}
	return nil
}

func (b *storeBackend) UserExists(ctx context.Context, user string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	_, err := b.s.User(user)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, mailstore.ErrNoSuchUser), errors.Is(err, mailstore.ErrInvalidName):
		return false, nil
	}
	return false, fmt.Errorf("mailbox: look up user: %w", err)
}

func (b *storeBackend) CheckQuota(ctx context.Context, user string, size int64) error {
	info, err := b.s.User(user)
	if err != nil {
		return storeError(err)
	}
	if info.Quota > 0 && info.Used+size > info.Quota {
		return fmt.Errorf("%w: %q uses %d of %d bytes, %d more do not fit", ErrOverQuota, user, info.Used, info.Quota, size)
	}
	return nil
}

// storeError maps the mail store's errors to the permanent failures of this package.
func storeError(err error) error {
	switch {
	case errors.Is(err, mailstore.ErrNoSuchUser), errors.Is(err, mailstore.ErrInvalidName), errors.Is(err, mailstore.ErrNoSuchMailbox):
		return fmt.Errorf("%w: %w", ErrUnknownUser, err)
	case errors.Is(err, mailstore.ErrOverQuota):
		return fmt.Errorf("%w: %w", ErrOverQuota, err)
	case errors.Is(err, mailstore.ErrTooLarge):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	return fmt.Errorf("mailbox: store: %w", err)
}
