package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/panoramix-mixnet/panoramix/internal/adminauth"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/config"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/provider"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/replay"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/wire"
)

// Options are what New needs besides the configuration.
type Options struct {
	Logger *slog.Logger
	// Transport carries the links; TCP when nil.
	Transport wire.Transport
	// Services are the provider's services besides the built-in loop service. A service that
	// also has a Run(ctx) error method is run for the node's lifetime.
	Services []service.Service
	// Registry receives the node's metrics; a new one when nil.
	Registry *prometheus.Registry
	// Accounts, on a provider with an embedded mailbox store, keeps mail accounts in step with
	// the provider's users (created, removed, password set through the admin API).
	Accounts Accounts
	// Store is the provider's user database when the caller opened it, to share it with the
	// mailbox service (which holds mail for users who read it through the link); New opens
	// data_dir/provider.db when nil. The node closes only a store it opened.
	Store *provider.Store
}

// Accounts are the mail accounts beside the provider's users.
type Accounts interface {
	CreateUser(name string, quotaBytes int64) error
	DeleteUser(name string) error
	SetPassword(name, password string) error
}

// Node is one running mixd.
type Node struct {
	cfg        *config.Config
	log        *slog.Logger
	serviceLog *logLimiter // "service failed" lines
	role       pki.Role
	transport  wire.Transport
	geometry   sphinx.Geometry
	sph        *sphinx.Sphinx
	clock      pki.Clock
	grace      time.Duration

	identity *keys.IdentityPrivateKey
	link     *keys.LinkPrivateKey
	ekeys    *epochKeys
	pkic     *pki.Client
	follow   *follower

	// Provider only.
	store    *provider.Store
	ownStore bool // opened by New, closed by Run
	qw       *queueWriter
	// viaLink caches the users known to be marked as reading mail through the link, so that
	// a retrieve-mail costs no write once its user is marked. Marking and clearing hold
	// viaLinkMu for writing, so that the cache never says marked when the store does not.
	viaLinkMu sync.RWMutex
	viaLink   map[string]bool
	services  map[string]service.Service
	accounts  Accounts
	// adminToken guards the admin API (nil when the node serves none).
	adminToken *adminauth.Token

	in    chan inbound
	bufs  sync.Pool // of *[]byte, wire.FrameSize bytes: the read buffers of the packets
	sched *scheduler[*job]
	due   chan *job

	peersMu sync.Mutex
	peers   map[keys.IdentityPublicKey]*peerLink

	limitsMu sync.Mutex
	limits   map[string]*tokenBucket

	reg *prometheus.Registry
	m   metrics

	ready chan struct{} // closed once the listener is up
	addr  net.Addr
}

type inbound struct {
	pkt  []byte
	user string  // the client user that sent it, on a provider
	buf  *[]byte // the pooled read buffer pkt lies in, or nil
}

type job struct {
	u      *sphinx.Unwrapped
	filter *replay.Filter
	seq    replay.Seq
	buf    *[]byte // the pooled buffer u.Packet lies in, or nil
}

// A packet stays in the buffer it was read into from its link until it leaves: Unwrap works in
// place and Peer.Send copies it into the outgoing link's own buffer, so that forwarding
// allocates no 17 KB per packet (issue 17: that allocation and its copy were a fifth of the
// node's CPU time under load). Whoever holds the buffer last puts it back; a final hop's
// buffer is left to the garbage collector, since its payload may be kept (queues, services).
func (n *Node) getBuf() *[]byte { return n.bufs.Get().(*[]byte) }

func (n *Node) putBuf(b *[]byte) {
	if b != nil {
		n.bufs.Put(b)
	}
}

type peerLink struct {
	peer   *wire.Peer
	link   keys.LinkPublicKey
	addr   string
	cancel context.CancelFunc
}

// DefaultGrace is the longest a node keeps using the previous epoch's key after a boundary.
func graceFor(epochLength time.Duration) time.Duration {
	g := 60 * time.Second
	if half := epochLength / 2; half < g {
		g = half
	}
	return g
}

