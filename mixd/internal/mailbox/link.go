package mailbox

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/panoramix-mixnet/panoramix/mixd/internal/provider"
	"github.com/panoramix-mixnet/panoramix/pkg/sealmail"
)

// LinkConfig configures a LinkBackend.
type LinkConfig struct {
	// Store is the provider's user database, which holds the users' mail queues.
	Store *provider.Store
	// ChunkSize is the most bytes of one chunk: the wire frame's body limit, the geometry's
	// packet size (docs/spec/wire.md section 2), so that a chunk fills one mail frame.
	ChunkSize int
	// Expiry is how long a mail's id is remembered in the user's mail queue after it was
	// queued, so that a delivery repeated after a crash is queued once: the mailbox service's
	// own expiry. Default DefaultExpiry.
	Expiry time.Duration
	// Next delivers the mail of every user whose client does not read it through the link.
	Next Backend
}

// LinkBackend holds the mail of users whose client reads it through its link (docs/spec/
// services.md section 6): sealed to the user's link key, cut into chunks and put in the user's
// mail queue at the provider, which the client fetches with retrieve-mail frames. The mail of
// every other user goes to the next backend as it would without this one.
//
// It implements OnceBackend and QuotaChecker whatever the next backend does, so that the
// service's exactly-once delivery and its quota check before the first fragment hold for users
// who read through the link.
type LinkBackend struct {
	store     *provider.Store
	chunkSize int
	expiry    time.Duration
	next      Backend
}

// NewLinkBackend validates cfg.
func NewLinkBackend(cfg LinkConfig) (*LinkBackend, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("mailbox: link backend without a provider store")
	case cfg.Next == nil:
		return nil, errors.New("mailbox: link backend without a backend for the other users")
	case sealmail.Capacity(cfg.ChunkSize) < 1:
		return nil, fmt.Errorf("mailbox: chunk size %d leaves no room for sealed mail", cfg.ChunkSize)
	case cfg.Expiry < 0:
		return nil, fmt.Errorf("mailbox: negative expiry %v", cfg.Expiry)
	}
	return &LinkBackend{store: cfg.Store, chunkSize: cfg.ChunkSize, expiry: cmp(cfg.Expiry, DefaultExpiry), next: cfg.Next}, nil
}

// viaLink returns the user when its client reads mail through the link, nil otherwise (a user
// the provider does not know is the next backend's to judge).
func (b *LinkBackend) viaLink(ctx context.Context, user string) (*provider.User, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	u, err := b.store.User(user)
	switch {
	case errors.Is(err, provider.ErrUnknownUser):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("mailbox: look up user: %w", err)
	case !u.ReadsViaLink:
		return nil, nil
	}
	return u, nil
}

// Deliver queues msg for a link user under a random id (no delivery key: nothing to recognise
// a repeat by), or hands it to the next backend. The service calls DeliverOnce instead.
func (b *LinkBackend) Deliver(ctx context.Context, user string, msg []byte) error {
	u, err := b.viaLink(ctx, user)
	if err != nil {
		return err
	}
	if u == nil {
		return b.next.Deliver(ctx, user, msg)
	}
	var id sealmail.ID
	if _, err := rand.Read(id[:]); err != nil {
		return err
	}
	return b.enqueue(u, id, msg)
}

// DeliverOnce queues msg for a link user under the delivery key (the sender's message id),
// once, or hands it to the next backend: to its DeliverOnce when it has one.
func (b *LinkBackend) DeliverOnce(ctx context.Context, user string, key, msg []byte) error {
	u, err := b.viaLink(ctx, user)
	if err != nil {
		return err
	}
	if u == nil {
		if ob, ok := b.next.(OnceBackend); ok {
			return ob.DeliverOnce(ctx, user, key, msg)
		}
		return b.next.Deliver(ctx, user, msg)
	}
	var id sealmail.ID
	if len(key) != len(id) {
		return fmt.Errorf("mailbox: delivery key of %d bytes, want %d", len(key), len(id))
	}
	copy(id[:], key)
	return b.enqueue(u, id, msg)
}

// enqueue seals msg to u's link key and queues its chunks (services.md section 6.2 and 6.3).
func (b *LinkBackend) enqueue(u *provider.User, id sealmail.ID, msg []byte) error {
	sealed, err := sealmail.Seal(u.LinkKey, id, msg)
	if err != nil {
		return fmt.Errorf("mailbox: %w", err)
	}
	chunks, err := sealmail.Split(id, sealed, b.chunkSize)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	}
	err = b.store.EnqueueMail(u.Name, id, chunks, b.expiry)
	switch {
	case errors.Is(err, provider.ErrOverQuota):
		return fmt.Errorf("%w: %w", ErrOverQuota, err)
	case errors.Is(err, provider.ErrUnknownUser):
		return fmt.Errorf("%w: %w", ErrUnknownUser, err)
	case err != nil:
		return fmt.Errorf("mailbox: mail queue: %w", err)
	}
	return nil
}

// UserExists is true for a link user (the provider has it), else the next backend's answer.
func (b *LinkBackend) UserExists(ctx context.Context, user string) (bool, error) {
	u, err := b.viaLink(ctx, user)
	if err != nil {
		return false, err
	}
	if u != nil {
		return true, nil
	}
	return b.next.UserExists(ctx, user)
}

// CheckQuota checks, for a link user, that a mail of size bytes, sealed and cut into chunks,
// fits the user's quota beside the mail waiting for the client; for any other user it asks the
// next backend when that can tell.
func (b *LinkBackend) CheckQuota(ctx context.Context, user string, size int64) error {
	u, err := b.viaLink(ctx, user)
	if err != nil {
		return err
	}
	if u == nil {
		if qc, ok := b.next.(QuotaChecker); ok {
			return qc.CheckQuota(ctx, user, size)
		}
		return nil
	}
	if u.QuotaBytes <= 0 {
		return nil
	}
	used, err := b.store.MailBytes(user)
	if err != nil {
		return fmt.Errorf("mailbox: mail queue: %w", err)
	}
	if need := ChunkedSize(size, b.chunkSize); used+need > u.QuotaBytes {
		return fmt.Errorf("%w: %q has %d bytes of mail waiting for the client and a quota of %d, %d more do not fit", ErrOverQuota, user, used, u.QuotaBytes, need)
	}
	return nil
}

// ChunkedSize is the bytes a mail of size bytes takes in the mail queue: sealed, then cut
// into chunks of at most chunkSize bytes, each with its header.
func ChunkedSize(size int64, chunkSize int) int64 {
	sealed := size + sealmail.Overhead
	c := int64(sealmail.Capacity(chunkSize))
	return sealed + (sealed+c-1)/c*sealmail.HeaderSize
}
