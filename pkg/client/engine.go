package client

import (
	"context"
	crand "crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/sealmail"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/wire"
)

// Defaults of Config (docs/spec/client.md).
const (
	DefaultService          = "mailbox"
	DefaultRetryBudget      = 8
	DefaultAckSlack         = 30 * time.Second
	DefaultRetrieveInterval = 250 * time.Millisecond
	// DefaultRetrieveBatch is the answers one retrieve exchange asks for: one, as before wire
	// version 2, so that a client's downstream traffic stays what it was unless configured.
	DefaultRetrieveBatch  = 1
	DefaultMaxPartial     = 64
	DefaultPartialTimeout = 7 * 24 * time.Hour
	DefaultMaxReceiveSize = 16 << 20
	DefaultMaxInbox       = 64
	// DefaultQueueLifetime is how long a message waits for its domain's provider to come back
	// into the consensus, like Postfix's maximal_queue_lifetime.
	DefaultQueueLifetime = 5 * 24 * time.Hour
	// DefaultMaxMailSize is the longest mail fetched through the link: the mailbox service's
	// own limit (mixd's mailbox.DefaultMaxMessageSize).
	DefaultMaxMailSize = 32 << 20
	// MaxRetryWait caps the slack of a transmission past the retry budget (RetryFor,
	// docs/spec/client.md section 4): a provider back from an outage gets its mail within
	// about an hour, and a fragment is sent about 24 times a day while it is away.
	MaxRetryWait = time.Hour

	// Built-in provider services the engine uses for cover traffic (docs/spec/services.md).
	queueService = "queue"
	dropService  = "drop"
	loopService  = "loop"
	// coverRecipient is the recipient id of loop and drop packets; those services ignore it.
	coverRecipient = "cover"
	// loopNonceSize is the random data a loop carries, which the echo must return.
	loopNonceSize = 16

	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
	// retrieveTimeout bounds one retrieve exchange; a provider that does not answer in that
	// time has a dead link.
	retrieveTimeout = 30 * time.Second
	writeTimeout    = 10 * time.Second
	// pruneInterval is how often old SURB keys and partial messages are looked for (a write
	// transaction, so not at every send).
	pruneInterval = 30 * time.Second
)

// Errors callers can act on.
var (
	ErrUnknownMessage = errors.New("client: unknown message")
	ErrUnknownDomain  = errors.New("client: no provider serves the domain")
	ErrNoService      = errors.New("client: the provider does not offer the service")
	ErrTooLarge       = errors.New("client: message too large")
	ErrRunning        = errors.New("client: engine is running")
	ErrNotFinished    = errors.New("client: message not finished")
	// ErrDomainAway: no provider serves the domain in the current consensus, but one did within
	// the queue lifetime; the provider is probably down for a while. A temporary failure.
	ErrDomainAway = errors.New("client: no provider serves the domain now, but one did recently")
)

// Config configures an Engine.
type Config struct {
	// DataDir holds the engine's store (created if needed, 0700).
	DataDir string
	// User is the user's name at its provider: its queue, where ACKs, loop echoes and
	// messages for the user arrive.
	User string
	// Domain is the mail domain of the user's provider, looked up in the consensus.
	Domain string
	// LinkKey is the user's link key, which the provider knows from its user database. The
	// caller owns it and wipes it after Close.
	LinkKey *keys.LinkPrivateKey
	// PKI fetches and verifies consensus documents. The caller runs its Run method, so that
	// the next epoch's document is there before it is needed.
	PKI *pki.Client
	// Transport defaults to TCP.
	Transport wire.Transport
	// Logger defaults to discarding.
	Logger *slog.Logger
	// RetryBudget is how many times a fragment is transmitted before its message fails;
	// DefaultRetryBudget when 0.
	RetryBudget int
	// RetryFor, when positive, keeps retransmitting a fragment past RetryBudget, with
	// exponential backoff (retrySlack), until its message is older than RetryFor (counted from
	// Send); only then does the message fail. 0: the message fails after RetryBudget
	// transmissions, for callers that need to learn of a failure quickly (votes, surveys). A
	// mail program sets its queue lifetime, so that mail to a provider down for a while but
	// still in the consensus is delayed, not bounced (docs/spec/client.md section 4).
	RetryFor time.Duration
	// AckSlack is added to a fragment's expected round trip (the delays of its route and of
	// its SURB's route, plus one retrieve interval) before it is retransmitted;
	// DefaultAckSlack when 0.
	AckSlack time.Duration
	// RetrieveInterval is the fixed interval between retrieve exchanges;
	// DefaultRetrieveInterval when 0. Its rate must exceed lambda_P + lambda_L, the rate at
	// which ACKs and loop echoes can arrive, or the queue at the provider grows.
	RetrieveInterval time.Duration
	// RetrieveBatch is the count of answer frames each retrieve exchange asks for, 1 to
	// wire.MaxRetrieveBatch (docs/spec/client.md section 6); DefaultRetrieveBatch when 0. The
	// provider always sends that many frames, so the link carries RetrieveBatch frames down
	// per RetrieveInterval whatever waits: the bandwidth is the price of the batch.
	RetrieveBatch int
	// MaxPartial bounds the incoming messages being reassembled at once; DefaultMaxPartial
	// when 0.
	MaxPartial int
	// PartialTimeout is how long an incomplete incoming message is kept;
	// DefaultPartialTimeout when 0.
	PartialTimeout time.Duration
	// MaxReceiveSize bounds the length of an incoming message; fragments of longer messages
	// are dropped. DefaultMaxReceiveSize when 0.
	MaxReceiveSize int
	// Receive says that the program consumes messages sent to the user's queue service, with
	// Received and DeleteReceived. Without it (mailproxy, whose mail arrives by IMAP), such
	// messages are acknowledged to the provider and discarded at once: anyone can send them,
	// and nobody would ever delete them from the store (docs/spec/client.md section 7).
	Receive bool
	// MaxInbox bounds the received messages kept until DeleteReceived, together with those in
	// reassembly: fragments of further messages are dropped. DefaultMaxInbox when 0.
	MaxInbox int
	// QueueLifetime is how long a queued message waits while no provider serves its domain
	// (counted from Send), and how long a domain counts as recently in the mixnet after the
	// last consensus document that listed it; DefaultQueueLifetime when 0.
	QueueLifetime time.Duration
	// ReadMail, when set, makes the engine fetch the mail its provider holds for the user
	// through the link (retrieve-mail exchanges, docs/spec/client.md section 7.1) and hand each
	// complete, opened mail to it. The mail's chunks are deleted from the engine's store only
	// when ReadMail returns nil, so ReadMail must have stored msg durably by then; a failing
	// ReadMail is called again later with the same mail. The same id may come again after a
	// crash: ReadMail must store a mail once per id. nil: the engine never sends
	// retrieve-mail, and the provider keeps delivering the user's mail to its IMAP store.
	ReadMail func(ctx context.Context, id sealmail.ID, msg []byte) error
	// MaxMailSize bounds a mail fetched through the link (before sealing);
	// DefaultMaxMailSize when 0.
	MaxMailSize int
}