// New loads or creates the node's keys and opens its stores. It does not start anything.
func New(cfg *config.Config, opts Options) (*Node, error) {
	role, err := cfg.RoleValue()
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := opts.Transport
	if tr == nil {
		tr = wire.TCP
	}
	g := cfg.Geometry()
	sph, err := sphinx.New(g)
	if err != nil {
		return nil, err
	}
	clock, err := pki.NewClock(cfg.Directory.EpochLength)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	identity, link, err := LoadOrCreateKeys(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	pcfg, err := cfg.Directory.ClientConfig(log)
	if err != nil {
		return nil, err
	}
	pkic, err := pki.NewClient(pcfg)
	if err != nil {
		return nil, err
	}
	grace := graceFor(cfg.Directory.EpochLength)
	capacity := uint64(cfg.MaxPacketRate) * uint64((cfg.Directory.EpochLength+grace).Seconds()+1)
	ek, err := newEpochKeys(filepath.Join(cfg.DataDir, "epochs"), clock, grace, capacity)
	if err != nil {
		return nil, err
	}
	n := &Node{
		serviceLog: newLogLimiter(time.Second),
		cfg:        cfg, log: log, role: role, transport: tr, geometry: g, sph: sph, clock: clock, grace: grace,
		identity: identity, link: link, ekeys: ek, pkic: pkic, follow: newFollower(pkic, g.Hash(), log),
		services: map[string]service.Service{},
		in:       make(chan inbound, 4096),
		sched:    newScheduler[*job](1 << 18),
		due:      make(chan *job, 1024),
		peers:    map[keys.IdentityPublicKey]*peerLink{},
		limits:   map[string]*tokenBucket{},
		reg:      opts.Registry,
		ready:    make(chan struct{}),
	}
	if n.reg == nil {
		n.reg = prometheus.NewRegistry()
	}
	frameSize := wire.FrameSize(g)
	n.bufs.New = func() any { b := make([]byte, frameSize); return &b }
	n.m = newMetrics(n.reg, n.sched.Len)
	n.accounts = opts.Accounts
	if role == pki.RoleProvider {
		n.store, n.viaLink = opts.Store, map[string]bool{}
		if n.store == nil {
			if n.store, err = provider.OpenStore(filepath.Join(cfg.DataDir, "provider.db")); err != nil {
				return nil, err
			}
			n.ownStore = true
		}
		n.m.registerProvider(n.reg, n.usersViaLink)
		n.qw = newQueueWriter(n.reg)
		if cfg.AdminAddress != "" {
			if n.adminToken, err = adminauth.LoadOrCreate(cfg.AdminTokenPath()); err != nil {
				return nil, fmt.Errorf("admin_token_file: %w", err)
			}
		}
		for _, s := range append([]service.Service{service.Loop{}}, opts.Services...) {
			if !service.NamePattern.MatchString(s.Name()) || s.Name() == queueService || s.Name() == dropService {
				return nil, fmt.Errorf("service name %q is not allowed", s.Name())
			}
			n.services[s.Name()] = s
		}
	}
	return n, nil
}

// Built-in services (docs/spec/services.md section 2): queue puts data into a user's queue;
// drop discards the payload (the destination of clients' drop cover traffic).
const (
	queueService = "queue"
	dropService  = "drop"
)

// LoadOrCreateKeys returns the node's identity and link keys from dataDir, creating them on
// first start.
func LoadOrCreateKeys(dataDir string) (*keys.IdentityPrivateKey, *keys.LinkPrivateKey, error) {
	idPath, linkPath := filepath.Join(dataDir, "identity.key"), filepath.Join(dataDir, "link.key")
	id, err := keys.LoadIdentityKey(idPath)
	if errors.Is(err, fs.ErrNotExist) {
		if id, err = keys.GenerateIdentityKey(rand.Reader); err == nil {
			err = keys.SaveIdentityKey(idPath, id)
		}
	}
	if err != nil {
		return nil, nil, err
	}
	link, err := keys.LoadLinkKey(linkPath)
	if errors.Is(err, fs.ErrNotExist) {
		if link, err = keys.GenerateLinkKey(rand.Reader); err == nil {
			err = keys.SaveLinkKey(linkPath, link)
		}
	}
	if err != nil {
		id.Wipe()
		return nil, nil, err
	}
	return id, link, nil
}

// Identity is the node's identity public key (its node ID).
func (n *Node) Identity() keys.IdentityPublicKey { return n.identity.Public() }

// LinkKey is the node's link public key.
func (n *Node) LinkKey() keys.LinkPublicKey { return n.link.Public() }

// Store is the provider's user store (nil on a mix).
func (n *Node) Store() *provider.Store { return n.store }

// Registry is the node's metrics registry.
func (n *Node) Registry() *prometheus.Registry { return n.reg }

// Run starts everything and returns when ctx is cancelled (nil) or a component fails.
func (n *Node) Run(ctx context.Context) error {
	defer n.close()
	if _, err := n.ekeys.update(time.Now()); err != nil {
		return err
	}
	ln, err := n.transport.Listen(n.cfg.ListenAddress)
	if err != nil {
		return fmt.Errorf("listen_address %s: %w", n.cfg.ListenAddress, err)
	}
	n.addr = ln.Addr()
	srv, err := wire.NewServer(wire.ServerConfig{
		Geometry: n.geometry, Key: n.link, Authorize: n.authorize, Handle: n.handle,
		Logger: n.log, Transport: n.transport,
	})
	if err != nil {
		ln.Close()
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	goRun := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	goRun("links", func() error { return srv.Serve(ctx, ln) })
	goRun("consensus", func() error { n.follow.Run(ctx, n.pollInterval()); return nil })
	goRun("epochs", func() error { return n.epochLoop(ctx) })
	goRun("scheduler", func() error {
		left := n.sched.Run(ctx, n.due)
		n.m.dropped.WithLabelValues("shutdown").Add(float64(len(left)))
		return nil
	})
	workers := runtime.GOMAXPROCS(0)
	for range workers {
		goRun("unwrap", func() error { n.unwrapLoop(ctx); return nil })
	}
	deliver := make(chan *sphinx.Unwrapped, 1024)
	goRun("dispatch", func() error { n.dispatchLoop(ctx, deliver); return nil })
	var delivering sync.WaitGroup
	for range 2 * workers {
		delivering.Add(1)
		goRun("deliver", func() error { defer delivering.Done(); n.deliverLoop(ctx, deliver); return nil })
	}
	if n.qw != nil {
		goRun("queue writer", func() error { n.enqueueLoop(ctx, delivering.Wait); return nil })
	}
	if n.role == pki.RoleMix {
		goRun("cover", func() error { n.coverLoop(ctx); return nil })
	}
	for name, svc := range n.services {
		if r, ok := svc.(interface{ Run(context.Context) error }); ok {
			goRun("service "+name, func() error { return r.Run(ctx) })
		}
	}
	if n.cfg.MetricsAddress != "" {
		goRun("metrics", func() error { return serveHTTP(ctx, n.cfg.MetricsAddress, n.metricsHandler()) })
	}
	if n.store != nil && n.cfg.AdminAddress != "" {
		goRun("admin", func() error { return serveHTTP(ctx, n.cfg.AdminAddress, n.adminHandler()) })
	}
	close(n.ready)
	n.log.Info("mixd running", "role", n.role, "identity", n.Identity(), "listen", n.addr, "geometry", n.geometry)
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		n.log.Error("mixd stopping", "err", runErr)
	}
	cancel()
	wg.Wait()
	n.stopPeers()
	return runErr
}

// Addr is the listener's address once Run has started it.
func (n *Node) Addr(ctx context.Context) (net.Addr, error) {
	select {
	case <-n.ready:
		return n.addr, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (n *Node) pollInterval() time.Duration {
	d := n.clock.Length() / 10
	return min(max(d, 200*time.Millisecond), 10*time.Second)
}

func (n *Node) close() {
	if err := n.ekeys.close(); err != nil {
		n.log.Error("closing replay filters", "err", err)
	}
	if n.ownStore {
		n.store.Close()
	}
	n.identity.Wipe()
	n.link.Wipe()
}

// epochLoop rotates Sphinx keys and publishes the descriptor: at start, at every epoch
// boundary, and again shortly after a failed upload.
func (n *Node) epochLoop(ctx context.Context) error {
	published := pki.Epoch(math.MaxUint64)
	for {
		now := time.Now()
		cur, err := n.clock.At(now)
		if err != nil {
			return err
		}
		ek, err := n.ekeys.update(now)
		if err != nil {
			return fmt.Errorf("epoch keys: %w", err)
		}
		wait := n.clock.End(cur).Sub(now)
		if published != cur {
			if err := n.publish(ctx, cur, ek); err != nil {
				n.log.Warn("descriptor upload failed; retrying", "epoch", cur, "err", err)
				wait = min(wait, n.pollInterval())
			} else {
				published = cur
				n.log.Info("descriptor published", "epoch", cur)
			}
		}
		// Wake again after one and two grace periods, to erase the previous key and then its
		// replay filter.
		for _, g := range []time.Duration{n.grace, 2 * n.grace} {
			if d := n.clock.Start(cur).Add(g).Sub(now); d > 0 && d < wait {
				wait = d
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait + 5*time.Millisecond):
		}
	}
}

func (n *Node) descriptor(e pki.Epoch, ek []pki.EpochKey) (*pki.Descriptor, error) {
	d := &pki.Descriptor{
		Epoch: e, Identity: n.identity.Public(), Link: n.link.Public(), Role: n.role,
		Addresses:  append([]string(nil), n.cfg.PublishedAddresses()...),
		SphinxKeys: ek,
	}
	sort.Strings(d.Addresses)
	if n.role == pki.RoleProvider {
		d.Domains = append([]string(nil), n.cfg.Provider.Domains...)
		sort.Strings(d.Domains)
		d.Services = []string{dropService, queueService}
		for name := range n.services {
			d.Services = append(d.Services, name)
		}
		sort.Strings(d.Services)
	}
	return d, d.Sign(n.identity)
}

func (n *Node) publish(ctx context.Context, e pki.Epoch, ek []pki.EpochKey) error {
	d, err := n.descriptor(e, ek)
	if err != nil {
		return err
	}
	body, err := d.Marshal()
	if err != nil {
		return err
	}
	var errs []error
	ok := 0
	for _, u := range n.cfg.Directory.URLs {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		req, err := http.NewRequestWithContext(rctx, http.MethodPost, u+"/v1/descriptor", bytes.NewReader(body))
		if err != nil {
			cancel()
			return err
		}
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		msg := readSmall(resp)
		if resp.StatusCode != http.StatusOK {
			errs = append(errs, fmt.Errorf("%s: %s: %s", u, resp.Status, msg))
			continue
		}
		ok++
	}
	if ok == 0 {
		return errors.Join(errs...)
	}
	return nil
}

func readSmall(resp *http.Response) string {
	defer resp.Body.Close()
	var b [512]byte
	k, _ := resp.Body.Read(b[:])
	return string(bytes.TrimSpace(b[:k]))
}

// authorize admits nodes of the consensus and, on a provider, its users.
func (n *Node) authorize(k keys.LinkPublicKey) error {
	if n.follow.view().links[k] {
		return nil
	}
	if n.store != nil {
		if _, err := n.store.UserByLinkKey(k); err == nil {
			return nil
		}
	}
	return errors.New("link key is neither a node of the consensus nor a user")
}

// handle serves one authenticated link.
func (n *Node) handle(ctx context.Context, c *wire.Conn) {
	var user string
	if !n.follow.view().links[c.Peer()] && n.store != nil {
		u, err := n.store.UserByLinkKey(c.Peer())
		if err != nil {
			return
		}
		user = u.Name
	}
	received := n.m.received.WithLabelValues("node")
	if user != "" {
		received = n.m.received.WithLabelValues("client")
	}
	for {
		buf := n.getBuf()
		f, err := c.ReadFrameInto(*buf)
		if err != nil {
			n.putBuf(buf)
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				n.log.Debug("link closed", "peer", c.Peer(), "err", err)
			}
			return
		}
		if f.Cmd != wire.CmdSendPacket {
			// Only a packet's body is kept past this frame.
			n.putBuf(buf)
		}
		switch f.Cmd {
		case wire.CmdSendPacket:
			if user != "" && !n.allow(user) {
				n.putBuf(buf)
				n.m.dropped.WithLabelValues("rate_limit").Inc()
				continue
			}
			received.Inc()
			// Block this link (and only this link) while the unwrap workers are busy: TCP
			// pushes back on the sender, whose own queue then decides what to drop.
			select {
			case n.in <- inbound{pkt: f.Body, user: user, buf: buf}:
			case <-ctx.Done():
				n.putBuf(buf)
				return
			}
		case wire.CmdRetrieve:
			if user == "" {
				return // only clients retrieve
			}
			if err := n.answerRetrieve(c, user, f.Seq, int(f.QueueHint)); err != nil {
				n.log.Warn("retrieve failed", "user", user, "err", err)
				return
			}
		case wire.CmdRetrieveMail:
			if user == "" {
				return // only clients retrieve
			}
			if err := n.markViaLink(user); err != nil {
				n.log.Warn("cannot mark the user as reading mail through the link", "user", user, "err", err)
				return
			}
			if err := n.answerRetrieveMail(c, user, f.Seq, int(f.QueueHint)); err != nil {
				n.log.Warn("retrieve-mail failed", "user", user, "err", err)
				return
			}
		case wire.CmdNoOp:
		case wire.CmdDisconnect:
			return
		default:
			n.log.Debug("unexpected frame", "peer", c.Peer(), "cmd", f.Cmd)
			return
		}
	}
}

// markViaLink marks user, durably, as one whose client reads its mail through the link
// (docs/spec/services.md section 6.1) before the first retrieve-mail is answered: from then on
// the mailbox service holds the user's mail for the client.
func (n *Node) markViaLink(user string) error {
	n.viaLinkMu.RLock()
	marked := n.viaLink[user]
	n.viaLinkMu.RUnlock()
	if marked {
		return nil
	}
	n.viaLinkMu.Lock()
	defer n.viaLinkMu.Unlock()
	if err := n.store.SetReadsViaLink(user, true); err != nil {
		return err
	}
	n.viaLink[user] = true
	return nil
}

// clearViaLink clears the mark (the operator's way back to IMAP delivery) and forgets it, so
// that a client that still sends retrieve-mail marks the user again.
func (n *Node) clearViaLink(user string) error {
	n.viaLinkMu.Lock()
	defer n.viaLinkMu.Unlock()
	delete(n.viaLink, user)
	return n.store.SetReadsViaLink(user, false)
}

// forgetViaLink drops a removed user from the cache.
func (n *Node) forgetViaLink(user string) {
	n.viaLinkMu.Lock()
	defer n.viaLinkMu.Unlock()
	delete(n.viaLink, user)
}

// usersViaLink counts the users marked as reading mail through the link (for the metric).
func (n *Node) usersViaLink() int {
	users, err := n.store.Users()
	if err != nil {
		return 0
	}
	count := 0
	for _, u := range users {
		if u.ReadsViaLink {
			count++
		}
	}
	return count
}

func (n *Node) unwrapLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case in := <-n.in:
			n.process(in)
		}
	}
}

