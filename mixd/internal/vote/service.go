package vote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board"
	"github.com/panoramix-mixnet/panoramix/pkg/vote/board/box"
)

// Name is the service name voters put in the Recipient command.
const Name = "vote"

// maxBatch bounds the casts one commit takes.
const maxBatch = 512

// closePoll is how often the writer looks for close requests.
const closePoll = time.Second

// Config configures a Service.
type Config struct {
	// Dir is the box directory (pkg/vote/board/box), normally data_dir/vote.
	Dir string
	// Geometry fixes the fragment capacity (it must carry the largest cast in one fragment)
	// and the reply capacity (it must carry an ACK with a receipt).
	Geometry sphinx.Geometry
	// Logger receives the service's log lines; nil discards them.
	Logger *slog.Logger
	// Now is the clock; time.Now when nil (tests set it).
	Now func() time.Time
	// Registerer receives the mixd_vote_* metrics; may be nil.
	Registerer prometheus.Registerer
}

// Service is the vote service. Deliver is safe for concurrent use and needs Run running.
type Service struct {
	dir      string
	key      *keys.IdentityPrivateKey // wiped when Run returns
	pub      keys.IdentityPublicKey
	log      *slog.Logger
	capacity int
	now      func() time.Time
	m        *metrics

	mu        sync.Mutex
	elections map[string]*election

	queue chan *pending
	ran   atomic.Bool // Run was called: it is the only writer of the boards

	// closeProblem is, per election, the last close-request problem logged: pollCloses runs
	// every closePoll and logs a problem once, not every second (Run's goroutine only).
	closeProblem map[string]string
}

// election is one installed election. board is touched only by the writer goroutine.
type election struct {
	p     *board.Params
	board *box.Board
}

// pending is a checked cast waiting for the writer.
type pending struct {
	el   *election
	raw  []byte
	hash [board.HashSize]byte
	done chan struct{}

	receipt *board.Receipt
	refusal string // why the writer refused the cast (closed, outside the voting period)
	reason  string // refusal's metrics label
	// retransmit: the cast was on the board already (or staged in the same batch).
	retransmit bool
	err        error // a failure of the box itself: no answer, the voter retransmits
}