func (c *Config) setDefaults() {
	if c.Transport == nil {
		c.Transport = wire.TCP
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.RetryBudget == 0 {
		c.RetryBudget = DefaultRetryBudget
	}
	if c.AckSlack == 0 {
		c.AckSlack = DefaultAckSlack
	}
	if c.RetrieveInterval == 0 {
		c.RetrieveInterval = DefaultRetrieveInterval
	}
	if c.RetrieveBatch == 0 {
		c.RetrieveBatch = DefaultRetrieveBatch
	}
	if c.MaxPartial == 0 {
		c.MaxPartial = DefaultMaxPartial
	}
	if c.PartialTimeout == 0 {
		c.PartialTimeout = DefaultPartialTimeout
	}
	if c.MaxReceiveSize == 0 {
		c.MaxReceiveSize = DefaultMaxReceiveSize
	}
	if c.MaxInbox == 0 {
		c.MaxInbox = DefaultMaxInbox
	}
	if c.QueueLifetime == 0 {
		c.QueueLifetime = DefaultQueueLifetime
	}
	if c.MaxMailSize == 0 {
		c.MaxMailSize = DefaultMaxMailSize
	}
}

// LinkState describes the link to the provider and counts the engine's traffic.
type LinkState struct {
	Connected bool
	// Provider is the identity of the user's provider; Addr the address of the link.
	Provider keys.IdentityPublicKey
	Addr     string
	// Since is when the link came up (or went down).
	Since time.Time
	// Epoch is the consensus epoch in use.
	Epoch pki.Epoch
	// LastError is why the last link attempt or link ended.
	LastError string

	// Packets sent, by kind: real fragments (RealPackets), drop cover from the lambda_P
	// stream when nothing was due (SendDrops) and from the lambda_D stream (Drops), loops.
	RealPackets, SendDrops, Drops, Loops uint64
	// LoopsReturned counts loop echoes that came back intact; LoopsLost those that did not
	// come back in time (they are a health signal for the route).
	LoopsReturned, LoopsLost uint64
	// Acks counts SURB replies applied to fragments; BadReplies replies that were not a valid
	// ack for their fragment; UnknownReplies replies for no SURB the engine knows.
	Acks, BadReplies, UnknownReplies uint64
	// Messages counts queue items received (fragments addressed to the user).
	Messages uint64
	// Retrieves counts retrieve exchanges; Links counts links established.
	Retrieves, Links uint64
	// MailRetrieves counts the retrieve exchanges that asked the mail queue (they are among
	// Retrieves); MailChunks the chunks of mail stored; LastMailChunk is when the last one
	// arrived.
	MailRetrieves, MailChunks uint64
	LastMailChunk             time.Time
	// MailReceived counts mails handed to ReadMail and taken; MailBad chunks and mails that
	// were dropped because they were malformed, broke the order of their mail, or did not open
	// with the user's key (only a broken or hostile provider sends those).
	MailReceived, MailBad uint64
}

type loopRecord struct {
	keys     []byte
	nonce    [loopNonceSize]byte
	deadline time.Time
}

// Engine is the client engine (docs/spec/client.md). Create it with New, start it with Run,
// queue messages with Send at any time (Run need not be running), and Close it after Run has
// returned.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	st      *store
	running atomic.Bool
	// notedEpoch is the epoch whose providers' domains noteDomains stored last.
	notedEpoch atomic.Uint64

	rngMu sync.Mutex
	rng   *rand.Rand

	mu    sync.Mutex
	link  LinkState
	loops map[[sphinx.SURBIDSize]byte]*loopRecord

	// mailReady wakes the mail loop when a mail is complete.
	mailReady chan struct{}
}

// newRand returns a ChaCha8 generator seeded from the system's random source: it picks routes,
// delays and send times, which must be unpredictable to an observer.
func newRand() *rand.Rand {
	var seed [32]byte
	crand.Read(seed[:])
	return rand.New(rand.NewChaCha8(seed))
}

