// Package authority is the directory authority's core: it validates and stores node
// descriptors, makes this authority's vote each epoch, exchanges votes and signatures with peer
// authorities, computes the consensus document with pki.ComputeDocument, and keeps every step in
// the store so a restart serves the same bytes. docs/spec/pki.md sections 7 to 9 are the rules;
// package httpapi serves what this package holds.
package authority

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/panoramix-mixnet/panoramix/directory/internal/store"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// Peer is another authority.
type Peer struct {
	Identity keys.IdentityPublicKey
	URL      string
}

// Config is what New needs.
type Config struct {
	// Identity signs this authority's votes and documents. The Authority does not wipe it; the
	// caller does, after Run returns.
	Identity   *keys.IdentityPrivateKey
	Peers      []Peer
	Threshold  int
	Parameters pki.Parameters
	// Approved are the approvals of the configuration file, in addition to the store's; an
	// identity appears at most once, and a mail domain in at most one approval.
	Approved []store.Approval
	Store    *store.Store
	Logger   *slog.Logger
	// Registerer receives the metrics; nil means they are not exported.
	Registerer prometheus.Registerer
	// HTTPClient fetches peers' votes and signatures; nil means one with a timeout of a tenth of
	// an epoch (between 0.5 s and 10 s).
	HTTPClient *http.Client
	// Now is the time source; nil means time.Now. Tests set it to step through an epoch.
	Now func() time.Time
}

// Authority is one directory authority.
type Authority struct {
	id          *keys.IdentityPrivateKey
	self        keys.IdentityPublicKey
	peers       []Peer
	authorities []keys.IdentityPublicKey
	threshold   int
	params      pki.Parameters
	static      []store.Approval
	clock       pki.Clock
	store       *store.Store
	log         *slog.Logger
	http        *http.Client
	now         func() time.Time
	m           *metrics

	// postMu makes the key-conflict check and the write of a descriptor one step.
	postMu sync.Mutex

	mu        sync.Mutex
	peerVotes map[pki.Epoch]map[keys.IdentityPublicKey]*pki.Vote
	failures  map[pki.Epoch]string
	docs      map[pki.Epoch]*docEntry
	pruned    pki.Epoch

	// refusalLog remembers, per approved node, the last refusal logged and when, so that a node
	// retrying its upload every half second is logged once a minute, not at every retry. Only
	// approved identities reach it, so it holds at most one entry per approval.
	refusalLog map[keys.IdentityPublicKey]loggedRefusal
}

type loggedRefusal struct {
	reason string
	at     time.Time
}

// refusalLogInterval is how often the same refusal of one node is logged again.
const refusalLogInterval = time.Minute

// logRefusal reports whether a refusal of node id for reason should be logged now, and notes it.
func (a *Authority) logRefusal(id keys.IdentityPublicKey, reason string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if last, ok := a.refusalLog[id]; ok && last.reason == reason && now.Sub(last.at) < refusalLogInterval {
		return false
	}
	if a.refusalLog == nil {
		a.refusalLog = make(map[keys.IdentityPublicKey]loggedRefusal)
	}
	a.refusalLog[id] = loggedRefusal{reason: reason, at: now}
	return true
}