// process unwraps one packet with the epoch keys it may be for, checks its replay tag and
// schedules it.
func (n *Node) process(in inbound) {
	if !n.schedule(in) {
		n.putBuf(in.buf)
	}
}

// schedule is process; false means the packet was dropped and its buffer is free.
func (n *Node) schedule(in inbound) bool {
	now := time.Now()
	tid := traceIn(in.pkt)
	for _, ek := range n.ekeys.candidates(now) {
		var u *sphinx.Unwrapped
		var err error
		if !ek.unwrapWith(func(k *keys.SphinxPrivateKey) { u, err = n.sph.Unwrap(k, in.pkt) }) {
			continue
		}
		if errors.Is(err, sphinx.ErrHeaderMAC) {
			continue // maybe the next candidate key; Unwrap left the packet unchanged
		}
		if err != nil {
			n.m.unwrapErrors.WithLabelValues(errorReason(err)).Inc()
			n.log.Debug("unwrap failed", "err", err)
			return false
		}
		// The sender picks the delay; the node holds the packet in memory for that long. A
		// delay above the consensus's maximum (docs/spec/pki.md section 3) comes from no
		// honest sender and would fill the scheduler with packets held for up to 49 days.
		delay := time.Duration(u.DelayMS) * time.Millisecond
		if delay > n.maxDelay(ek.epoch) {
			n.m.dropped.WithLabelValues("delay_too_long").Inc()
			n.log.Debug("packet dropped: delay above the maximum", "delay", delay, "epoch", ek.epoch)
			return false
		}
		fresh, seq, err := ek.filter.AddSeq(replay.Tag(u.ReplayTag))
		if err != nil {
			n.m.dropped.WithLabelValues("replay_filter_add").Inc()
			n.log.Error("replay filter", "epoch", ek.epoch, "err", err)
			return false
		}
		if !fresh {
			n.m.replayHits.Inc()
			return false
		}
		n.traceReceive(now, tid, in.user != "", u)
		if !n.sched.Push(now.Add(delay), &job{u: u, filter: ek.filter, seq: seq, buf: in.buf}) {
			n.m.dropped.WithLabelValues("queue_full").Inc()
			return false
		}
		return true
	}
	n.m.unwrapErrors.WithLabelValues("header_mac").Inc()
	return false
}