// New checks cfg and opens (or creates) the store in cfg.DataDir. Messages queued before a
// crash or a Close are resumed when Run starts.
func New(cfg Config) (*Engine, error) {
	cfg.setDefaults()
	switch {
	case cfg.DataDir == "":
		return nil, errors.New("client: no data directory")
	case cfg.LinkKey == nil:
		return nil, errors.New("client: no link key")
	case cfg.PKI == nil:
		return nil, errors.New("client: no consensus client")
	case cfg.Domain == "":
		return nil, errors.New("client: no provider domain")
	case cfg.RetryBudget < 1:
		return nil, fmt.Errorf("client: retry budget %d: want at least 1", cfg.RetryBudget)
	case cfg.AckSlack < 0 || cfg.RetryFor < 0 || cfg.RetrieveInterval < 0 || cfg.MaxPartial < 0 || cfg.PartialTimeout < 0 || cfg.MaxReceiveSize < 0 || cfg.MaxInbox < 0 || cfg.MaxMailSize < 0:
		return nil, errors.New("client: negative duration or limit in config")
	case cfg.RetrieveBatch < 1 || cfg.RetrieveBatch > wire.MaxRetrieveBatch:
		return nil, fmt.Errorf("client: retrieve batch %d: want 1 to %d answers per retrieve exchange", cfg.RetrieveBatch, wire.MaxRetrieveBatch)
	}
	if err := (sphinx.Recipient{Service: queueService, ID: cfg.User}).Validate(); err != nil {
		return nil, fmt.Errorf("client: user %q: %w", cfg.User, err)
	}
	st, err := openStore(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	return &Engine{cfg: cfg, log: cfg.Logger, st: st, rng: newRand(), loops: map[[sphinx.SURBIDSize]byte]*loopRecord{},
		mailReady: make(chan struct{}, 1)}, nil
}

// Close closes the store. Run must have returned (cancel its context and wait).
func (e *Engine) Close() error {
	if e.running.Load() {
		return ErrRunning
	}
	e.mu.Lock()
	for id, l := range e.loops {
		wipe(l.keys)
		delete(e.loops, id)
	}
	e.mu.Unlock()
	return e.st.close()
}

func noAck(svc string) bool { return svc == queueService || svc == dropService }

// Send fragments data for dst, queues the message durably (committed and fsync'd) and returns
// its id. The fragments leave one per lambda_P slot while Run runs. dst.Domain must be served by
// a provider in the current consensus that offers dst.Service.
func (e *Engine) Send(ctx context.Context, dst Destination, data []byte) (MessageID, error) {
	id, _, err := e.SendOnce(ctx, dst, data, nil)
	return id, err
}

// MaxIdempotencyKey bounds SendOnce's key (a caller's hash or identifier, not data).
const MaxIdempotencyKey = 256

// SendOnce is Send with an idempotency key (empty: none). The key is committed in the transaction
// that queues the message, so a caller that lost Send's answer (killed before it could act on
// it) and calls again with the same key gets the id of the message already queued, existed set,
// and nothing new is stored, whatever data and dst hold this time. A key is remembered as long
// as its message's status (until Forget). docs/spec/client.md section 1.
func (e *Engine) SendOnce(ctx context.Context, dst Destination, data, key []byte) (id MessageID, existed bool, err error) {
	if len(key) > MaxIdempotencyKey {
		return id, false, fmt.Errorf("client: idempotency key of %d bytes, at most %d", len(key), MaxIdempotencyKey)
	}
	if len(key) == 0 {
		key = nil // bbolt takes no empty key
	} else {
		if id, ok, err := e.st.idempotent(key); err != nil || ok {
			if err != nil {
				err = fmt.Errorf("client: idempotency key: %w", err)
			}
			return id, ok, err
		}
	}
	if dst.Service == "" {
		dst.Service = DefaultService
	}
	if err := (sphinx.Recipient{Service: dst.Service, ID: dst.Recipient}).Validate(); err != nil {
		return id, false, fmt.Errorf("client: destination: %w", err)
	}
	if dst.Domain == "" || strings.ToLower(dst.Domain) != dst.Domain {
		return id, false, fmt.Errorf("client: destination domain %q: want a lowercase domain", dst.Domain)
	}
	doc, err := e.cfg.PKI.Current(ctx)
	if err != nil {
		return id, false, fmt.Errorf("client: consensus: %w", err)
	}
	e.noteDomains(doc)
	p, ok := doc.Provider(dst.Domain)
	if !ok {
		if last, seen, err := e.DomainSeen(dst.Domain); err == nil && seen {
			return id, false, fmt.Errorf("%w: %s (epoch %d; last listed %s)", ErrDomainAway, dst.Domain, doc.Epoch, last.UTC().Format(time.RFC3339))
		}
		return id, false, fmt.Errorf("%w: %s (epoch %d)", ErrUnknownDomain, dst.Domain, doc.Epoch)
	}
	if !slices.Contains(p.Services, dst.Service) {
		return id, false, fmt.Errorf("%w: %s does not offer %q", ErrNoService, dst.Domain, dst.Service)
	}
	capacity := FragmentCapacity(doc.Parameters.Geometry)
	if len(data) > MaxMessageSize(capacity) {
		return id, false, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(data), MaxMessageSize(capacity))
	}
	crand.Read(id[:])
	frags, err := Split(id, data, capacity)
	if err != nil {
		return id, false, fmt.Errorf("client: %w", err)
	}
	enc := make([][]byte, len(frags))
	for i, f := range frags {
		enc[i] = f.Marshal()
	}
	now := time.Now()
	st := &Status{ID: id, Destination: dst, State: StateQueued, Size: len(data), Fragments: len(frags),
		Created: now, Updated: now, NeedsAck: !noAck(dst.Service) && !dst.NoReply, IdempotencyKey: key}
	existing, existed, err := e.st.addMessage(st, enc)
	if err != nil {
		return id, false, fmt.Errorf("client: queue message: %w", err)
	}
	if existed {
		// A concurrent call with the same key committed first.
		return existing, true, nil
	}
	e.log.Debug("message queued", "id", id, "fragments", len(frags), "domain", dst.Domain, "service", dst.Service)
	return id, false, nil
}

