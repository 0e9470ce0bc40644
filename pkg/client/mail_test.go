package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/sealmail"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/wire"
)

// mailProvider is the user's provider as the engine sees it over the link: an empty reply queue
// and a mail queue of chunks, both read by the rules of docs/spec/wire.md sections 7 and 7.1
// (a retrieve with s deletes the items below s and is answered with the first item at or after
// s, or empty).
type mailProvider struct {
	t   *testing.T
	mem wire.Transport

	mu        sync.Mutex
	queue     []mailItem
	nextSeq   uint32
	cmds      []wire.Command // the command of every retrieve exchange, in order
	mailAsked int
}

type mailItem struct {
	seq  uint32
	body []byte
}

func newMailProvider(t *testing.T, n *localNet) *mailProvider {
	t.Helper()
	var self *localNode
	for _, nd := range n.nodes {
		if slices.Contains(nd.node.Domains, "alpha.example") {
			self = nd
		}
	}
	p := &mailProvider{t: t, mem: wire.NewMemTransport()}
	srv, err := wire.NewServer(wire.ServerConfig{Geometry: n.params.Geometry, Key: self.link, Transport: p.mem,
		Authorize: func(keys.LinkPublicKey) error { return nil },
		Handle: func(ctx context.Context, c *wire.Conn) {
			for {
				f, err := c.ReadFrame()
				if err != nil {
					return
				}
				var ans []*wire.Frame
				switch f.Cmd {
				case wire.CmdRetrieve:
					p.mu.Lock()
					p.cmds = append(p.cmds, f.Cmd)
					p.mu.Unlock()
				case wire.CmdRetrieveMail:
					ans = p.retrieveMail(f.Seq, int(f.QueueHint))
				default:
					continue
				}
				for len(ans) < int(f.QueueHint) {
					ans = append(ans, &wire.Frame{Cmd: wire.CmdEmpty, Seq: f.Seq})
				}
				if err := c.WriteFrames(ans); err != nil {
					return
				}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := p.mem.Listen(self.node.Addresses[0])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return p
}

// retrieveMail answers a retrieve-mail (s, k) with up to k chunks (the caller adds the empty
// answers).
func (p *mailProvider) retrieveMail(s uint32, k int) []*wire.Frame {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cmds = append(p.cmds, wire.CmdRetrieveMail)
	p.mailAsked++
	p.queue = slices.DeleteFunc(p.queue, func(it mailItem) bool { return it.seq < s })
	var ans []*wire.Frame
	for i, it := range p.queue[:min(k, len(p.queue))] {
		ans = append(ans, &wire.Frame{Cmd: wire.CmdMail, Seq: it.seq, QueueHint: uint32(len(p.queue) - 1 - i), Body: it.body})
	}
	return ans
}

// enqueue seals msg to the user's link key and queues its chunks, as the provider's mailbox
// service does (docs/spec/services.md section 6.3).
func (p *mailProvider) enqueue(to keys.LinkPublicKey, id sealmail.ID, msg []byte, g sphinx.Geometry) int {
	p.t.Helper()
	sealed, err := sealmail.Seal(to, id, msg)
	if err != nil {
		p.t.Fatal(err)
	}
	chunks, err := sealmail.Split(id, sealed, g.PacketSize())
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range chunks {
		p.queue = append(p.queue, mailItem{seq: p.nextSeq, body: c})
		p.nextSeq++
	}
	return len(chunks)
}

// drained reports whether every chunk was deleted: the engine's retrieve-mail moved past it.
func (p *mailProvider) drained() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue) == 0
}

// mailSink is a ReadMail that keeps what it is given, counting each id, and fails while fail
// says so.
type mailSink struct {
	mu    sync.Mutex
	got   map[sealmail.ID][]byte
	calls map[sealmail.ID]int
	fail  func(id sealmail.ID, call int) error
}

func newMailSink(fail func(sealmail.ID, int) error) *mailSink {
	return &mailSink{got: map[sealmail.ID][]byte{}, calls: map[sealmail.ID]int{}, fail: fail}
}

func (s *mailSink) read(ctx context.Context, id sealmail.ID, msg []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[id]++
	if s.fail != nil {
		if err := s.fail(id, s.calls[id]); err != nil {
			return err
		}
	}
	if _, ok := s.got[id]; ok {
		return errors.New("test: mail handed over twice")
	}
	s.got[id] = bytes.Clone(msg)
	return nil
}

func (s *mailSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// runEngine runs e until the returned stop is called.
func runEngine(t *testing.T, e *Engine) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// Mail the provider holds comes through the link intact, each mail handed over once, a failing
// ReadMail only delays it, and the provider's queue ends empty (docs/spec/client.md section 7.1).
func TestMailThroughLink(t *testing.T) {
	for _, batch := range []int{1, 4} {
		t.Run(fmt.Sprintf("batch %d", batch), func(t *testing.T) { testMailThroughLink(t, batch) })
	}
}

func testMailThroughLink(t *testing.T, batch int) {
	n := newLocalNet(t)
	p := newMailProvider(t, n)
	g := n.params.Geometry
	sink := newMailSink(func(id sealmail.ID, call int) error {
		if id == (sealmail.ID{2}) && call == 1 {
			return errors.New("mailbox briefly unavailable")
		}
		return nil
	})
	e := n.engine(t.TempDir(), func(c *Config) {
		c.Transport = p.mem
		c.RetrieveInterval = 5 * time.Millisecond
		c.RetrieveBatch = batch
		c.ReadMail = sink.read
	})
	defer e.Close()
	mails := map[sealmail.ID][]byte{{1}: []byte("Subject: short\r\n\r\nhello\r\n"), {2}: randomData(6 * g.PacketSize())}
	chunks := 0
	for _, id := range []sealmail.ID{{1}, {2}} {
		chunks += p.enqueue(e.cfg.LinkKey.Public(), id, mails[id], g)
	}
	if chunks < 7 {
		t.Fatalf("%d chunks: the test wants a mail of several", chunks)
	}
	stop := runEngine(t, e)
	waitFor(t, "both mails and an empty provider queue", 30*time.Second, func() bool { return sink.count() == 2 && p.drained() })
	stop()
	for id, want := range mails {
		if !bytes.Equal(sink.got[id], want) {
			t.Fatalf("mail %x: %d bytes handed over, want the %d sent", id[:1], len(sink.got[id]), len(want))
		}
	}
	if sink.calls[sealmail.ID{2}] != 2 {
		t.Fatalf("ReadMail called %d times for the mail it refused once, want 2", sink.calls[sealmail.ID{2}])
	}
	ls := e.LinkState()
	if ls.MailReceived != 2 || ls.MailChunks != uint64(chunks) || ls.MailBad != 0 {
		t.Fatalf("counters %+v, want 2 mails of %d chunks, none bad", ls, chunks)
	}
	if ms, err := e.MailState(); err != nil || ms.Partial || ms.Waiting != 0 {
		t.Fatalf("mail state %+v (%v): want nothing held", ms, err)
	}
	if r, _ := e.st.readyMails(); len(r) != 0 {
		t.Fatalf("%d mails left in the store", len(r))
	}
}

// Without ReadMail the engine never asks the mail queue (the provider then keeps delivering the
// user's mail to IMAP, services.md section 6.1).
func TestNoMailWithoutReadMail(t *testing.T) {
	n := newLocalNet(t)
	p := newMailProvider(t, n)
	e := n.engine(t.TempDir(), func(c *Config) { c.Transport = p.mem; c.RetrieveInterval = 5 * time.Millisecond })
	defer e.Close()
	stop := runEngine(t, e)
	waitFor(t, "50 retrieve exchanges", 30*time.Second, func() bool { return e.LinkState().Retrieves >= 50 })
	stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mailAsked != 0 {
		t.Fatalf("%d retrieve-mail exchanges without ReadMail", p.mailAsked)
	}
}

// A mail survives the engine's stop in the middle of its chunks, and a complete mail that
// ReadMail could not take survives a restart; each is handed over once.
func TestMailAcrossRestart(t *testing.T) {
	for _, batch := range []int{1, 4} {
		t.Run(fmt.Sprintf("batch %d", batch), func(t *testing.T) { testMailAcrossRestart(t, batch) })
	}
}

func testMailAcrossRestart(t *testing.T, batch int) {
	n := newLocalNet(t)
	p := newMailProvider(t, n)
	g := n.params.Geometry
	dir := t.TempDir()
	lk, _ := keys.GenerateLinkKey(rand.Reader)
	refuse := newMailSink(func(sealmail.ID, int) error { return errors.New("disk full") })
	cfg := func(read func(context.Context, sealmail.ID, []byte) error) func(*Config) {
		return func(c *Config) {
			c.Transport, c.LinkKey, c.ReadMail = p.mem, lk, read
			c.RetrieveInterval = 20 * time.Millisecond
			c.RetrieveBatch = batch
		}
	}
	big, small := randomData(20*g.PacketSize()), []byte("Subject: second\r\n\r\nafter the big one\r\n")
	p.enqueue(lk.Public(), sealmail.ID{7}, big, g)
	p.enqueue(lk.Public(), sealmail.ID{8}, small, g)

	e := n.engine(dir, cfg(refuse.read))
	stop := runEngine(t, e)
	waitFor(t, "a few chunks of the first mail", 30*time.Second, func() bool {
		ms, _ := e.MailState()
		return ms.Partial && ms.Have >= 3
	})
	stop()
	e.Close()

	// The second run takes the first mail complete but cannot hand it over.
	e = n.engine(dir, cfg(refuse.read))
	stop = runEngine(t, e)
	waitFor(t, "the first mail complete and refused", 30*time.Second, func() bool {
		ms, _ := e.MailState()
		return ms.Waiting >= 1 && len(refuse.calls) > 0
	})
	stop()
	e.Close()

	sink := newMailSink(nil)
	e = n.engine(dir, cfg(sink.read))
	defer e.Close()
	stop = runEngine(t, e)
	waitFor(t, "both mails", 30*time.Second, func() bool { return sink.count() == 2 && p.drained() })
	stop()
	if !bytes.Equal(sink.got[sealmail.ID{7}], big) || !bytes.Equal(sink.got[sealmail.ID{8}], small) {
		t.Fatal("a mail changed across the restarts")
	}
	for id, c := range sink.calls {
		if c != 1 {
			t.Fatalf("mail %x handed over %d times", id[:1], c)
		}
	}
}

// Chunks that break their mail's order, its format or the size limit, and mails that do not open
// with the user's key, are dropped and counted; the retrieve-mail position moves past each.
func TestMailBadChunks(t *testing.T) {
	n := newLocalNet(t)
	sink := newMailSink(nil)
	const limit = 4096
	e := n.engine(t.TempDir(), func(c *Config) { c.ReadMail = sink.read; c.MaxMailSize = limit })
	defer e.Close()
	v := n.view(e)
	P := v.sph.Geometry().PacketSize()
	chunksOf := func(to keys.LinkPublicKey, id sealmail.ID, msg []byte) [][]byte {
		sealed, err := sealmail.Seal(to, id, msg)
		if err != nil {
			t.Fatal(err)
		}
		cs, err := sealmail.Split(id, sealed, P)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	pub := e.cfg.LinkKey.Public()
	a := chunksOf(pub, sealmail.ID{0xa}, randomData(3*P))
	b := chunksOf(pub, sealmail.ID{0xb}, randomData(limit))
	seq := uint32(0)
	push := func(body []byte) {
		t.Helper()
		if err := e.handleMail(v.sph, &wire.Frame{Cmd: wire.CmdMail, Seq: seq, Body: body}, seq+1); err != nil {
			t.Fatal(err)
		}
		seq++
	}
	bad := func(want uint64) {
		t.Helper()
		if got := e.LinkState().MailBad; got != want {
			t.Fatalf("%d bad chunks or mails counted, want %d", got, want)
		}
	}
	push(a[0])
	push(b[0]) // another mail while a is partial: a is dropped
	bad(1)
	push(a[1]) // continues nothing
	bad(2)
	push([]byte("not a chunk"))
	bad(3)
	for _, c := range b[1:] {
		push(c)
	}
	push(b[len(b)-1]) // a repeat of a complete mail's chunk: ignored
	bad(3)
	over := chunksOf(pub, sealmail.ID{0xc}, randomData(limit+1))
	push(over[0]) // over MaxMailSize
	bad(4)
	other, _ := keys.GenerateLinkKey(rand.Reader)
	for _, c := range chunksOf(other.Public(), sealmail.ID{0xd}, []byte("sealed to someone else")) {
		push(c)
	}
	if got, _ := e.st.mailSeq(); got != seq {
		t.Fatalf("retrieve-mail position %d, want %d: every chunk is acknowledged", got, seq)
	}
	ready, _ := e.st.readyMails()
	if !slices.Equal(ready, []sealmail.ID{{0xb}, {0xd}}) {
		t.Fatalf("complete mails %x, want b and d", ready)
	}
	for _, id := range ready {
		e.deliverMail(context.Background(), id)
	}
	bad(5) // d does not open
	if sink.count() != 1 || sink.got[sealmail.ID{0xb}] == nil {
		t.Fatalf("handed over %d mails, want only b", sink.count())
	}
	if ms, _ := e.MailState(); ms.Waiting != 0 || ms.Partial {
		t.Fatalf("mail state %+v: want nothing held", ms)
	}
}

// The retrieve policy (docs/spec/client.md section 6): the reply queue first while it has
// something; otherwise two exchanges of three ask the mail queue.
func TestRetrievePolicy(t *testing.T) {
	yes := func() bool { return true }
	empty := &wire.Frame{Cmd: wire.CmdEmpty}
	off := retrievePolicy{}
	for range 10 {
		if off.next(yes) != wire.CmdRetrieve {
			t.Fatal("retrieve-mail without ReadMail")
		}
	}
	p := retrievePolicy{mail: true}
	var got []wire.Command
	for range 30 {
		c := p.next(yes)
		p.answered(c, []*wire.Frame{empty})
		got = append(got, c)
	}
	mail, gap, maxGap := 0, 0, 0
	for _, c := range got {
		if c == wire.CmdRetrieveMail {
			mail++
			gap++
			maxGap = max(maxGap, gap)
		} else {
			gap = 0
		}
	}
	if mail != 20 || maxGap > 2 {
		t.Fatalf("idle: %d of 30 exchanges asked the mail queue (want 20), up to %d in a row (want at most 2)", mail, maxGap)
	}
	// A reply queue with a hint > 0 (or an item) keeps every exchange until it is empty.
	p.answered(wire.CmdRetrieve, []*wire.Frame{{Cmd: wire.CmdEmpty, QueueHint: 3}})
	for range 5 {
		c := p.next(yes)
		if c != wire.CmdRetrieve {
			t.Fatal("mail asked while the reply queue had items")
		}
		p.answered(c, []*wire.Frame{{Cmd: wire.CmdAck, QueueHint: 1}})
	}
	// A batch: an item among the answers keeps the reply queue first; only empties free it.
	p.answered(wire.CmdRetrieve, []*wire.Frame{{Cmd: wire.CmdAck}, empty, empty})
	if p.next(yes) != wire.CmdRetrieve {
		t.Fatal("mail asked after a batch that held a reply")
	}
	p.answered(wire.CmdRetrieve, []*wire.Frame{empty, empty, empty})
	c1, c2 := p.next(yes), p.next(yes)
	if c1 != wire.CmdRetrieveMail && c2 != wire.CmdRetrieveMail {
		t.Fatal("mail never asked after the reply queue emptied")
	}
	// No room for more mail: the exchange asks the reply queue.
	for range 6 {
		if p.next(func() bool { return false }) != wire.CmdRetrieve {
			t.Fatal("mail asked while too many complete mails wait")
		}
	}
}