// specMaxDelay is the largest max_delay_ms a consensus may carry (docs/spec/pki.md section 3).
const specMaxDelay = 600 * time.Second

// maxDelay is the longest per-hop delay a packet for epoch e's key may ask for: the maximum of
// that epoch's document (with which the sender built the packet), or the spec's bound when the
// node does not have that document.
func (n *Node) maxDelay(e pki.Epoch) time.Duration {
	if d := n.follow.view().docs[e]; d != nil {
		return d.Parameters.MaxDelay
	}
	return specMaxDelay
}

func errorReason(err error) string {
	for _, c := range []struct {
		err    error
		reason string
	}{{sphinx.ErrLength, "length"}, {sphinx.ErrGroupElement, "group_element"}, {sphinx.ErrCommands, "commands"}, {sphinx.ErrPayloadTag, "payload_tag"}} {
		if errors.Is(err, c.err) {
			return c.reason
		}
	}
	return "other"
}

// dispatchLoop takes due packets in batches, waits once per replay filter until the batch's
// replay tags are on disk (one group fsync, so durability costs no per-packet latency), then
// forwards them and hands final hops to the delivery workers. Never act on a packet whose replay
// tag a crash could make the node forget.
func (n *Node) dispatchLoop(ctx context.Context, deliver chan<- *sphinx.Unwrapped) {
	var batch []*job
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			return
		case j := <-n.due:
			batch = append(batch, j)
		}
	drain:
		for len(batch) < 1024 {
			select {
			case j := <-n.due:
				batch = append(batch, j)
			default:
				break drain
			}
		}
		upto := map[*replay.Filter]replay.Seq{}
		for _, j := range batch {
			upto[j.filter] = max(upto[j.filter], j.seq)
		}
		failed := map[*replay.Filter]bool{}
		for f, seq := range upto {
			if err := f.WaitDurable(ctx, seq); err != nil {
				if ctx.Err() != nil {
					return
				}
				failed[f] = true
				n.log.Error("replay filter not durable; packets dropped", "err", err)
			}
		}
		for _, j := range batch {
			switch {
			case failed[j.filter]:
				n.m.dropped.WithLabelValues("replay_filter_sync").Inc()
				n.putBuf(j.buf)
			case j.u.NextHop != nil:
				n.traceEmit(j.u)
				n.forward(ctx, keys.IdentityPublicKey(*j.u.NextHop), j.u.Packet, j.buf)
			default:
				select {
				case deliver <- j.u:
				case <-ctx.Done():
					return
				}
			}
		}
	}
}