// noteDomains remembers, durably, that doc's providers serve their domains at doc's epoch, so
// that a domain whose provider is away for a while still counts as in the mixnet (DomainSeen).
// One write per epoch.
func (e *Engine) noteDomains(doc *pki.Document) {
	if e.notedEpoch.Load() == uint64(doc.Epoch) {
		return
	}
	var domains []string
	for _, n := range doc.Nodes {
		if n.Role != pki.RoleProvider {
			continue
		}
		for _, d := range n.Domains {
			if _, ok := doc.Provider(d); ok {
				domains = append(domains, d)
			}
		}
	}
	if err := e.st.noteDomains(domains, time.Now(), e.cfg.QueueLifetime); err != nil {
		e.log.Error("remembering the consensus's domains", "err", err)
		return
	}
	e.notedEpoch.Store(uint64(doc.Epoch))
}

// DomainSeen reports when a consensus document seen by this engine last listed a provider
// serving domain, and whether that was within the queue lifetime (the domain is then recently
// in the mixnet: its mail is a temporary failure, not a permanent one).
func (e *Engine) DomainSeen(domain string) (last time.Time, recent bool, err error) {
	last, ok, err := e.st.domainSeen(domain)
	if err != nil || !ok {
		return last, false, err
	}
	return last, time.Since(last) <= e.cfg.QueueLifetime, nil
}

// Status returns the delivery status of a message.
func (e *Engine) Status(id MessageID) (Status, error) {
	st, err := e.st.status(id)
	if err != nil {
		return Status{}, err
	}
	return *st, nil
}

// List returns the status of every message, in queue order.
func (e *Engine) List() ([]Status, error) { return e.st.list() }

// Forget deletes the status record of a finished (delivered, sent or failed) message, once the
// caller has told the user; records are kept until then.
func (e *Engine) Forget(id MessageID) error { return e.st.forget(id) }

// Received returns the messages reassembled from the user's queue, oldest first. They stay
// until DeleteReceived.
func (e *Engine) Received() ([]Received, error) { return e.st.inbox() }

// DeleteReceived forgets a received message (by its Seq) once the caller has it safe.
func (e *Engine) DeleteReceived(seq uint64) error { return e.st.deleteReceived(seq) }

// LinkState returns the link's state and the traffic counters.
func (e *Engine) LinkState() LinkState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.link
}

func (e *Engine) count(f func(*LinkState)) {
	e.mu.Lock()
	f(&e.link)
	e.mu.Unlock()
}