// New checks cfg and returns an Authority.
func New(cfg Config) (*Authority, error) {
	if cfg.Identity == nil || cfg.Store == nil || cfg.Logger == nil {
		return nil, errors.New("authority: identity key, store and logger are required")
	}
	if err := cfg.Parameters.Validate(); err != nil {
		return nil, fmt.Errorf("authority: %w", err)
	}
	clock, err := pki.NewClock(cfg.Parameters.EpochLength)
	if err != nil {
		return nil, fmt.Errorf("authority: %w", err)
	}
	a := &Authority{
		id:        cfg.Identity,
		self:      cfg.Identity.Public(),
		peers:     cfg.Peers,
		threshold: cfg.Threshold,
		params:    cfg.Parameters,
		static:    cfg.Approved,
		clock:     clock,
		store:     cfg.Store,
		log:       cfg.Logger,
		http:      cfg.HTTPClient,
		now:       cfg.Now,
		m:         newMetrics(cfg.Registerer),
		peerVotes: make(map[pki.Epoch]map[keys.IdentityPublicKey]*pki.Vote),
		failures:  make(map[pki.Epoch]string),
		docs:      make(map[pki.Epoch]*docEntry),
	}
	a.authorities = []keys.IdentityPublicKey{a.self}
	for _, p := range cfg.Peers {
		if p.Identity.Equal(a.self) {
			return nil, fmt.Errorf("authority: peer %s is this authority's own key", p.URL)
		}
		a.authorities = append(a.authorities, p.Identity)
	}
	if err := pki.CheckAuthorities(a.authorities, a.threshold); err != nil {
		return nil, fmt.Errorf("authority: %w", err)
	}
	if err := a.checkStatic(); err != nil {
		return nil, fmt.Errorf("authority: %w", err)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.http == nil {
		a.http = &http.Client{Timeout: min(max(clock.Length()/10, 500*time.Millisecond), 10*time.Second)}
	}
	return a, nil
}

// Identity returns this authority's public key.
func (a *Authority) Identity() keys.IdentityPublicKey { return a.self }

// Clock returns the epoch clock.
func (a *Authority) Clock() pki.Clock { return a.clock }

// Threshold returns the signature threshold.
func (a *Authority) Threshold() int { return a.threshold }

// Error is a refusal with the HTTP status that says why (docs/spec/pki.md section 10).
type Error struct {
	Status int
	Msg    string
}

func (e *Error) Error() string { return e.Msg }

func refuse(status int, format string, args ...any) *Error {
	return &Error{Status: status, Msg: fmt.Sprintf(format, args...)}
}

// PostDescriptor validates an uploaded descriptor (docs/spec/pki.md section 9) and stores it.
// Refusals are *Error with a 4xx status; nothing is stored then.
func (a *Authority) PostDescriptor(b []byte) error {
	err := a.postDescriptor(b)
	result := "accepted"
	var e *Error
	if errors.As(err, &e) {
		result = strconv.Itoa(e.Status)
	} else if err != nil {
		result = "error"
	}
	a.m.uploads.WithLabelValues(result).Inc()
	return err
}

func (a *Authority) postDescriptor(b []byte) error {
	if len(b) > pki.MaxDescriptorSize {
		return refuse(http.StatusRequestEntityTooLarge, "descriptor of %d bytes, limit %d", len(b), pki.MaxDescriptorSize)
	}
	// The allow-list is checked on the identity field before the signature and key checks
	// (about 0.3 ms), so strangers cannot make the authority spend that.
	id, ok := pki.DescriptorIdentity(b)
	if !ok {
		return refuse(http.StatusBadRequest, "descriptor: %v: too short or unknown version", pki.ErrMalformed)
	}
	ap, ok, err := a.approval(id)
	if err != nil {
		return err
	}
	if !ok {
		return refuse(http.StatusForbidden, "node %s is not approved: the operator approves it with `mixctl dir approve %s --role mix`, or `--role provider --domain DOMAIN` for a provider", id, id)
	}
	d, err := pki.ParseDescriptor(b)
	if err != nil {
		return refuse(http.StatusBadRequest, "%v", err)
	}
	// The approval binds the role and the mail domains: a node approved as a mix that claims to
	// be a provider, or a provider that claims another's domain, stays out (issue 13, finding 1).
	if err := ap.Permits(d); err != nil {
		a.m.refused.Inc()
		if a.logRefusal(id, err.Error()) {
			a.log.Warn("descriptor refused: it claims more than the node's approval", "node", id, "approved_as", ap.Approval.String(), "legacy_approval", ap.Legacy, "reason", err)
		}
		return refuse(http.StatusForbidden, "node %s: %v%s", id, err, approvalHint(id, ap))
	}
	c, _, err := a.epochNow()
	if err != nil {
		return err
	}
	if d.Epoch < c || d.Epoch > c+2 {
		return refuse(http.StatusConflict, "descriptor for epoch %d: this authority accepts epochs %d to %d", d.Epoch, c, c+2)
	}
	a.postMu.Lock()
	defer a.postMu.Unlock()
	stored, err := a.store.Descriptors(d.Identity)
	if err != nil {
		return err
	}
	for _, s := range stored {
		for _, k := range d.SphinxKeys {
			if old, ok := s.SphinxKey(k.Epoch); ok && !old.Equal(k.Key) {
				return refuse(http.StatusConflict, "sphinx key for epoch %d differs from the one this node already published; keys do not change once published", k.Epoch)
			}
		}
	}
	if err := a.store.PutDescriptor(d); err != nil {
		return err
	}
	a.log.Debug("descriptor stored", "node", d.Identity, "role", d.Role, "epoch", d.Epoch)
	return nil
}

// approvalHint tells the node's operator how the directory's operator changes the approval.
func approvalHint(id keys.IdentityPublicKey, ap store.Approval) string {
	if ap.Legacy {
		return fmt.Sprintf(" (its approval was stored before approvals named a role and counts as a mix approval: approve it again with `mixctl dir approve %s --role provider --domain DOMAIN`)", id)
	}
	return ""
}

// approval returns a node's approval: the configuration file's, else the store's.
func (a *Authority) approval(id keys.IdentityPublicKey) (store.Approval, bool, error) {
	if i := slices.IndexFunc(a.static, func(s store.Approval) bool { return s.Identity.Equal(id) }); i >= 0 {
		return a.static[i], true, nil
	}
	return a.store.Approval(id)
}

// checkStatic validates the configuration file's approvals (each valid, an identity and a mail
// domain at most once) and warns about a stored approval that names one of their domains for
// another node: while both publish, the domain has no provider (docs/spec/pki.md section 7).
func (a *Authority) checkStatic() error {
	owner := make(map[string]keys.IdentityPublicKey)
	for i, s := range a.static {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("approval of %s: %w", s.Identity, err)
		}
		if slices.ContainsFunc(a.static[:i], func(o store.Approval) bool { return o.Identity.Equal(s.Identity) }) {
			return fmt.Errorf("node %s is approved twice in the configuration", s.Identity)
		}
		for _, dom := range s.Domains {
			if o, dup := owner[dom]; dup {
				return fmt.Errorf("mail domain %s is approved for both %s and %s", dom, o, s.Identity)
			}
			owner[dom] = s.Identity
		}
	}
	stored, err := a.store.Approved()
	if err != nil {
		return err
	}
	for _, s := range stored {
		for _, dom := range s.Domains {
			if o, dup := owner[dom]; dup && !o.Equal(s.Identity) {
				a.log.Warn("mail domain approved for two nodes (configuration file and mixctl dir approve): it has no provider while both publish; remove one approval",
					"domain", dom, "file", o, "stored", s.Identity)
			}
		}
		if s.Legacy {
			a.log.Warn("node approved before approvals named a role: it is admitted as a mix only; approve a provider again with its domains",
				"node", s.Identity, "command", fmt.Sprintf("mixctl dir approve %s --role provider --domain DOMAIN", s.Identity))
		}
	}
	return nil
}