// New loads (or creates) the box key in cfg.Dir and checks the geometry.
func New(cfg Config) (*Service, error) {
	if cfg.Dir == "" {
		return nil, errors.New("vote: no box directory")
	}
	if err := cfg.Geometry.Validate(); err != nil {
		return nil, fmt.Errorf("vote: %w", err)
	}
	c := client.FragmentCapacity(cfg.Geometry)
	if c < board.MaxCastSize {
		return nil, fmt.Errorf("vote: geometry %v carries %d bytes per fragment, less than the largest cast's %d", cfg.Geometry, c, board.MaxCastSize)
	}
	if r := service.Capacity(cfg.Geometry.PayloadSize, cfg.Geometry.SURBSize(), false); r < client.AckSize+2+client.MaxAckAnswer {
		return nil, fmt.Errorf("vote: geometry %v carries %d bytes per reply, less than an ACK with a receipt", cfg.Geometry, r)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	key, err := box.Key(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("vote: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Service{dir: cfg.Dir, key: key, pub: key.Public(), log: log, m: m, capacity: c, now: now,
		elections: map[string]*election{}, queue: make(chan *pending, maxBatch)}, nil
}

var _ service.Service = (*Service)(nil)

// Name returns "vote".
func (s *Service) Name() string { return Name }

// BoxKey returns the box's board-signing public key.
func (s *Service) BoxKey() keys.IdentityPublicKey { return s.pub }

// lookup returns the election installed under id, reading its parameters on first use; nil
// when there is none.
func (s *Service) lookup(id string) (*election, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if el := s.elections[id]; el != nil {
		return el, nil
	}
	if !board.ElectionIDPattern.MatchString(id) {
		return nil, nil
	}
	p, err := box.Params(s.dir, id)
	if errors.Is(err, box.ErrUnknownElection) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	el := &election{p: p}
	s.elections[id] = el
	return el, nil
}

// Deliver handles one fragment for election req.Recipient (§11.8). It returns an error only
// for a failure of the box itself (storage, reply); refusals are answered with an ACK and
// return nil.
func (s *Service) Deliver(ctx context.Context, req *service.Request, reply service.Replier) error {
	id := req.Recipient
	f, err := client.ParseFragment(req.Data, s.capacity)
	if err != nil {
		s.log.Debug("malformed fragment", "election", id, "err", err)
		s.m.refusals.WithLabelValues(reasonMalformed).Inc()
		if mid, index, ok := client.FragmentIDs(req.Data); ok {
			return s.ack(ctx, reply, mid, index, client.AckMalformed, nil)
		}
		return nil
	}
	if int64(f.TotalLength) > int64(board.MaxCastSize) || f.Count != 1 {
		s.log.Debug("cast too large", "election", id, "size", f.TotalLength)
		s.m.refusals.WithLabelValues(reasonTooLarge).Inc()
		return s.ack(ctx, reply, f.ID, f.Index, client.AckTooLarge, fmt.Appendf(nil, "a cast is at most %d bytes", board.MaxCastSize))
	}
	el, err := s.lookup(id)
	if err != nil {
		return fmt.Errorf("vote: election %q: %w", id, err)
	}
	if el == nil {
		s.log.Debug("cast for an unknown election", "election", id)
		s.m.refusals.WithLabelValues(reasonUnknownElection).Inc()
		return s.ack(ctx, reply, f.ID, f.Index, client.AckUnknownRecipient, fmt.Appendf(nil, "no election %q at this ballot box", id))
	}
	c, err := board.ParseCast(f.Data)
	if err != nil {
		s.log.Debug("malformed cast", "election", id, "err", err)
		s.m.refusals.WithLabelValues(reasonMalformed).Inc()
		return s.ack(ctx, reply, f.ID, f.Index, client.AckMalformed, []byte(err.Error()))
	}
	if err := c.Check(el.p); err != nil {
		s.log.Debug("cast refused", "election", id, "err", err)
		s.m.refusals.WithLabelValues(checkReason(err)).Inc()
		return s.ack(ctx, reply, f.ID, f.Index, client.AckRefused, []byte(err.Error()))
	}
	p := &pending{el: el, raw: f.Data, hash: c.Hash(), done: make(chan struct{})}
	select {
	case s.queue <- p:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	switch {
	case p.err != nil:
		return fmt.Errorf("vote: election %q: %w", id, p.err)
	case p.refusal != "":
		s.log.Debug("cast refused", "election", id, "why", p.refusal)
		s.m.refusals.WithLabelValues(p.reason).Inc()
		return s.ack(ctx, reply, f.ID, f.Index, client.AckRefused, []byte(p.refusal))
	}
	return s.ack(ctx, reply, f.ID, f.Index, client.AckStored, p.receipt.Marshal())
}

// ack answers through the SURB, if the request carried one. answer is cut to MaxAckAnswer.
func (s *Service) ack(ctx context.Context, reply service.Replier, id client.MessageID, index uint16, status client.AckStatus, answer []byte) error {
	if !reply.CanReply() {
		return nil
	}
	if len(answer) > client.MaxAckAnswer {
		answer = answer[:client.MaxAckAnswer]
	}
	a := client.Ack{ID: id, Index: index, Status: status, Answer: answer}
	if err := reply.Reply(ctx, a.Marshal()); err != nil {
		return fmt.Errorf("vote: ack %s fragment %d (%s): %w", id, index, status, err)
	}
	return nil
}

// checkReason is the metrics label of a Cast.Check refusal.
func checkReason(err error) string {
	switch {
	case errors.Is(err, board.ErrWrongElection):
		return reasonWrongElection
	case errors.Is(err, board.ErrNotEligible):
		return reasonNotEligible
	case errors.Is(err, board.ErrBadSignature):
		return reasonBadSignature
	case errors.Is(err, board.ErrBadProof):
		return reasonBadProof
	}
	return reasonMalformed
}

// Run is the writer: it appends the casts Deliver queues, in batches with one fsync each, and
// the close entries requested by the operator, until ctx ends. It opens the boards of the
// installed elections first, which repairs a board whose last append a crash cut short. The
// box key is wiped when Run returns: a Service runs once. A second call returns an error at
// once, touching nothing: two writers would stage entries with the same sequence number.
func (s *Service) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("vote: Run called twice (the service has one writer and runs once)")
	}
	defer s.key.Wipe()
	defer s.closeBoards()
	s.pollCloses()
	tick := time.NewTicker(closePoll)
	defer tick.Stop()
	batch := make([]*pending, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			s.pollCloses()
			continue
		case p := <-s.queue:
			batch = append(batch, p)
		}
	more:
		for len(batch) < maxBatch {
			select {
			case p := <-s.queue:
				batch = append(batch, p)
			default:
				break more
			}
		}
		s.write(batch)
	}
}