// Run keeps a link to the user's provider up and runs the send scheduler and the retrieve
// exchanges over it until ctx is cancelled; then it returns nil. Link failures are retried
// with capped, jittered exponential backoff.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer e.running.Store(false)
	if e.cfg.ReadMail != nil {
		mctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); e.mailLoop(mctx) }()
		defer func() { cancel(); <-done }()
	}
	backoff := minBackoff
	for {
		start := time.Now()
		err := e.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = errors.New("link ended")
		}
		e.count(func(l *LinkState) { l.Connected, l.Since, l.LastError = false, time.Now(), err.Error() })
		e.log.Warn("link to provider ended", "err", err)
		if time.Since(start) > maxBackoff {
			backoff = minBackoff
		}
		wait := backoff/2 + time.Duration(e.randInt64(int64(backoff/2)+1))
		backoff = min(2*backoff, maxBackoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (e *Engine) randInt64(n int64) int64 {
	e.rngMu.Lock()
	defer e.rngMu.Unlock()
	return e.rng.Int64N(n)
}

// view is what one link session works with: a consensus document and the objects derived
// from it.
type view struct {
	doc  *pki.Document
	sph  *sphinx.Sphinx
	self *pki.Node // the user's provider
}

func (e *Engine) newView(ctx context.Context) (*view, error) {
	doc, err := e.cfg.PKI.Current(ctx)
	if err != nil {
		return nil, fmt.Errorf("consensus: %w", err)
	}
	e.noteDomains(doc)
	self, ok := doc.Provider(e.cfg.Domain)
	if !ok {
		return nil, fmt.Errorf("%w: %s (epoch %d)", ErrUnknownDomain, e.cfg.Domain, doc.Epoch)
	}
	sph, err := sphinx.New(doc.Parameters.Geometry)
	if err != nil {
		return nil, fmt.Errorf("consensus geometry: %w", err)
	}
	return &view{doc: doc, sph: sph, self: self}, nil
}

var errRelink = errors.New("provider or geometry changed in the consensus")

func (e *Engine) session(ctx context.Context) error {
	v, err := e.newView(ctx)
	if err != nil {
		return err
	}
	if len(v.self.Addresses) == 0 {
		return fmt.Errorf("provider %s has no address", v.self.Identity)
	}
	conn, err := wire.Dial(ctx, wire.DialConfig{Geometry: v.doc.Parameters.Geometry, Key: e.cfg.LinkKey,
		Remote: v.self.Link, Addr: v.self.Addresses[0], Transport: e.cfg.Transport})
	if err != nil {
		return fmt.Errorf("dial provider: %w", err)
	}
	defer conn.Close()
	e.count(func(l *LinkState) {
		l.Connected, l.Provider, l.Addr, l.Since, l.Epoch, l.LastError = true, v.self.Identity, v.self.Addresses[0], time.Now(), v.doc.Epoch, ""
		l.Links++
	})
	e.log.Info("link to provider up", "provider", v.self.Identity, "addr", v.self.Addresses[0])

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	go func() { errc <- e.retrieveLoop(sctx, conn, v.sph) }()
	go func() { errc <- e.sendLoop(sctx, conn, v) }()
	err = <-errc
	cancel()
	if ctx.Err() != nil {
		conn.SetWriteDeadline(time.Now().Add(time.Second))
		conn.WriteFrame(&wire.Frame{Cmd: wire.CmdDisconnect})
	}
	conn.Close()
	<-errc
	return err
}

func rates(p pki.Parameters) [nStreams]float64 {
	return [nStreams]float64{streamSend: p.LambdaP, streamLoop: p.LambdaL, streamDrop: p.LambdaD}
}

// sendLoop runs the send schedule (docs/spec/client.md section 3): at every slot it writes
// exactly one packet, so the link shows one frame every 1/(lambda_P + lambda_L + lambda_D)
// seconds whatever the user does.
func (e *Engine) sendLoop(ctx context.Context, conn *wire.Conn, v *view) error {
	sched := newScheduler(newRand(), rates(v.doc.Parameters), time.Now())
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	e.maintain(time.Now(), v, true)
	lastMaintain, lastPrune := time.Now(), time.Now()
	var lastWarn time.Time
	warn := func(msg string, args ...any) {
		// At most one warning a second: a missing consensus would otherwise log at every event.
		if time.Since(lastWarn) > time.Second {
			lastWarn = time.Now()
			e.log.Warn(msg, args...)
		}
	}
	for {
		now := time.Now()
		kind, at := sched.pop(now)
		if doc, err := e.cfg.PKI.Current(ctx); err != nil {
			warn("no consensus for the current epoch; using the last one", "epoch", v.doc.Epoch, "err", err)
		} else if doc.Epoch != v.doc.Epoch {
			nv, err := e.newView(ctx)
			if err != nil {
				return err
			}
			if nv.self.Identity != v.self.Identity || nv.self.Link != v.self.Link ||
				nv.doc.Parameters.Geometry != v.doc.Parameters.Geometry || !slices.Equal(nv.self.Addresses, v.self.Addresses) {
				return errRelink
			}
			if !nv.doc.Parameters.Equal(v.doc.Parameters) {
				sched.setRates(rates(nv.doc.Parameters), now)
			}
			v = nv
			e.count(func(l *LinkState) { l.Epoch = v.doc.Epoch })
		}
		if now.Sub(lastMaintain) > time.Second {
			prune := now.Sub(lastPrune) > pruneInterval
			e.maintain(now, v, prune)
			lastMaintain = now
			if prune {
				lastPrune = now
			}
		}
		// The packet is built before its slot, so that the moment it leaves does not depend on
		// what it is (a real fragment costs an fsync more than cover).
		var pkt []byte
		var real bool
		var err error
		switch kind {
		case streamSend:
			pkt, real, err = e.realOrDrop(v, at)
		case streamLoop:
			pkt, err = e.loopPacket(v, at)
		case streamDrop:
			pkt, err = e.dropPacket(v)
		}
		timer.Reset(time.Until(at))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if err != nil {
			// Only a consensus without a usable route gets here; nothing can be sent.
			warn("cannot build a packet", "stream", kind, "err", err)
			continue
		}
		conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err := conn.WriteFrame(&wire.Frame{Cmd: wire.CmdSendPacket, Body: pkt}); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		traceSend(e.cfg.User, pkt, kind, real)
		e.count(func(l *LinkState) {
			switch {
			case kind == streamLoop:
				l.Loops++
			case kind == streamDrop:
				l.Drops++
			case real:
				l.RealPackets++
			default:
				l.SendDrops++
			}
		})
	}
}

// maintain expires loops that did not come back and, with prune, prunes the store.
func (e *Engine) maintain(now time.Time, v *view, prune bool) {
	e.mu.Lock()
	for id, l := range e.loops {
		if now.After(l.deadline) {
			wipe(l.keys)
			delete(e.loops, id)
			e.link.LoopsLost++
		}
	}
	e.mu.Unlock()
	if !prune {
		return
	}
	// Reply keys outlive the epoch keys of their route by at most the grace period; three
	// epochs is past both.
	cutoff := now.Add(-3 * v.doc.Parameters.EpochLength)
	surbs, partial, err := e.st.prune(cutoff, now.Add(-e.cfg.PartialTimeout))
	if err != nil {
		e.log.Error("prune store", "err", err)
	} else if surbs+partial > 0 {
		e.log.Debug("pruned store", "surbs", surbs, "partial_messages", partial)
	}
}

// realOrDrop builds the lambda_P stream's packet for the slot at: the next fragment due, else
// a drop packet. real says which.
func (e *Engine) realOrDrop(v *view, at time.Time) (pkt []byte, real bool, err error) {
	// A message whose domain no provider serves in this epoch waits (within its queue
	// lifetime) and does not hold up the messages behind it.
	away := func(st *Status) bool {
		_, ok := v.doc.Provider(st.Destination.Domain)
		return !ok && at.Sub(st.Created) <= e.cfg.QueueLifetime
	}
	d, expired, err := e.st.nextDue(at, e.cfg.RetryBudget, e.cfg.RetryFor, away)
	if err != nil {
		e.log.Error("send queue", "err", err)
	}
	for id, reason := range expired {
		if err := e.st.failMessage(id, reason, at); err != nil {
			e.log.Error("fail message", "id", id, "err", err)
		} else {
			e.log.Info("message failed", "id", id, "reason", reason)
		}
	}
	if d != nil {
		pkt, err := e.realPacket(v, d, at)
		if err == nil {
			return pkt, true, nil
		}
		e.log.Error("cannot send fragment", "id", d.msg.ID, "index", d.index, "err", err)
	}
	pkt, err = e.dropPacket(v)
	return pkt, false, err
}

// hop returns node n as a route hop for the document's epoch with a fresh delay.
func (e *Engine) hop(v *view, n *pki.Node) (sphinx.Hop, error) {
	k, ok := n.SphinxKey(v.doc.Epoch)
	if !ok {
		return sphinx.Hop{}, fmt.Errorf("node %s has no key for epoch %d", n.Identity, v.doc.Epoch)
	}
	e.rngMu.Lock()
	d := hopDelay(e.rng, v.doc.Parameters.MeanDelay, v.doc.Parameters.MaxDelay)
	e.rngMu.Unlock()
	return sphinx.Hop{ID: sphinx.NodeID(n.Identity), PublicKey: k, DelayMS: d}, nil
}

// mixes picks one mix per layer, uniformly at random and independently.
func (e *Engine) mixes(v *view) ([]*pki.Node, error) {
	out := make([]*pki.Node, 0, pki.Layers)
	for l := uint8(1); l <= pki.Layers; l++ {
		layer := v.doc.Layer(l)
		if len(layer) == 0 {
			return nil, fmt.Errorf("consensus of epoch %d has no mix in layer %d", v.doc.Epoch, l)
		}
		out = append(out, &layer[e.randInt64(int64(len(layer)))])
	}
	return out, nil
}

// route builds the hops for nodes and returns the sum of their delays.
func (e *Engine) route(v *view, nodes ...*pki.Node) ([]sphinx.Hop, time.Duration, error) {
	hops := make([]sphinx.Hop, 0, len(nodes))
	var total time.Duration
	for _, n := range nodes {
		h, err := e.hop(v, n)
		if err != nil {
			return nil, 0, err
		}
		hops = append(hops, h)
		total += time.Duration(h.DelayMS) * time.Millisecond
	}
	return hops, total, nil
}

// forward is the route of a forward packet: the user's provider, one mix per layer, dst.
func (e *Engine) forward(v *view, dst *pki.Node) ([]sphinx.Hop, time.Duration, error) {
	m, err := e.mixes(v)
	if err != nil {
		return nil, 0, err
	}
	return e.route(v, v.self, m[0], m[1], m[2], dst)
}

// surb makes a SURB back to the user's queue: one mix per layer, then the user's provider.
func (e *Engine) surb(v *view) (id [sphinx.SURBIDSize]byte, surb, replyKeys []byte, delay time.Duration, err error) {
	m, err := e.mixes(v)
	if err != nil {
		return id, nil, nil, 0, err
	}
	back, delay, err := e.route(v, m[0], m[1], m[2], v.self)
	if err != nil {
		return id, nil, nil, 0, err
	}
	crand.Read(id[:])
	surb, replyKeys, err = v.sph.NewSURB(crand.Reader, back, sphinx.Recipient{Service: queueService, ID: e.cfg.User}, id)
	return id, surb, replyKeys, delay, err
}

func (e *Engine) randomProvider(v *view, svc string) (*pki.Node, error) {
	var ps []*pki.Node
	for _, p := range v.doc.Layer(0) {
		if slices.Contains(p.Services, svc) {
			ps = append(ps, &p)
		}
	}
	if len(ps) == 0 {
		return nil, fmt.Errorf("no provider offers %q in epoch %d", svc, v.doc.Epoch)
	}
	return ps[e.randInt64(int64(len(ps)))], nil
}

func (e *Engine) realPacket(v *view, d *due, now time.Time) ([]byte, error) {
	dst := d.msg.Destination
	fail := func(reason string) ([]byte, error) {
		if err := e.st.failMessage(d.msg.ID, reason, now); err != nil {
			return nil, err
		}
		return nil, errors.New(reason)
	}
	p, ok := v.doc.Provider(dst.Domain)
	if !ok {
		// realOrDrop picks such a message only once its queue lifetime is over.
		return fail(fmt.Sprintf("no provider serves %s in epoch %d, and the message waited for one for its queue lifetime of %v", dst.Domain, v.doc.Epoch, e.cfg.QueueLifetime))
	}
	if len(d.fragment) > FragmentHeaderSize+FragmentCapacity(v.doc.Parameters.Geometry) {
		return fail("the network's packet geometry changed and the fragment no longer fits")
	}
	fwd, fwdDelay, err := e.forward(v, p)
	if err != nil {
		return nil, err
	}
	g := v.doc.Parameters.Geometry
	var surb []byte
	var sr *surbRecord
	var id [sphinx.SURBIDSize]byte
	deadline := now.Add(fwdDelay + e.cfg.RetrieveInterval + e.retrySlack(d.attempts+1))
	if d.msg.NeedsAck {
		var rk []byte
		var backDelay time.Duration
		id, surb, rk, backDelay, err = e.surb(v)
		if err != nil {
			return nil, err
		}
		deadline = deadline.Add(backDelay)
		sr = &surbRecord{Message: d.msg.ID, Index: d.index, Created: now, Keys: rk}
		defer wipe(rk)
	}
	env, err := service.EncodeEnvelope(g.PayloadSize, g.SURBSize(), surb, d.fragment)
	if err != nil {
		return nil, err
	}
	pkt, err := v.sph.NewPacket(crand.Reader, fwd, sphinx.Recipient{Service: dst.Service, ID: dst.Recipient}, env)
	if err != nil {
		return nil, err
	}
	if err := e.st.markSent(d.msg.ID, d.index, &id, sr, deadline, now); err != nil {
		return nil, err
	}
	e.log.Debug("fragment sent", "id", d.msg.ID, "index", d.index, "attempt", d.attempts+1)
	return pkt, nil
}

// retrySlack is the slack of a fragment's n-th transmission (docs/spec/client.md section 4):
// AckSlack within the retry budget; past it (only with RetryFor, otherwise the message has
// failed), doubling from 2*AckSlack with each transmission up to MaxRetryWait, never below
// AckSlack. It depends only on n, which the store keeps, so the backoff survives a restart.
func (e *Engine) retrySlack(n int) time.Duration {
	slack := e.cfg.AckSlack
	if e.cfg.RetryFor <= 0 || n < e.cfg.RetryBudget || slack >= MaxRetryWait {
		return slack
	}
	for i := e.cfg.RetryBudget; i <= n && slack < MaxRetryWait; i++ {
		slack *= 2
	}
	return max(e.cfg.AckSlack, min(slack, MaxRetryWait))
}

// loopPacket builds a loop: to a provider's loop service, which echoes a random nonce through
// a SURB back to the user's queue. Like a real fragment and its ACK, it crosses the mixes in
// both directions.
func (e *Engine) loopPacket(v *view, now time.Time) ([]byte, error) {
	dst, err := e.randomProvider(v, loopService)
	if err != nil {
		return nil, err
	}
	fwd, fwdDelay, err := e.forward(v, dst)
	if err != nil {
		return nil, err
	}
	id, surb, rk, backDelay, err := e.surb(v)
	if err != nil {
		return nil, err
	}
	l := &loopRecord{keys: rk, deadline: now.Add(fwdDelay + backDelay + e.cfg.RetrieveInterval + e.cfg.AckSlack)}
	crand.Read(l.nonce[:])
	g := v.doc.Parameters.Geometry
	env, err := service.EncodeEnvelope(g.PayloadSize, g.SURBSize(), surb, l.nonce[:])
	if err != nil {
		wipe(rk)
		return nil, err
	}
	pkt, err := v.sph.NewPacket(crand.Reader, fwd, sphinx.Recipient{Service: loopService, ID: coverRecipient}, env)
	if err != nil {
		wipe(rk)
		return nil, err
	}
	e.mu.Lock()
	e.loops[id] = l
	e.mu.Unlock()
	return pkt, nil
}

// dropPacket builds a drop packet: through the mixes to a random provider's drop service.
func (e *Engine) dropPacket(v *view) ([]byte, error) {
	dst, err := e.randomProvider(v, dropService)
	if err != nil {
		return nil, err
	}
	fwd, _, err := e.forward(v, dst)
	if err != nil {
		return nil, err
	}
	g := v.doc.Parameters.Geometry
	env, err := service.EncodeEnvelope(g.PayloadSize, g.SURBSize(), nil, nil)
	if err != nil {
		return nil, err
	}
	return v.sph.NewPacket(crand.Reader, fwd, sphinx.Recipient{Service: dropService, ID: coverRecipient}, env)
}

// retrieveLoop runs one retrieve exchange every RetrieveInterval, at the same times whether
// or not anything waits and whichever queue it asks (docs/spec/client.md section 6): the
// policy only chooses between retrieve and retrieve-mail, inside the fixed-size frame.
func (e *Engine) retrieveLoop(ctx context.Context, conn *wire.Conn, sph *sphinx.Sphinx) error {
	seq, err := e.st.seq()
	if err != nil {
		return err
	}
	mailSeq, err := e.st.mailSeq()
	if err != nil {
		return err
	}
	pol := retrievePolicy{mail: e.cfg.ReadMail != nil}
	tick := time.NewTicker(e.cfg.RetrieveInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		cmd := pol.next(e.mailRoom)
		s := seq
		if cmd == wire.CmdRetrieveMail {
			s = mailSeq
		}
		answers, err := conn.Retrieve(cmd, s, e.cfg.RetrieveBatch, retrieveTimeout)
		if err != nil {
			return fmt.Errorf("%v: %w", cmd, err)
		}
		pol.answered(cmd, answers)
		e.count(func(l *LinkState) {
			l.Retrieves++
			if cmd == wire.CmdRetrieveMail {
				l.MailRetrieves++
			}
		})
		// Items come first, then empty answers (wire.Conn.Retrieve checked the order).
		items := answers[:0:0]
		for _, f := range answers {
			if f.Cmd != wire.CmdEmpty {
				items = append(items, f)
			}
		}
		if len(items) == 0 {
			continue
		}
		next := items[len(items)-1].Seq + 1
		if cmd == wire.CmdRetrieveMail {
			if err := e.applyMail(sph, items, next); err != nil {
				return err // the store failed: the chunks are fetched again
			}
			mailSeq = next
			continue
		}
		if err := e.applyItems(sph, items, next); err != nil {
			// The store failed: do not move past the items, so they are fetched again.
			return err
		}
		seq = next
	}
}

// maxWaitingMail bounds the complete mails the engine holds while ReadMail fails: beyond it,
// the engine stops asking the mail queue (its exchanges ask the reply queue instead, at the same
// times), so the mail waits at the provider instead of filling the user's disk twice.
const maxWaitingMail = 8

// mailRoom reports whether the engine may fetch more mail now.
func (e *Engine) mailRoom() bool {
	n, err := e.st.countReady(maxWaitingMail)
	return err == nil && n < maxWaitingMail
}

// retrievePolicy chooses which queue each retrieve exchange asks (docs/spec/client.md section
// 6). The reply queue (ACKs, loop echoes) comes first while it has something: its last answer
// held an item or a queue hint above 0. Otherwise, with mail on, the mail queue gets two
// exchanges of every three and the reply queue one, so that a reply waits at most two
// intervals more than it would without mail.
type retrievePolicy struct {
	mail      bool // ReadMail is set
	replyBusy bool // the reply queue's last answer held an item or a hint > 0
	turn      int
}

func (p *retrievePolicy) next(room func() bool) wire.Command {
	if !p.mail || p.replyBusy {
		return wire.CmdRetrieve
	}
	p.turn = (p.turn + 1) % 3
	if p.turn == 0 || !room() {
		return wire.CmdRetrieve
	}
	return wire.CmdRetrieveMail
}

// answered notes the answers of one exchange: the reply queue is busy when they held an item
// or the last one said more wait.
func (p *retrievePolicy) answered(cmd wire.Command, answers []*wire.Frame) {
	if cmd == wire.CmdRetrieve {
		p.replyBusy = false
		for _, f := range answers {
			p.replyBusy = f.Cmd != wire.CmdEmpty || f.QueueHint > 0
			if p.replyBusy {
				break
			}
		}
	}
}

// handleItem applies one item retrieved from the queue and records nextSeq, which tells the
// provider it may delete the item.
func (e *Engine) handleItem(sph *sphinx.Sphinx, f *wire.Frame, nextSeq uint32) error {
	return e.applyItems(sph, []*wire.Frame{f}, nextSeq)
}

// itemOutcome is what applying one item did, reported once the transaction committed.
type itemOutcome struct {
	loop     *loopRecord // the item echoed this loop, whose SURB id is surb
	surb     [sphinx.SURBIDSize]byte
	loopOK   bool
	reply    bool // the item was a reply through a SURB other than a loop's
	res      ackResult
	st       *Status
	message  bool  // the item was a queue message
	dropped  error // why a queue message was dropped, if it was
	received *Received
}

// applyItems applies the items of one retrieve exchange, in order, and records nextSeq (the
// last item's number plus one, which tells the provider it may delete them) in ONE store
// transaction (docs/spec/client.md section 6): an item's effect and the sequence number past
// it commit together, so a crash or a failed commit re-fetches exactly the items not applied.
// Counters, logs and the loops held in memory change only after the commit.
func (e *Engine) applyItems(sph *sphinx.Sphinx, items []*wire.Frame, nextSeq uint32) error {
	now := time.Now()
	g := sph.Geometry()
	outs := make([]itemOutcome, len(items))
	// Loop echoes are checked outside the transaction (they touch no store); a SURB id seen
	// twice in one exchange is a loop only the first time, as when applied one by one.
	seen := map[[sphinx.SURBIDSize]byte]bool{}
	e.mu.Lock()
	for i, f := range items {
		if f.Cmd == wire.CmdAck && !seen[f.SURBID] {
			seen[f.SURBID] = true
			outs[i].loop, outs[i].surb = e.loops[f.SURBID], f.SURBID
		}
	}
	e.mu.Unlock()
	for i, f := range items {
		if l := outs[i].loop; l != nil {
			if reply, err := sph.ReadReply(l.keys, f.Body); err == nil {
				if _, data, err := service.DecodeEnvelope(reply, g.SURBSize()); err == nil {
					outs[i].loopOK = subtle.ConstantTimeCompare(data, l.nonce[:]) == 1
				}
			}
		}
	}
	capacity := FragmentCapacity(g)
	err := e.st.exchange(false, nextSeq, func(x *exchangeTx) error {
		for i, f := range items {
			o := &outs[i]
			o.reply, o.res, o.st, o.message, o.dropped, o.received = false, 0, nil, false, nil, nil
			switch f.Cmd {
			case wire.CmdAck:
				if o.loop != nil {
					continue
				}
				o.reply = true
				var err error
				o.res, o.st, err = x.applyReply(f.SURBID, func(keys []byte) (*Ack, error) {
					reply, err := sph.ReadReply(keys, f.Body)
					if err != nil {
						return nil, err
					}
					_, data, err := service.DecodeEnvelope(reply, g.SURBSize())
					if err != nil {
						return nil, err
					}
					return ParseAck(data)
				}, now)
				if err != nil {
					return err
				}
			case wire.CmdMessage:
				o.message = true
				if !e.cfg.Receive {
					continue
				}
				frag, err := ParseFragment(f.Body, capacity)
				if err != nil {
					o.dropped = err
					continue
				}
				if int64(frag.TotalLength) > int64(e.cfg.MaxReceiveSize) {
					o.dropped = fmt.Errorf("message %s of %d bytes is over the size limit %d", frag.ID, frag.TotalLength, e.cfg.MaxReceiveSize)
					continue
				}
				rec, err := x.receive(frag, capacity, e.cfg.MaxPartial, e.cfg.MaxInbox, now)
				switch {
				case errors.Is(err, ErrMalformed), errors.Is(err, errTooManyPartial), errors.Is(err, errInboxFull):
					o.dropped = err // refused before anything was written
				case err != nil:
					return err
				}
				o.received = rec
			default:
				return fmt.Errorf("unexpected answer to a retrieve: %v", f.Cmd)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	e.mu.Lock()
	for _, o := range outs {
		if o.loop != nil && e.loops[o.surb] == o.loop {
			delete(e.loops, o.surb)
		}
	}
	e.mu.Unlock()
	for _, o := range outs {
		if o.loop != nil {
			wipe(o.loop.keys)
		}
	}
	e.count(func(ls *LinkState) {
		for _, o := range outs {
			switch {
			case o.loop != nil && o.loopOK:
				ls.LoopsReturned++
			case o.loop != nil:
				ls.BadReplies++
			case o.reply:
				switch o.res {
				case ackApplied, ackDuplicate:
					ls.Acks++
				case ackBad:
					ls.BadReplies++
				case ackUnknownSURB:
					ls.UnknownReplies++
				}
			case o.message:
				ls.Messages++
			}
		}
	})
	for _, o := range outs {
		switch {
		case o.reply && o.res == ackApplied && o.st != nil:
			switch o.st.State {
			case StateDelivered:
				e.log.Info("message delivered", "id", o.st.ID, "fragments", o.st.Fragments)
			case StateFailed:
				e.log.Info("message failed", "id", o.st.ID, "reason", o.st.Reason)
			default:
				e.log.Debug("fragment acknowledged", "id", o.st.ID, "acknowledged", o.st.Acknowledged, "fragments", o.st.Fragments)
			}
		case o.message && !e.cfg.Receive:
			e.log.Debug("discarding a queue message: this program consumes none")
		case o.dropped != nil:
			e.log.Debug("dropping a queue message", "err", o.dropped)
		case o.received != nil:
			e.log.Debug("message received", "id", o.received.ID, "size", len(o.received.Data))
		}
	}
	return nil
}