// Approve approves a node with its role and, for a provider, its mail domains (replacing an
// earlier approval of the node). It refuses a mail domain approved for another node here or in
// the configuration file: two approved claimants would leave the domain without a provider.
func (a *Authority) Approve(id keys.IdentityPublicKey, ap pki.Approval) error {
	if err := ap.Validate(); err != nil {
		return refuse(http.StatusBadRequest, "%v", err)
	}
	for _, s := range a.static {
		if s.Identity.Equal(id) {
			return refuse(http.StatusConflict, "node %s is approved in the configuration file (as %s): change it there and restart", id, s.Approval)
		}
		for _, dom := range ap.Domains {
			if slices.Contains(s.Domains, dom) {
				return refuse(http.StatusConflict, "mail domain %s is approved for node %s in the configuration file: a domain has one provider", dom, s.Identity)
			}
		}
	}
	if err := a.store.Approve(id, ap); err != nil {
		if errors.Is(err, store.ErrDomainTaken) {
			return refuse(http.StatusConflict, "%v: a domain has one provider; remove that approval first (`mixctl dir remove`)", err)
		}
		return err
	}
	a.log.Info("node approved", "node", id, "as", ap.String())
	return nil
}

// Remove takes a node identity off the stored allow-list. Identities approved in the
// configuration file cannot be removed here.
func (a *Authority) Remove(id keys.IdentityPublicKey) error {
	if slices.ContainsFunc(a.static, func(s store.Approval) bool { return s.Identity.Equal(id) }) {
		return refuse(http.StatusConflict, "node %s is approved in the configuration file: remove it there and restart", id)
	}
	if err := a.store.Remove(id); err != nil {
		if errors.Is(err, store.ErrNotApproved) {
			return refuse(http.StatusNotFound, "%v", err)
		}
		return err
	}
	a.log.Info("node removed", "node", id)
	return nil
}

