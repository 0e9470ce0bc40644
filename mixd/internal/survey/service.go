package survey

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
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	format "github.com/panoramix-mixnet/panoramix/pkg/survey"
	"github.com/panoramix-mixnet/panoramix/pkg/survey/store"
)

// Name is the service name senders put in the Recipient command.
const Name = format.ServiceName

// maxBatch bounds the submissions one commit takes.
const maxBatch = 512

// Config configures a Service.
type Config struct {
	// Store holds the surveys and receives the submissions.
	Store *store.Store
	// Geometry fixes the fragment capacity; it must carry a whole submission in one fragment.
	Geometry sphinx.Geometry
	// Logger receives the service's log lines; nil discards them.
	Logger *slog.Logger
	// Registerer receives the mixd_survey_* metrics; may be nil.
	Registerer prometheus.Registerer
}

// Service is the survey service. Deliver is safe for concurrent use and needs Run running.
type Service struct {
	st       *store.Store
	log      *slog.Logger
	capacity int
	now      func() time.Time
	m        *metrics

	mu      sync.Mutex
	surveys map[string]*format.Signed // definitions never change under a name

	queue chan *pending
	ran   atomic.Bool // Run runs once: one writer
}

// pending is a submission waiting for the writer, with what its answer needs; or, with flushed
// set, a marker the writer closes once everything queued before it is answered (tests).
type pending struct {
	item    store.Item
	id      client.MessageID
	index   uint16
	reply   service.Replier
	flushed chan struct{}
}

// New checks cfg.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("survey: no store")
	}
	if err := cfg.Geometry.Validate(); err != nil {
		return nil, fmt.Errorf("survey: %w", err)
	}
	c := client.FragmentCapacity(cfg.Geometry)
	if c < format.MaxSubmissionSize {
		return nil, fmt.Errorf("survey: geometry %v carries %d bytes per fragment, less than a submission's %d", cfg.Geometry, c, format.MaxSubmissionSize)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Service{st: cfg.Store, log: log, capacity: c, now: time.Now, m: m, surveys: map[string]*format.Signed{}, queue: make(chan *pending, maxBatch)}, nil
}

var _ service.Service = (*Service)(nil)

// Name returns "survey".
func (s *Service) Name() string { return Name }

// Run writes the submissions Deliver queues until ctx ends, and answers each once its commit
// has returned. A second call is refused at once (mixd's node runs every service's Run; nothing
// else may).
//
// The answers are sent from here, not from Deliver: a Deliver that waited for its commit would
// hold the provider's delivery worker for the length of an fsync, and with a handful of such
// workers the commits would take a handful of submissions each, whatever the load
// (docs/BENCHMARKS.md, survey). Queued, the submissions wait here instead, and each commit takes
// all that arrived during the one before.
func (s *Service) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("survey: Run called twice (the service has one writer and runs once)")
	}
	batch := make([]*pending, 0, maxBatch)
	items := make([]store.Item, 0, maxBatch)
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return nil
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
		items = items[:0]
		for _, p := range batch {
			if p.flushed == nil {
				items = append(items, p.item)
			}
		}
		var res []store.Result
		var err error
		if len(items) > 0 {
			start := time.Now()
			res, err = s.st.InsertBatch(ctx, items)
			if err == nil {
				s.m.commit.Observe(time.Since(start).Seconds())
				s.m.batch.Observe(float64(len(items)))
			} else {
				// Nothing is answered: the senders retransmit, and the next commit may succeed.
				s.m.failures.WithLabelValues(stageCommit).Add(float64(len(items)))
				if ctx.Err() == nil {
					s.log.Warn("survey commit failed; submissions not acknowledged", "submissions", len(items), "err", err)
				}
			}
		}
		i := 0
		for _, p := range batch {
			if p.flushed != nil {
				close(p.flushed)
				continue
			}
			if err == nil {
				s.answer(ctx, p, res[i])
			}
			i++
			p.item, p.reply = store.Item{}, nil
		}
	}
}

// answer sends the ACK of a committed submission.
func (s *Service) answer(ctx context.Context, p *pending, res store.Result) {
	name := p.item.Survey
	var err error
	switch res {
	case store.Inserted:
		s.m.stored.Inc()
		err = s.ack(ctx, p.reply, p.id, p.index, client.AckStored)
	case store.Duplicate:
		s.m.duplicates.Inc()
		err = s.ack(ctx, p.reply, p.id, p.index, client.AckStored)
	case store.Closed:
		s.log.Debug("submission to a closed survey", "survey", name)
		s.m.refusals.WithLabelValues(reasonClosed).Inc()
		err = s.refuse(ctx, p.reply, p.id, p.index, format.ClosedRefusal(name))
	default: // gone
		s.log.Debug("submission refused", "survey", name, "why", res)
		s.m.refusals.WithLabelValues(reasonUnknownSurvey).Inc()
		err = s.ack(ctx, p.reply, p.id, p.index, client.AckUnknownRecipient)
	}
	if err != nil {
		// The SURB came with the packet, from anyone: a line per failure would let a sender
		// fill the log, so only the metric counts them at the default level.
		s.m.failures.WithLabelValues(stageReply).Inc()
		s.log.Debug("answer not sent", "survey", name, "err", err)
	}
}