// write appends a batch: stage every cast (or find its earlier receipt), commit each touched
// board once, then release the waiting Deliver calls.
func (s *Service) write(batch []*pending) {
	now := s.now()
	touched := map[*election]bool{}
	for _, p := range batch {
		b, err := s.openBoard(p.el)
		if err != nil {
			p.err = err
			continue
		}
		if r, err := b.Receipt(p.hash); err != nil || r != nil {
			p.receipt, p.err = r, err
			p.retransmit = true
			touched[p.el] = true // a staged duplicate is answered after the commit
			continue
		}
		e, err := b.Stage(board.KindBallot, now, p.raw)
		switch {
		case err == nil:
			p.receipt = e.Receipt()
			touched[p.el] = true
		case b.Closed():
			p.refusal, p.reason = fmt.Sprintf("election %q is closed", p.el.p.ElectionID), reasonClosed
		case errors.Is(err, board.ErrInvalid) && outside(p.el.p, now):
			p.reason = reasonNotOpen
			p.refusal = fmt.Sprintf("election %q is not open: voting from %s to %s", p.el.p.ElectionID,
				p.el.p.Opens.UTC().Format(time.RFC3339), p.el.p.Closes.UTC().Format(time.RFC3339))
		default:
			// The cast passed Cast.Check and the period is open: the box itself is at fault
			// (its board state). No ACK: the voter retransmits.
			s.log.Error("box failure: cannot stage a checked cast", "election", p.el.p.ElectionID, "err", err)
			p.err = err
		}
	}
	failed := map[*election]error{}
	start := time.Now()
	for el := range touched {
		if err := el.board.Commit(); err != nil {
			s.log.Error("cannot append to the board", "election", el.p.ElectionID, "err", err)
			failed[el] = err
			el.board.Close()
			el.board = nil // reopened (and repaired) by the next batch
		}
	}
	if len(touched) > 0 {
		s.m.commit.Observe(time.Since(start).Seconds())
		s.m.batch.Observe(float64(len(batch)))
	}
	for _, p := range batch {
		if err := failed[p.el]; err != nil && p.err == nil && p.refusal == "" {
			p.receipt, p.err = nil, err
		}
		if p.err == nil && p.receipt != nil {
			if p.retransmit {
				s.m.retransmits.Inc()
			} else {
				s.m.appended.Inc()
			}
		}
		close(p.done)
	}
}

// outside reports whether a cast staged at now falls outside the voting period of p (the
// entry time is now to the millisecond, §11.6).
func outside(p *board.Params, now time.Time) bool {
	t := time.UnixMilli(now.UnixMilli())
	return t.Before(p.Opens) || !t.Before(p.Closes)
}

// openBoard opens the election's board on first use (writer goroutine only).
func (s *Service) openBoard(el *election) (*box.Board, error) {
	if el.board != nil {
		return el.board, nil
	}
	b, err := box.OpenBoard(s.dir, el.p, s.key)
	if err != nil {
		return nil, err
	}
	s.log.Info("board open", "election", el.p.ElectionID, "entries", b.Len(), "closed", b.Closed())
	el.board = b
	return b, nil
}

// pollCloses opens the boards of all installed elections and appends the close entry of those
// with a close request whose voting period has ended.
func (s *Service) pollCloses() {
	ids, err := box.Elections(s.dir)
	if err != nil {
		s.log.Error("cannot list elections", "err", err)
		return
	}
	for _, id := range ids {
		el, err := s.lookup(id)
		if err != nil || el == nil {
			s.log.Error("cannot load election", "election", id, "err", err)
			continue
		}
		b, err := s.openBoard(el)
		if err != nil {
			s.log.Error("cannot open board", "election", id, "err", err)
			continue
		}
		if b.Closed() {
			continue
		}
		c, err := box.PendingClose(s.dir, id)
		if err != nil {
			s.closeTrouble(id, "unreadable close request", err)
			continue
		}
		if c == nil || s.now().Before(el.p.Closes) {
			delete(s.closeProblem, id)
			continue
		}
		if err := c.Verify(el.p); err != nil {
			s.closeTrouble(id, "close request refused", err)
			continue
		}
		if _, err := b.Stage(board.KindClose, s.now(), c.Marshal()); err != nil {
			s.closeTrouble(id, "close refused", err)
			continue
		}
		if err := b.Commit(); err != nil {
			s.log.Error("cannot append the close entry", "election", id, "err", err)
			b.Close()
			el.board = nil
			continue
		}
		delete(s.closeProblem, id)
		s.m.closes.Inc()
		s.log.Info("election closed", "election", id, "entries", b.Len(), "trustees", len(c.Signatures))
	}
}

// closeTrouble logs a problem with election id's close request once, until it changes or
// the request goes away or succeeds.
func (s *Service) closeTrouble(id, msg string, err error) {
	text := msg + ": " + err.Error()
	if s.closeProblem[id] == text {
		return
	}
	if s.closeProblem == nil {
		s.closeProblem = map[string]string{}
	}
	s.closeProblem[id] = text
	s.log.Error(msg, "election", id, "err", err)
}

func (s *Service) closeBoards() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, el := range s.elections {
		if el.board != nil {
			el.board.Close()
			el.board = nil
		}
	}
}