// Approved returns the approvals: the configuration file's, then the store's (a stored
// approval of a node the file approves is not used, so it is not listed).
func (a *Authority) Approved() ([]store.Approval, error) {
	s, err := a.store.Approved()
	if err != nil {
		return nil, err
	}
	out := slices.Clone(a.static)
	for _, k := range s {
		if !slices.ContainsFunc(a.static, func(o store.Approval) bool { return o.Identity.Equal(k.Identity) }) {
			out = append(out, k)
		}
	}
	return out, nil
}

// Document returns the signed document for e once it holds threshold signatures.
func (a *Authority) Document(e pki.Epoch) ([]byte, bool, error) {
	c, err := a.cachedDocument(e)
	if err != nil || c == nil || len(c.sd.Signatures) < a.threshold {
		return nil, false, err
	}
	return c.enc, true, nil
}

// Vote returns this authority's vote for e.
func (a *Authority) Vote(e pki.Epoch) ([]byte, bool, error) {
	b, err := a.store.Vote(e)
	return b, b != nil, err
}

// Signature returns this authority's signature on its document for e.
func (a *Authority) Signature(e pki.Epoch) ([]byte, bool, error) {
	c, err := a.cachedDocument(e)
	if err != nil || c == nil {
		return nil, false, err
	}
	for _, s := range c.sd.Signatures {
		if s.Authority.Equal(a.self) {
			return s.Marshal(), true, nil
		}
	}
	return nil, false, nil
}

// docEntry is a stored document, parsed once, with its encoding. Entries are never modified:
// a change makes a new entry (saveDocument), so readers need no lock once they hold one.
type docEntry struct {
	sd  *pki.SignedDocument
	enc []byte
}