// enqueue hands p to the writer; it waits only while the writer's queue is full.
func (s *Service) enqueue(ctx context.Context, p *pending) error {
	select {
	case s.queue <- p:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flush waits until everything queued before it is committed and answered (tests).
func (s *Service) flush(ctx context.Context) error {
	p := &pending{flushed: make(chan struct{})}
	if err := s.enqueue(ctx, p); err != nil {
		return err
	}
	select {
	case <-p.flushed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lookup returns the signed survey opened under name, or nil.
func (s *Service) lookup(ctx context.Context, name string) (*format.Signed, error) {
	s.mu.Lock()
	sv := s.surveys[name]
	s.mu.Unlock()
	if sv != nil {
		return sv, nil
	}
	if !format.NamePattern.MatchString(name) {
		return nil, nil
	}
	info, err := s.st.Survey(ctx, name)
	if errors.Is(err, store.ErrUnknownSurvey) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.surveys[name] = info.Signed
	s.mu.Unlock()
	return info.Signed, nil
}

// Deliver handles one fragment for survey req.Recipient (docs/spec/survey.md section 5). A
// valid submission is queued for Run, which stores it and then acknowledges it; everything
// else is answered here. It returns an error only for a failure of the service itself
// (database, reply, or ctx ending while the writer's queue is full); refusals are answered with
// an ACK status and return nil.
func (s *Service) Deliver(ctx context.Context, req *service.Request, reply service.Replier) error {
	name := req.Recipient
	f, err := client.ParseFragment(req.Data, s.capacity)
	if err != nil {
		s.log.Debug("malformed fragment", "survey", name, "err", err)
		s.m.refusals.WithLabelValues(reasonMalformed).Inc()
		if id, index, ok := client.FragmentIDs(req.Data); ok {
			return s.ack(ctx, reply, id, index, client.AckMalformed)
		}
		return nil
	}
	if f.TotalLength > format.MaxSubmissionSize {
		s.log.Debug("submission too large", "survey", name, "size", f.TotalLength)
		s.m.refusals.WithLabelValues(reasonTooLarge).Inc()
		return s.ack(ctx, reply, f.ID, f.Index, client.AckTooLarge)
	}
	sv, err := s.lookup(ctx, name)
	if err != nil {
		return fmt.Errorf("survey: look up %q: %w", name, err)
	}
	if sv == nil {
		s.log.Debug("submission for an unknown survey", "survey", name)
		s.m.refusals.WithLabelValues(reasonUnknownSurvey).Inc()
		return s.ack(ctx, reply, f.ID, f.Index, client.AckUnknownRecipient)
	}
	sub, err := format.ParseSubmission(f.Data)
	if err == nil {
		err = sub.Validate(sv)
	}
	if err != nil {
		s.log.Debug("invalid submission", "survey", name, "err", err)
		s.m.refusals.WithLabelValues(reasonMalformed).Inc()
		return s.ack(ctx, reply, f.ID, f.Index, client.AckMalformed)
	}
	now := s.now()
	if !sv.Definition.Open(now) {
		// Outside the survey's time window only a retransmission of what was stored in it is
		// acknowledged as stored.
		has, err := s.st.Has(ctx, name, sub.ID)
		if err != nil {
			return fmt.Errorf("survey: look up submission: %w", err)
		}
		if has {
			s.m.duplicates.Inc()
			return s.ack(ctx, reply, f.ID, f.Index, client.AckStored)
		}
		s.log.Debug("submission outside the survey's time window", "survey", name)
		if sec := now.Unix(); sec < 0 || uint64(sec) < sv.Definition.Opens {
			s.m.refusals.WithLabelValues(reasonNotOpen).Inc()
		} else {
			s.m.refusals.WithLabelValues(reasonClosed).Inc()
		}
		return s.refuse(ctx, reply, f.ID, f.Index, format.WindowRefusal(sv.Definition, now))
	}
	// Stored, then answered, by Run (pkg/service: the request and the replier stay valid
	// after Deliver returns).
	it := store.Item{Survey: name, Submission: sub, Raw: f.Data, ReceivedAt: now}
	if err := s.enqueue(ctx, &pending{item: it, id: f.ID, index: f.Index, reply: reply}); err != nil {
		return fmt.Errorf("survey: queue submission to %q: %w", name, err)
	}
	return nil
}

// refuse answers AckRefused with the reason as the ACK's answer (docs/spec/survey.md section 5).
func (s *Service) refuse(ctx context.Context, reply service.Replier, id client.MessageID, index uint16, reason string) error {
	if !reply.CanReply() {
		return nil
	}
	a := client.Ack{ID: id, Index: index, Status: client.AckRefused, Answer: []byte(reason)}
	if err := reply.Reply(ctx, a.Marshal()); err != nil {
		return fmt.Errorf("survey: ack %s fragment %d (refused: %s): %w", id, index, reason, err)
	}
	return nil
}

// ack answers through the SURB, if the request carried one.
func (s *Service) ack(ctx context.Context, reply service.Replier, id client.MessageID, index uint16, status client.AckStatus) error {
	if !reply.CanReply() {
		return nil
	}
	a := client.Ack{ID: id, Index: index, Status: status}
	if err := reply.Reply(ctx, a.Marshal()); err != nil {
		return fmt.Errorf("survey: ack %s fragment %d (%s): %w", id, index, status, err)
	}
	return nil
}