func (n *Node) deliverLoop(ctx context.Context, deliver <-chan *sphinx.Unwrapped) {
	for {
		select {
		case <-ctx.Done():
			return
		case u := <-deliver:
			n.deliver(ctx, u)
		}
	}
}

// forward sends a packet to a node, or back into this node's own pipeline. buf is the pooled
// buffer pkt lies in (nil if none); forward takes it over.
func (n *Node) forward(ctx context.Context, id keys.IdentityPublicKey, pkt []byte, buf *[]byte) {
	if id == n.identity.Public() {
		select {
		case n.in <- inbound{pkt: pkt, buf: buf}:
			n.m.forwarded.Inc()
		default:
			n.putBuf(buf)
			n.m.dropped.WithLabelValues("overload").Inc()
		}
		return
	}
	defer n.putBuf(buf) // Send copies pkt
	p := n.peer(ctx, id)
	if p == nil {
		n.m.dropped.WithLabelValues("unknown_next_hop").Inc()
		return
	}
	if !p.Send(&wire.Frame{Cmd: wire.CmdSendPacket, Body: pkt}) {
		n.m.dropped.WithLabelValues("peer_queue").Inc()
		return
	}
	n.m.forwarded.Inc()
}

// peer returns the outgoing link to a node of the consensus, starting it on first use and
// restarting it when the node's link key or address changed.
func (n *Node) peer(ctx context.Context, id keys.IdentityPublicKey) *wire.Peer {
	nd, ok := n.follow.view().node(id)
	if !ok || len(nd.Addresses) == 0 {
		return nil
	}
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	if pl := n.peers[id]; pl != nil {
		if pl.link == nd.Link && pl.addr == nd.Addresses[0] {
			return pl.peer
		}
		pl.cancel()
		delete(n.peers, id)
	}
	p, err := wire.NewPeer(wire.PeerConfig{Geometry: n.geometry, Key: n.link, Remote: nd.Link, Addr: nd.Addresses[0], QueueLen: 4096, Transport: n.transport, Logger: n.log})
	if err != nil {
		n.log.Error("peer", "node", id, "err", err)
		return nil
	}
	pctx, cancel := context.WithCancel(ctx)
	n.peers[id] = &peerLink{peer: p, link: nd.Link, addr: nd.Addresses[0], cancel: cancel}
	go func() {
		if err := p.Run(pctx); err != nil && pctx.Err() == nil {
			n.log.Warn("peer link stopped", "node", id, "err", err)
		}
	}()
	return p
}