// cachedDocument returns the document for e from the cache or the store, or nil.
func (a *Authority) cachedDocument(e pki.Epoch) (*docEntry, error) {
	a.mu.Lock()
	c := a.docs[e]
	a.mu.Unlock()
	if c != nil {
		return c, nil
	}
	b, err := a.store.Document(e)
	if err != nil || b == nil {
		return nil, err
	}
	sd, err := pki.ParseSignedDocument(b)
	if err != nil {
		return nil, fmt.Errorf("stored document for epoch %d: %w", e, err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if c = a.docs[e]; c == nil { // a concurrent saveDocument wins over these older bytes
		c = &docEntry{sd: sd, enc: b}
		a.docs[e] = c
	}
	return c, nil
}

// saveDocument stores sd for e, then serves it.
func (a *Authority) saveDocument(e pki.Epoch, sd *pki.SignedDocument) error {
	enc := sd.Marshal()
	if err := a.store.PutDocument(e, enc); err != nil {
		return err
	}
	a.mu.Lock()
	a.docs[e] = &docEntry{sd: sd, enc: enc}
	a.mu.Unlock()
	return nil
}

// pollInterval is how often Run looks at the schedule and retries peers.
func (a *Authority) pollInterval() time.Duration {
	return min(max(a.clock.Length()/20, 100*time.Millisecond), 5*time.Second)
}

// Run follows the schedule of docs/spec/pki.md section 8 until ctx ends.
func (a *Authority) Run(ctx context.Context) error {
	t := time.NewTicker(a.pollInterval())
	defer t.Stop()
	for {
		if err := a.Step(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("directory step failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step does whatever the schedule asks for now; each action is idempotent, so a restart or a
// repeated tick redoes nothing that is already stored. Run calls it every poll interval; tests
// call it directly with Config.Now set.
func (a *Authority) Step(ctx context.Context) error {
	e, since, err := a.epochNow()
	if err != nil {
		return err
	}
	a.m.epoch.Set(float64(e))
	a.prune(e)
	// The current epoch's document, when a restart or an outage left it unfinished.
	if err := a.complete(ctx, e, true); err != nil {
		return err
	}
	L := a.clock.Length()
	if since < L/4 {
		return nil
	}
	if err := a.makeVote(e + 1); err != nil {
		return err
	}
	return a.complete(ctx, e+1, since >= L/2)
}

// complete moves the document for epoch t along: before it is due, collect peers' votes; when
// due, compute and sign it; then gather peers' signatures, and if it still lacks threshold
// signatures, adopt a peer's document that has them.
func (a *Authority) complete(ctx context.Context, t pki.Epoch, due bool) error {
	c, err := a.cachedDocument(t)
	if err != nil {
		return err
	}
	var sd *pki.SignedDocument
	if c != nil {
		sd = c.sd
	} else {
		own, err := a.store.Vote(t)
		if err != nil {
			return err
		}
		// Without a vote of its own (it was down when votes were made) an authority does not
		// compute: it could only disagree with its peers. It adopts their document instead.
		if own != nil && !a.failed(t) {
			a.fetchVotes(ctx, t)
			if !due {
				return nil
			}
			if sd, err = a.compute(t); err != nil {
				return err
			}
		}
	}
	if !due {
		return nil
	}
	if sd != nil && len(sd.Signatures) < len(a.authorities) {
		sd = a.collectSignatures(ctx, t, sd)
	}
	if sd == nil || len(sd.Signatures) < a.threshold {
		a.adoptPeerDocument(ctx, t)
	}
	return nil
}

// epochNow returns the current epoch and the time since its start.
func (a *Authority) epochNow() (pki.Epoch, time.Duration, error) {
	now := a.now()
	e, err := a.clock.At(now)
	if err != nil {
		return 0, 0, err
	}
	return e, now.Sub(a.clock.Start(e)), nil
}

// CurrentEpoch returns the epoch the authority's clock is in.
func (a *Authority) CurrentEpoch() (pki.Epoch, error) {
	e, _, err := a.epochNow()
	return e, err
}

func (a *Authority) failed(t pki.Epoch) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.failures[t]
	return ok
}

// fail records that epoch t has no document from this authority, loudly.
func (a *Authority) fail(t pki.Epoch, err error) {
	a.mu.Lock()
	a.failures[t] = err.Error()
	a.mu.Unlock()
	a.m.failures.Inc()
	a.log.Error("no consensus document for epoch", "epoch", t, "err", err)
}

// makeVote builds, signs and stores this authority's vote for t, once.
func (a *Authority) makeVote(t pki.Epoch) error {
	if v, err := a.store.Vote(t); err != nil || v != nil {
		return err
	}
	if sd, err := a.store.Document(t); err != nil || sd != nil {
		return err // already computed (without a vote of ours): voting now changes nothing
	}
	all, err := a.store.AllDescriptors()
	if err != nil {
		return err
	}
	best := make(map[keys.IdentityPublicKey]*pki.Descriptor)
	for _, d := range all {
		if _, ok := d.SphinxKey(t); !ok || d.Epoch > t {
			continue
		}
		ap, ok, err := a.approval(d.Identity)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		// Checked again here: the approval may have changed since the upload.
		if err := ap.Permits(d); err != nil {
			a.log.Warn("descriptor left out of the vote: it claims more than the node's approval", "node", d.Identity, "epoch", t, "approved_as", ap.Approval.String(), "reason", err)
			continue
		}
		if cur := best[d.Identity]; cur == nil || d.Epoch > cur.Epoch {
			best[d.Identity] = d
		}
	}
	v := &pki.Vote{Epoch: t, Parameters: a.params}
	for _, d := range best {
		v.Descriptors = append(v.Descriptors, d)
	}
	b, err := v.Sign(a.id)
	if err != nil {
		a.fail(t, fmt.Errorf("making vote: %w", err))
		return nil
	}
	if err := a.store.PutVote(t, b); err != nil {
		return err
	}
	a.log.Info("vote made", "epoch", t, "nodes", len(v.Descriptors))
	return nil
}

// fetchVotes gets the votes of peers not heard from yet for t.
func (a *Authority) fetchVotes(ctx context.Context, t pki.Epoch) {
	var wg sync.WaitGroup
	for _, p := range a.peers {
		a.mu.Lock()
		_, have := a.peerVotes[t][p.Identity]
		a.mu.Unlock()
		if have {
			continue
		}
		wg.Go(func() {
			b, err := a.get(ctx, p, "/v1/vote/", t, pki.MaxDocumentSize)
			if err != nil {
				a.peerError(p, "vote", t, err)
				return
			}
			v, err := pki.ParseVote(b)
			if err == nil && !v.Authority.Equal(p.Identity) {
				err = fmt.Errorf("vote signed by %s, not by the peer's key", v.Authority)
			}
			if err == nil && v.Epoch != t {
				err = fmt.Errorf("vote for epoch %d, asked for %d", v.Epoch, t)
			}
			if err != nil {
				a.peerError(p, "vote", t, err)
				return
			}
			a.mu.Lock()
			if a.peerVotes[t] == nil {
				a.peerVotes[t] = make(map[keys.IdentityPublicKey]*pki.Vote)
			}
			a.peerVotes[t][p.Identity] = v
			a.mu.Unlock()
		})
	}
	wg.Wait()
}

// compute makes, signs and stores the document for t from the votes at hand. It returns nil and
// records a failure when the rules refuse.
func (a *Authority) compute(t pki.Epoch) (*pki.SignedDocument, error) {
	var votes []*pki.Vote
	own, err := a.store.Vote(t)
	if err != nil {
		return nil, err
	}
	if own != nil {
		v, err := pki.ParseVote(own)
		if err != nil {
			return nil, fmt.Errorf("stored vote for epoch %d: %w", t, err)
		}
		votes = append(votes, v)
	}
	a.mu.Lock()
	for _, v := range a.peerVotes[t] {
		votes = append(votes, v)
	}
	a.mu.Unlock()
	doc, err := pki.ComputeDocument(t, a.params, votes, a.authorities, a.threshold)
	var raw []byte
	if err == nil {
		raw, err = doc.Marshal()
	}
	if err != nil {
		a.fail(t, err)
		return nil, nil
	}
	sd := &pki.SignedDocument{Raw: raw, Document: doc}
	if err := sd.AddSignature(pki.SignDocument(raw, a.id)); err != nil {
		return nil, err
	}
	if err := a.saveDocument(t, sd); err != nil {
		return nil, err
	}
	a.m.computed.Inc()
	a.log.Info("document computed and signed", "epoch", t, "votes", len(votes), "nodes", len(doc.Nodes))
	a.logContested(t, votes, doc)
	return sd, nil
}

// logContested warns about mail domains that several nodes of doc claimed in the votes: the
// document gives them to none (docs/spec/pki.md section 7 rule 5), so mail to them waits until
// the operators leave one approval.
func (a *Authority) logContested(t pki.Epoch, votes []*pki.Vote, doc *pki.Document) {
	claimants := make(map[string][]keys.IdentityPublicKey)
	for _, v := range votes {
		for _, d := range v.Descriptors {
			if _, in := doc.Node(d.Identity); !in {
				continue
			}
			for _, dom := range d.Domains {
				if !slices.ContainsFunc(claimants[dom], d.Identity.Equal) {
					claimants[dom] = append(claimants[dom], d.Identity)
				}
			}
		}
	}
	for dom, ids := range claimants {
		if _, ok := doc.Provider(dom); len(ids) > 1 && !ok {
			a.log.Warn("mail domain claimed by several providers: the document gives it to none", "epoch", t, "domain", dom, "claimants", ids)
		}
	}
}

// collectSignatures fetches the peers' signatures missing from sd (this authority's document
// for t), keeps those that verify on its bytes, and stores and returns the document with them.
// sd itself is not changed: it may be the entry HTTP readers are serving.
func (a *Authority) collectSignatures(ctx context.Context, t pki.Epoch, sd *pki.SignedDocument) *pki.SignedDocument {
	var missing []Peer
	for _, p := range a.peers {
		if !slices.ContainsFunc(sd.Signatures, func(s pki.Signature) bool { return s.Authority.Equal(p.Identity) }) {
			missing = append(missing, p)
		}
	}
	got := make([]*pki.Signature, len(missing))
	var wg sync.WaitGroup
	for i, p := range missing {
		wg.Go(func() {
			b, err := a.get(ctx, p, "/v1/signature/", t, pki.SignatureSize)
			if err != nil {
				a.peerError(p, "signature", t, err)
				return
			}
			s, err := pki.ParseSignature(b)
			switch {
			case err != nil:
			case !s.Authority.Equal(p.Identity):
				err = fmt.Errorf("signature by %s, not by the peer's key", s.Authority)
			case !s.Verify(sd.Raw):
				err = errors.New("the peer signed a different document (it saw different votes)")
			}
			if err != nil {
				a.peerError(p, "signature", t, err)
				return
			}
			got[i] = &s
		})
	}
	wg.Wait()
	out := &pki.SignedDocument{Raw: sd.Raw, Document: sd.Document, Signatures: slices.Clone(sd.Signatures)}
	for _, s := range got {
		if s != nil {
			if err := out.AddSignature(*s); err != nil {
				return sd
			}
		}
	}
	if len(out.Signatures) == len(sd.Signatures) {
		return sd
	}
	if err := a.saveDocument(t, out); err != nil {
		a.log.Error("storing signatures", "epoch", t, "err", err)
		return sd
	}
	a.log.Info("signatures collected", "epoch", t, "signatures", len(out.Signatures), "threshold", a.threshold)
	return out
}

// adoptPeerDocument replaces this authority's document for t by a peer's that carries threshold
// valid signatures, so that an authority that computed a different document (it was down or saw
// other votes) still serves the one the network agreed on.
func (a *Authority) adoptPeerDocument(ctx context.Context, t pki.Epoch) {
	for _, p := range a.peers {
		b, err := a.get(ctx, p, "/v1/consensus/", t, pki.MaxDocumentSize)
		if err != nil {
			continue // 404 until the peer has threshold signatures
		}
		sd, err := pki.Verify(b, t, a.authorities, a.threshold)
		if err == nil && !sd.Document.Parameters.Equal(a.params) {
			err = errors.New("its parameters differ from this authority's")
		}
		if err != nil {
			a.peerError(p, "document", t, err)
			continue
		}
		// Keep only the signatures that verify, so what is stored is what Document serves.
		good := &pki.SignedDocument{Raw: sd.Raw, Document: sd.Document}
		for _, s := range sd.Signatures {
			if slices.ContainsFunc(a.authorities, s.Authority.Equal) && s.Verify(sd.Raw) {
				if err := good.AddSignature(s); err != nil {
					return
				}
			}
		}
		if err := a.saveDocument(t, good); err != nil {
			a.log.Error("storing adopted document", "epoch", t, "err", err)
			return
		}
		a.log.Warn("adopted a peer's document: this authority's own differed or lacked signatures", "epoch", t, "peer", p.URL, "signatures", len(good.Signatures))
		return
	}
}

// get fetches base/path/t from a peer, reading at most limit bytes.
func (a *Authority) get(ctx context.Context, p Peer, path string, t pki.Epoch, limit int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+path+strconv.FormatUint(uint64(t), 10), nil)
	if err != nil {
		return nil, err
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return nil, fmt.Errorf("HTTP %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > limit {
		return nil, fmt.Errorf("answer over %d bytes", limit)
	}
	return b, nil
}

func (a *Authority) peerError(p Peer, what string, t pki.Epoch, err error) {
	a.m.peerErrors.WithLabelValues(what).Inc()
	a.log.Debug("peer fetch failed", "peer", p.URL, "what", what, "epoch", t, "err", err)
}

// prune drops state older than it is useful, once per epoch.
func (a *Authority) prune(e pki.Epoch) {
	a.mu.Lock()
	if a.pruned == e {
		a.mu.Unlock()
		return
	}
	a.pruned = e
	for t := range a.peerVotes {
		if t < e {
			delete(a.peerVotes, t)
		}
	}
	for t := range a.failures {
		if t+3 < e {
			delete(a.failures, t)
		}
	}
	for t := range a.docs {
		if t+3 < e {
			delete(a.docs, t)
		}
	}
	a.mu.Unlock()
	if err := a.store.PruneDescriptors(e); err != nil {
		a.log.Error("pruning descriptors", "err", err)
	}
	if e > 3 {
		if err := a.store.PruneEpochs(e - 3); err != nil {
			a.log.Error("pruning documents", "err", err)
		}
	}
}