func (n *Node) stopPeers() {
	n.peersMu.Lock()
	defer n.peersMu.Unlock()
	for id, pl := range n.peers {
		pl.cancel()
		delete(n.peers, id)
	}
}

// deliver handles a final hop (docs/spec/services.md section 2).
func (n *Node) deliver(ctx context.Context, u *sphinx.Unwrapped) {
	n.traceDeliver(u)
	r := u.Recipient
	if n.role == pki.RoleMix {
		if r.Service == service.LoopName && r.ID == mixLoopID {
			n.m.loopsReceived.Inc()
			return
		}
		n.m.dropped.WithLabelValues("final_hop_at_mix").Inc()
		return
	}
	switch {
	case u.SURBID != nil:
		n.enqueue(ctx, r.ID, &provider.Item{Kind: provider.ItemReply, SURBID: *u.SURBID, Body: u.Payload}, "reply")
	case r.Service == dropService:
		n.m.delivered.WithLabelValues(dropService).Inc()
	case r.Service == queueService:
		_, data, err := service.DecodeEnvelope(u.Payload, n.geometry.SURBSize())
		if err != nil {
			n.m.serviceErrors.WithLabelValues(queueService).Inc()
			return
		}
		n.enqueue(ctx, r.ID, &provider.Item{Kind: provider.ItemMessage, Body: data}, queueService)
	default:
		svc := n.services[r.Service]
		if svc == nil {
			n.m.dropped.WithLabelValues("unknown_service").Inc()
			return
		}
		surb, data, err := service.DecodeEnvelope(u.Payload, n.geometry.SURBSize())
		if err != nil {
			n.m.serviceErrors.WithLabelValues(r.Service).Inc()
			return
		}
		rp := &replier{n: n, surb: surb}
		if err := svc.Deliver(ctx, &service.Request{Recipient: r.ID, Data: data}, rp); err != nil {
			n.m.serviceErrors.WithLabelValues(r.Service).Inc()
			// Anyone can send packets that a service refuses: at most a line a second per
			// service, the metric counts them all.
			if ok, held := n.serviceLog.allow(r.Service, time.Now()); ok {
				n.log.Warn("service failed", "service", r.Service, "err", err, "similar_lines_held_back", held)
			}
			return
		}
		n.m.delivered.WithLabelValues(r.Service).Inc()
	}
}

func errorKind(err error) string {
	switch {
	case errors.Is(err, provider.ErrUnknownUser):
		return "unknown_user"
	case errors.Is(err, provider.ErrQueueFull):
		return "full"
	}
	return "error"
}

// replier answers a service request through its SURB, once.
type replier struct {
	n    *Node
	surb []byte
	used bool
}

func (r *replier) CanReply() bool { return r.surb != nil }

func (r *replier) Reply(ctx context.Context, data []byte) error {
	if r.surb == nil {
		return errors.New("request carried no SURB")
	}
	if r.used {
		return errors.New("SURB already used")
	}
	env, err := service.EncodeEnvelope(r.n.geometry.PayloadSize, r.n.geometry.SURBSize(), nil, data)
	if err != nil {
		return err
	}
	first, pkt, err := r.n.sph.NewPacketFromSURB(r.surb, env)
	if err != nil {
		return err
	}
	r.used = true
	r.n.traceOut(traceReply, pkt)
	r.n.forward(ctx, keys.IdentityPublicKey(first), pkt, nil)
	return nil
}

// mixLoopID is the recipient id of a mix's own loop packets.
const mixLoopID = "mix"

// coverLoop sends the mix's loop cover traffic: Poisson at lambda_M, each packet through one
// mix of every other layer and back to this mix.
func (n *Node) coverLoop(ctx context.Context) {
	for {
		v := n.follow.view()
		doc := v.current()
		wait := time.Second
		if doc != nil && doc.Parameters.LambdaM > 0 {
			wait = time.Duration(mrand.ExpFloat64() / doc.Parameters.LambdaM * float64(time.Second))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if doc == nil {
			continue
		}
		if err := n.sendLoop(ctx, doc); err != nil {
			n.log.Debug("mix loop not sent", "err", err)
		}
	}
}

func (n *Node) sendLoop(ctx context.Context, doc *pki.Document) error {
	self, ok := doc.Node(n.identity.Public())
	if !ok || self.Layer == 0 {
		return errors.New("this mix is not in the current document")
	}
	var route []sphinx.Hop
	mean := doc.Parameters.MeanDelay
	for i := 1; i < pki.Layers; i++ {
		l := uint8((int(self.Layer)-1+i)%pki.Layers + 1)
		mixes := doc.Layer(l)
		if len(mixes) == 0 {
			return fmt.Errorf("layer %d is empty", l)
		}
		m := mixes[mrand.IntN(len(mixes))]
		hop, err := hopFor(&m, doc, mean)
		if err != nil {
			return err
		}
		route = append(route, hop)
	}
	hop, err := hopFor(self, doc, mean)
	if err != nil {
		return err
	}
	route = append(route, hop)
	env, _ := service.EncodeEnvelope(n.geometry.PayloadSize, n.geometry.SURBSize(), nil, nil)
	pkt, err := n.sph.NewPacket(rand.Reader, route, sphinx.Recipient{Service: service.LoopName, ID: mixLoopID}, env)
	if err != nil {
		return err
	}
	n.m.loopsSent.Inc()
	n.traceOut(traceMade, pkt)
	n.forward(ctx, keys.IdentityPublicKey(route[0].ID), pkt, nil)
	return nil
}

// hopFor makes a route hop with an exponential delay (capped at the maximum).
func hopFor(nd *pki.Node, doc *pki.Document, mean time.Duration) (sphinx.Hop, error) {
	k, ok := nd.SphinxKey(doc.Epoch)
	if !ok {
		return sphinx.Hop{}, fmt.Errorf("node %s has no key for epoch %d", nd.Identity, doc.Epoch)
	}
	d := time.Duration(mrand.ExpFloat64() * float64(mean))
	d = min(d, doc.Parameters.MaxDelay)
	return sphinx.Hop{ID: sphinx.NodeID(nd.Identity), PublicKey: k, DelayMS: uint32(d / time.Millisecond)}, nil
}

func serveHTTP(ctx context.Context, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (n *Node) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(n.reg, promhttp.HandlerOpts{}))
	return mux
}
