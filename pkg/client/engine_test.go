package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/wire"
)

// localNet is a network in the test process: real signed consensus documents served over
// HTTP to a real pki.Client, and the nodes' private Sphinx keys, so that a test can process a
// packet at every hop exactly as the nodes would (sphinx.Unwrap) without running them.
type localNet struct {
	t      testing.TB
	auth   *keys.IdentityPrivateKey
	params pki.Parameters
	nodes  []*localNode
	srv    *httptest.Server

	mu   sync.Mutex
	docs map[pki.Epoch][]byte
}

type localNode struct {
	node pki.Node
	link *keys.LinkPrivateKey
	sk   map[pki.Epoch]*keys.SphinxPrivateKey
}

var allServices = []string{"drop", "loop", "mailbox", "queue"}

// newLocalNet uses a small geometry (2 KiB payloads), or g when given.
func newLocalNet(t testing.TB, g ...sphinx.Geometry) *localNet {
	t.Helper()
	auth, err := keys.GenerateIdentityKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := pki.DefaultParameters()
	p.Geometry = sphinx.Geometry{Hops: 5, PayloadSize: 2048}
	if len(g) > 0 {
		p.Geometry = g[0]
	}
	p.EpochLength = time.Hour
	n := &localNet{t: t, auth: auth, params: p, docs: map[pki.Epoch][]byte{}}
	add := func(role pki.Role, layer uint8, domain string) {
		id, _ := keys.GenerateIdentityKey(rand.Reader)
		link, _ := keys.GenerateLinkKey(rand.Reader)
		nd := &localNode{node: pki.Node{Identity: id.Public(), Link: link.Public(), Role: role, Layer: layer,
			Addresses: []string{fmt.Sprintf("127.0.0.1:%d", 1000+len(n.nodes))}}, link: link, sk: map[pki.Epoch]*keys.SphinxPrivateKey{}}
		if role == pki.RoleProvider {
			nd.node.Domains = []string{domain}
			nd.node.Services = allServices
		}
		n.nodes = append(n.nodes, nd)
	}
	add(pki.RoleProvider, 0, "alpha.example")
	add(pki.RoleProvider, 0, "beta.example")
	for l := uint8(1); l <= 3; l++ {
		add(pki.RoleMix, l, "")
		add(pki.RoleMix, l, "")
	}
	slices.SortFunc(n.nodes, func(a, b *localNode) int { return bytes.Compare(a.node.Identity[:], b.node.Identity[:]) })
	n.srv = httptest.NewServer(http.HandlerFunc(n.serve))
	t.Cleanup(n.srv.Close)
	return n
}

func (n *localNet) document(e pki.Epoch) []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	if b := n.docs[e]; b != nil {
		return b
	}
	doc := &pki.Document{Epoch: e, Parameters: n.params}
	for _, nd := range n.nodes {
		k, ok := nd.sk[e]
		if !ok {
			k, _ = keys.GenerateSphinxKey(rand.Reader)
			nd.sk[e] = k
		}
		node := nd.node
		node.SphinxKeys = []pki.EpochKey{{Epoch: e, Key: k.Public()}}
		doc.Nodes = append(doc.Nodes, node)
	}
	raw, err := doc.Marshal()
	if err != nil {
		n.t.Error(err)
		return nil
	}
	sd := &pki.SignedDocument{Raw: raw, Document: doc}
	sd.AddSignature(pki.SignDocument(raw, n.auth))
	n.docs[e] = sd.Marshal()
	return n.docs[e]
}

func (n *localNet) serve(w http.ResponseWriter, r *http.Request) {
	e, err := strconv.ParseUint(strings.TrimPrefix(r.URL.Path, "/v1/consensus/"), 10, 64)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Write(n.document(pki.Epoch(e)))
}

func (n *localNet) pkiClient() *pki.Client {
	c, err := pki.NewClient(pki.ClientConfig{URLs: []string{n.srv.URL}, Authorities: []keys.IdentityPublicKey{n.auth.Public()},
		Threshold: 1, EpochLength: n.params.EpochLength})
	if err != nil {
		n.t.Fatal(err)
	}
	return c
}

func (n *localNet) key(id sphinx.NodeID, e pki.Epoch) *keys.SphinxPrivateKey {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, nd := range n.nodes {
		if nd.node.Identity == keys.IdentityPublicKey(id) {
			return nd.sk[e]
		}
	}
	return nil
}

// deliver processes pkt at every hop from first on and returns the final hop's result, the
// node it was delivered at and the hops it crossed.
func (n *localNet) deliver(s *sphinx.Sphinx, first sphinx.NodeID, pkt []byte, e pki.Epoch) (*sphinx.Unwrapped, sphinx.NodeID, []sphinx.NodeID) {
	n.t.Helper()
	u, at, path, err := n.tryDeliver(s, first, pkt, e)
	if err != nil {
		n.t.Fatal(err)
	}
	return u, at, path
}

// tryDeliver is deliver for goroutines other than the test's: it returns the error.
func (n *localNet) tryDeliver(s *sphinx.Sphinx, first sphinx.NodeID, pkt []byte, e pki.Epoch) (*sphinx.Unwrapped, sphinx.NodeID, []sphinx.NodeID, error) {
	at := first
	var path []sphinx.NodeID
	for range s.Geometry().Hops {
		path = append(path, at)
		k := n.key(at, e)
		if k == nil {
			return nil, at, path, fmt.Errorf("hop %d: no key for epoch %d", len(path), e)
		}
		u, err := s.Unwrap(k, pkt)
		if err != nil {
			return nil, at, path, fmt.Errorf("hop %d: %w", len(path), err)
		}
		if u.Recipient != nil {
			return u, at, path, nil
		}
		at, pkt = *u.NextHop, u.Packet
	}
	return nil, at, path, errors.New("packet did not reach a final hop")
}

func (n *localNet) engine(dir string, mod func(*Config)) *Engine {
	n.t.Helper()
	lk, _ := keys.GenerateLinkKey(rand.Reader)
	cfg := Config{DataDir: dir, User: "alice", Domain: "alpha.example", LinkKey: lk, PKI: n.pkiClient(), RetryBudget: 3}
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	return e
}

func (n *localNet) view(e *Engine) *view {
	n.t.Helper()
	v, err := e.newView(context.Background())
	if err != nil {
		n.t.Fatal(err)
	}
	return v
}

// mailboxAck is what the mailbox service will do (docs/spec/fragment.md section 3): answer a
// fragment with an ack through the SURB it came with. It returns the reply as the user's
// provider queues it.
func (n *localNet) ackThroughSURB(s *sphinx.Sphinx, surb []byte, data []byte, e pki.Epoch) (*sphinx.Unwrapped, sphinx.NodeID) {
	n.t.Helper()
	g := s.Geometry()
	env, err := service.EncodeEnvelope(g.PayloadSize, g.SURBSize(), nil, data)
	if err != nil {
		n.t.Fatal(err)
	}
	first, pkt, err := s.NewPacketFromSURB(surb, env)
	if err != nil {
		n.t.Fatal(err)
	}
	u, at, _ := n.deliver(s, first, pkt, e)
	if u.SURBID == nil {
		n.t.Fatal("reply arrived without SURB id")
	}
	return u, at
}

// sentFragment is one real packet as the destination service sees it.
type sentFragment struct {
	final *sphinx.Unwrapped
	at    sphinx.NodeID
	path  []sphinx.NodeID
	surb  []byte
	frag  *Fragment
}

// sendOne makes the engine build its next real packet at now, delivers it through the hops and
// parses what the destination service gets.
func (n *localNet) sendOne(e *Engine, v *view, now time.Time) *sentFragment {
	n.t.Helper()
	pkt, real, err := e.realOrDrop(v, now)
	if err != nil {
		n.t.Fatal(err)
	}
	if !real {
		n.t.Fatal("no fragment was due")
	}
	u, at, path := n.deliver(v.sph, sphinx.NodeID(v.self.Identity), pkt, v.doc.Epoch)
	surb, data, err := service.DecodeEnvelope(u.Payload, v.sph.Geometry().SURBSize())
	if err != nil {
		n.t.Fatal(err)
	}
	f, err := ParseFragment(data, FragmentCapacity(v.sph.Geometry()))
	if err != nil {
		n.t.Fatal(err)
	}
	return &sentFragment{final: u, at: at, path: path, surb: bytes.Clone(surb), frag: &Fragment{ID: f.ID, Index: f.Index, Count: f.Count, TotalLength: f.TotalLength, Data: bytes.Clone(f.Data)}}
}

func (n *localNet) nodeByDomain(domain string) sphinx.NodeID {
	for _, nd := range n.nodes {
		if slices.Contains(nd.node.Domains, domain) {
			return sphinx.NodeID(nd.node.Identity)
		}
	}
	n.t.Fatalf("no provider for %s", domain)
	return sphinx.NodeID{}
}

func randomData(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func TestSendRefusals(t *testing.T) {
	n := newLocalNet(t)
	e := n.engine(t.TempDir(), nil)
	defer e.Close()
	ctx := context.Background()
	cases := []struct {
		dst  Destination
		size int
		want error
	}{
		{Destination{Domain: "gamma.example", Recipient: "bob"}, 10, ErrUnknownDomain},
		{Destination{Domain: "beta.example", Recipient: "bob", Service: "vote"}, 10, ErrNoService},
		{Destination{Domain: "beta.example", Recipient: "bob"}, MaxMessageSize(FragmentCapacity(n.params.Geometry)) + 1, ErrTooLarge},
	}
	for _, c := range cases {
		if _, err := e.Send(ctx, c.dst, make([]byte, c.size)); !errors.Is(err, c.want) {
			t.Errorf("%+v: err %v, want %v", c.dst, err, c.want)
		}
	}
	for _, dst := range []Destination{
		{Domain: "beta.example", Recipient: ""},
		{Domain: "beta.example", Recipient: strings.Repeat("x", 65)},
		{Domain: "Beta.example", Recipient: "bob"},
		{Domain: "beta.example", Recipient: "bob", Service: "Bad service"},
	} {
		if _, err := e.Send(ctx, dst, []byte("x")); err == nil {
			t.Errorf("%+v accepted", dst)
		}
	}
	if l, _ := e.List(); len(l) != 0 {
		t.Fatalf("refused messages were queued: %v", l)
	}
	// Exactly at the limit is accepted.
	if _, err := e.Send(ctx, Destination{Domain: "beta.example", Recipient: "bob"}, make([]byte, MaxMessageSize(FragmentCapacity(n.params.Geometry)))); err != nil {
		t.Fatal(err)
	}
}

func TestQueueDurableAcrossReopen(t *testing.T) {
	n := newLocalNet(t)
	dir := t.TempDir()
	e := n.engine(dir, nil)
	capacity := FragmentCapacity(n.params.Geometry)
	data := randomData(2*capacity + 7)
	id, err := e.Send(context.Background(), Destination{Domain: "beta.example", Recipient: "bob"}, data)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := e.Status(id)
	if st.State != StateQueued || st.Fragments != 3 || st.Size != len(data) || st.Destination.Service != "mailbox" {
		t.Fatalf("status %+v", st)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// A second engine on the same directory while the first is open is refused, not blocked.
	e = n.engine(dir, nil)
	if _, err := New(e.cfg); err == nil {
		t.Fatal("two engines opened one data directory")
	}
	st2, err := e.Status(id)
	if err != nil || st2.State != StateQueued || st2.Fragments != 3 || st2.Order != st.Order {
		t.Fatalf("after reopen: %+v %v", st2, err)
	}
	// The fragments themselves survived: sending them yields the message.
	v := n.view(e)
	var got []*Fragment
	for range 3 {
		sf := n.sendOne(e, v, time.Now())
		if sf.frag.ID != id {
			t.Fatalf("fragment of message %s, want %s", sf.frag.ID, id)
		}
		got = append(got, sf.frag)
	}
	joined, err := Join(got)
	if err != nil || !bytes.Equal(joined, data) {
		t.Fatalf("reassembled message differs (%v)", err)
	}
	e.Close()
}

// A message's fragments go out, come back acknowledged through their SURBs (built and
// processed with the real packet format), with the engine closed and reopened between the
// transmission and the ack: the SURB reply keys are durable.
func TestAckPathAcrossRestart(t *testing.T) {
	n := newLocalNet(t)
	dir := t.TempDir()
	e := n.engine(dir, nil)
	capacity := FragmentCapacity(n.params.Geometry)
	id, err := e.Send(context.Background(), Destination{Domain: "beta.example", Recipient: "bob"}, randomData(capacity+1))
	if err != nil {
		t.Fatal(err)
	}
	v := n.view(e)
	beta := n.nodeByDomain("beta.example")
	alpha := n.nodeByDomain("alpha.example")
	var sent []*sentFragment
	for range 2 {
		sf := n.sendOne(e, v, time.Now())
		if sf.at != beta || sf.final.Recipient.Service != "mailbox" || sf.final.Recipient.ID != "bob" || sf.surb == nil {
			t.Fatalf("fragment delivered at %x to %+v", sf.at[:4], sf.final.Recipient)
		}
		if len(sf.path) != 5 || sf.path[0] != alpha {
			t.Fatalf("route of %d hops starting at %x", len(sf.path), sf.path[0][:4])
		}
		sent = append(sent, sf)
	}
	if st, _ := e.Status(id); st.State != StateSending || st.Transmissions != 2 || st.Acknowledged != 0 {
		t.Fatalf("status %+v", st)
	}
	if err := e.Forget(id); !errors.Is(err, ErrNotFinished) {
		t.Fatalf("forgetting a message in flight: %v", err)
	}
	e.Close()
	e = n.engine(dir, nil)
	defer e.Close()
	v = n.view(e)
	for i, sf := range sent {
		ack := &Ack{ID: sf.frag.ID, Index: sf.frag.Index, Status: AckStored}
		u, at := n.ackThroughSURB(v.sph, sf.surb, ack.Marshal(), v.doc.Epoch)
		if at != alpha || u.Recipient.Service != "queue" || u.Recipient.ID != "alice" {
			t.Fatalf("ack delivered at %x to %+v", at[:4], u.Recipient)
		}
		f := &wire.Frame{Cmd: wire.CmdAck, Seq: uint32(10 + i), SURBID: *u.SURBID, Body: u.Payload}
		if err := e.handleItem(v.sph, f, f.Seq+1); err != nil {
			t.Fatal(err)
		}
		// The same reply again (a provider that lost its delete) changes nothing.
		if err := e.handleItem(v.sph, f, f.Seq+1); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := e.Status(id)
	if st.State != StateDelivered || st.Acknowledged != 2 || st.Transmissions != 2 {
		t.Fatalf("status %+v", st)
	}
	ls := e.LinkState()
	if ls.Acks != 2 || ls.UnknownReplies != 2 {
		t.Fatalf("link counters %+v", ls)
	}
	if seq, _ := e.st.seq(); seq != 12 {
		t.Fatalf("next retrieve seq %d, want 12", seq)
	}
	// Nothing is due any more, so the send slot carries a drop packet.
	pkt, real, err := e.realOrDrop(v, time.Now().Add(time.Hour))
	if err != nil || real {
		t.Fatalf("a slot with nothing due: real %v, %v", real, err)
	}
	if u, _, _ := n.deliver(v.sph, alpha, pkt, v.doc.Epoch); u.Recipient.Service != "drop" {
		t.Fatalf("empty slot sent to %+v", u.Recipient)
	}
}

func TestAckStatusFailsMessage(t *testing.T) {
	n := newLocalNet(t)
	e := n.engine(t.TempDir(), nil)
	defer e.Close()
	capacity := FragmentCapacity(n.params.Geometry)
	id, _ := e.Send(context.Background(), Destination{Domain: "beta.example", Recipient: "nobody"}, randomData(capacity+1))
	v := n.view(e)
	sf := n.sendOne(e, v, time.Now())
	ack := &Ack{ID: sf.frag.ID, Index: sf.frag.Index, Status: AckUnknownRecipient}
	u, _ := n.ackThroughSURB(v.sph, sf.surb, ack.Marshal(), v.doc.Epoch)
	if err := e.handleItem(v.sph, &wire.Frame{Cmd: wire.CmdAck, Seq: 1, SURBID: *u.SURBID, Body: u.Payload}, 2); err != nil {
		t.Fatal(err)
	}
	st, _ := e.Status(id)
	if st.State != StateFailed || !strings.Contains(st.Reason, "unknown recipient") {
		t.Fatalf("status %+v", st)
	}
	if err := e.Forget(id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Status(id); !errors.Is(err, ErrUnknownMessage) {
		t.Fatalf("status of a forgotten message: %v", err)
	}
	// A failed message sends nothing more: the slot carries a drop packet.
	if _, real, err := e.realOrDrop(v, time.Now()); err != nil || real {
		t.Fatalf("failed message still sending (%v)", err)
	}
}

// A fragment whose reply is not a valid ack (here the loop service's echo of the fragment) is
// not acknowledged; it is retransmitted after its deadline on a fresh route and SURB with the
// same message id and index, and the message fails after the retry budget.
func TestRetransmissionAndBudget(t *testing.T) {
	n := newLocalNet(t)
	e := n.engine(t.TempDir(), func(c *Config) { c.RetryBudget = 3; c.AckSlack = time.Second })
	defer e.Close()
	id, _ := e.Send(context.Background(), Destination{Domain: "beta.example", Recipient: "echo", Service: "loop"}, []byte("hello"))
	v := n.view(e)
	now := time.Now()
	surbs := map[string]bool{}
	for attempt := 1; attempt <= 3; attempt++ {
		sf := n.sendOne(e, v, now)
		if sf.frag.ID != id || sf.frag.Index != 0 || string(sf.frag.Data) != "hello" {
			t.Fatalf("attempt %d: fragment %+v", attempt, sf.frag)
		}
		if surbs[string(sf.surb)] {
			t.Fatal("a SURB was reused for a retransmission")
		}
		surbs[string(sf.surb)] = true
		// The echo comes back through the SURB: a reply, but not an ack.
		u, _ := n.ackThroughSURB(v.sph, sf.surb, sf.frag.Marshal(), v.doc.Epoch)
		if err := e.handleItem(v.sph, &wire.Frame{Cmd: wire.CmdAck, Seq: uint32(attempt), SURBID: *u.SURBID, Body: u.Payload}, uint32(attempt+1)); err != nil {
			t.Fatal(err)
		}
		st, _ := e.Status(id)
		if st.State != StateSending || st.Transmissions != attempt || st.Acknowledged != 0 {
			t.Fatalf("attempt %d: status %+v", attempt, st)
		}
		// Before the deadline nothing is due; after it, the fragment is.
		if d, _, _ := e.st.nextDue(now.Add(500*time.Millisecond), 3, 0, nil); d != nil {
			t.Fatal("fragment due again before its deadline")
		}
		now = now.Add(time.Second + 2*n.params.MaxDelay*9)
	}
	if got := e.LinkState().BadReplies; got != 3 {
		t.Fatalf("%d bad replies, want 3", got)
	}
	if _, real, err := e.realOrDrop(v, now); err != nil || real {
		t.Fatalf("a fragment past its budget was sent again (%v)", err)
	}
	st, _ := e.Status(id)
	if st.State != StateFailed || st.Transmissions != 3 || !strings.Contains(st.Reason, "after 3 transmissions") {
		t.Fatalf("status %+v", st)
	}
}

func TestQueueServiceNeedsNoAck(t *testing.T) {
	n := newLocalNet(t)
	e := n.engine(t.TempDir(), nil)
	defer e.Close()
	id, _ := e.Send(context.Background(), Destination{Domain: "beta.example", Recipient: "bob", Service: "queue"}, []byte("hi"))
	v := n.view(e)
	sf := n.sendOne(e, v, time.Now())
	if sf.surb != nil {
		t.Fatal("a fragment for the queue service carried a SURB")
	}
	if st, _ := e.Status(id); st.State != StateSent || st.Transmissions != 1 || st.NeedsAck {
		t.Fatalf("status %+v", st)
	}
}

// A program that consumes no queue messages (mailproxy) keeps none: they are acknowledged to
// the provider and discarded, so a flood of them cannot grow the store (issue 13, finding 6).
// One that does keeps at most MaxInbox, received and in reassembly together.
func TestQueueMessagesKeptOnlyByAConsumer(t *testing.T) {
	n := newLocalNet(t)
	capacity := FragmentCapacity(n.params.Geometry)
	for _, tc := range []struct {
		name    string
		receive bool
		want    int
	}{{"no consumer", false, 0}, {"consumer", true, 5}} {
		t.Run(tc.name, func(t *testing.T) {
			e := n.engine(t.TempDir(), func(c *Config) { c.Receive = tc.receive; c.MaxInbox = 5 })
			defer e.Close()
			v := n.view(e)
			seq := uint32(1)
			for i := range 20 {
				fs, _ := Split(MessageID{byte(i)}, randomData(capacity), capacity)
				if err := e.handleItem(v.sph, &wire.Frame{Cmd: wire.CmdMessage, Seq: seq, Body: fs[0].Marshal()}, seq+1); err != nil {
					t.Fatal(err)
				}
				seq++
			}
			if r, err := e.Received(); err != nil || len(r) != tc.want {
				t.Fatalf("%d messages kept (%v), want %d", len(r), err, tc.want)
			}
			if got, _ := e.st.seq(); got != seq {
				t.Fatalf("retrieve position %d, want %d: every item is acknowledged", got, seq)
			}
			if got := e.LinkState().Messages; got != 20 {
				t.Fatalf("%d queue messages counted, want 20", got)
			}
		})
	}
}

// Fragments arriving in the user's queue are reassembled once, whatever their order and
// repetitions; junk is dropped; the number of partial messages is bounded.
func TestReceiveReassembly(t *testing.T) {
	n := newLocalNet(t)
	e := n.engine(t.TempDir(), func(c *Config) { c.MaxPartial = 2; c.Receive = true })
	defer e.Close()
	v := n.view(e)
	capacity := FragmentCapacity(n.params.Geometry)
	data := randomData(3*capacity - 5)
	frags, _ := Split(MessageID{9}, data, capacity)
	seq := uint32(1)
	push := func(body []byte) {
		t.Helper()
		if err := e.handleItem(v.sph, &wire.Frame{Cmd: wire.CmdMessage, Seq: seq, Body: body}, seq+1); err != nil {
			t.Fatal(err)
		}
		seq++
	}
	push(frags[2].Marshal())
	push([]byte("not a fragment"))
	push(frags[0].Marshal())
	push(frags[2].Marshal())
	if r, _ := e.Received(); len(r) != 0 {
		t.Fatal("incomplete message delivered")
	}
	push(frags[1].Marshal())
	push(frags[1].Marshal())
	r, _ := e.Received()
	if len(r) != 1 || r[0].ID != (MessageID{9}) || !bytes.Equal(r[0].Data, data) {
		t.Fatalf("received %d messages", len(r))
	}
	// Limit on partial messages: two may be in progress, a third is dropped.
	for i := byte(0); i < 3; i++ {
		fs, _ := Split(MessageID{20 + i}, make([]byte, 2*capacity), capacity)
		push(fs[0].Marshal())
	}
	for i := byte(0); i < 3; i++ {
		fs, _ := Split(MessageID{20 + i}, make([]byte, 2*capacity), capacity)
		push(fs[1].Marshal())
	}
	all, _ := e.Received()
	var ids []MessageID
	for _, m := range all {
		ids = append(ids, m.ID)
	}
	if want := []MessageID{{9}, {20}, {21}}; !slices.Equal(ids, want) {
		t.Fatalf("received %v, want %v (the third partial message was over the limit)", ids, want)
	}
	// A message over MaxReceiveSize is refused from its first fragment.
	capped := n.engine(t.TempDir(), func(c *Config) { c.MaxReceiveSize = 2 * capacity; c.Receive = true })
	defer capped.Close()
	for i, size := range []int{2 * capacity, 2*capacity + 1} {
		fs, _ := Split(MessageID{30 + byte(i)}, make([]byte, size), capacity)
		for _, f := range fs {
			if err := capped.handleItem(v.sph, &wire.Frame{Cmd: wire.CmdMessage, Seq: 1, Body: f.Marshal()}, 2); err != nil {
				t.Fatal(err)
			}
		}
	}
	if r, _ := capped.Received(); len(r) != 1 || r[0].ID != (MessageID{30}) {
		t.Fatalf("with a limit of %d bytes received %d messages, want only the one at the limit", 2*capacity, len(r))
	}
	if got, _ := e.st.seq(); got != seq {
		t.Fatalf("retrieve position %d, want %d", got, seq)
	}
	if err := e.DeleteReceived(r[0].Seq); err != nil {
		t.Fatal(err)
	}
	if err := e.DeleteReceived(r[0].Seq); !errors.Is(err, ErrUnknownMessage) {
		t.Fatalf("second delete: %v", err)
	}
}

func TestLoopAndDropPackets(t *testing.T) {
	n := newLocalNet(t)
	e := n.engine(t.TempDir(), nil)
	defer e.Close()
	v := n.view(e)
	alpha := n.nodeByDomain("alpha.example")
	for i, tamper := range []bool{false, true} {
		pkt, err := e.loopPacket(v, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		u, _, path := n.deliver(v.sph, alpha, pkt, v.doc.Epoch)
		if u.Recipient.Service != "loop" || len(path) != 5 {
			t.Fatalf("loop delivered to %+v after %d hops", u.Recipient, len(path))
		}
		surb, data, err := service.DecodeEnvelope(u.Payload, v.sph.Geometry().SURBSize())
		if err != nil || len(data) != loopNonceSize || surb == nil {
			t.Fatalf("loop envelope: %v", err)
		}
		echo := bytes.Clone(data)
		if tamper {
			echo[0] ^= 1
		}
		r, at := n.ackThroughSURB(v.sph, surb, echo, v.doc.Epoch)
		if at != alpha {
			t.Fatal("loop echo did not come back to the user's provider")
		}
		if err := e.handleItem(v.sph, &wire.Frame{Cmd: wire.CmdAck, Seq: uint32(i), SURBID: *r.SURBID, Body: r.Payload}, uint32(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if ls := e.LinkState(); ls.LoopsReturned != 1 || ls.BadReplies != 1 {
		t.Fatalf("counters %+v", ls)
	}
	providers := map[sphinx.NodeID]int{}
	for range 40 {
		pkt, err := e.dropPacket(v)
		if err != nil {
			t.Fatal(err)
		}
		u, at, path := n.deliver(v.sph, alpha, pkt, v.doc.Epoch)
		if u.Recipient.Service != "drop" || len(path) != 5 || u.SURBID != nil {
			t.Fatalf("drop delivered to %+v", u.Recipient)
		}
		providers[at]++
	}
	if len(providers) != 2 {
		t.Fatalf("drop packets went to %d providers in 40 tries, want both", len(providers))
	}
}

// Run over a real link (TLS over an in-memory transport) to a provider played by a wire.Server
// that processes every packet through all its hops with the nodes' keys: the link carries
// packets at the rates of the consensus, each exactly one Sphinx packet, the queued
// fragment leaves in one of the lambda_P slots, and the retrieve exchanges run.
func TestRunOverLink(t *testing.T) {
	n := newLocalNet(t)
	n.params.LambdaP, n.params.LambdaL, n.params.LambdaD = 10, 5, 5
	var alpha *localNode
	for _, nd := range n.nodes {
		if slices.Contains(nd.node.Domains, "alpha.example") {
			alpha = nd
		}
	}
	g := n.params.Geometry
	s, _ := sphinx.New(g)
	mem := wire.NewMemTransport()
	var mu sync.Mutex
	kinds := map[string]int{}
	bad := 0
	retrieves := 0
	srv, err := wire.NewServer(wire.ServerConfig{Geometry: g, Key: alpha.link, Transport: mem,
		Authorize: func(keys.LinkPublicKey) error { return nil },
		Handle: func(ctx context.Context, c *wire.Conn) {
			for {
				f, err := c.ReadFrame()
				if err != nil {
					return
				}
				switch f.Cmd {
				case wire.CmdSendPacket:
					if len(f.Body) != g.PacketSize() {
						mu.Lock()
						bad++
						mu.Unlock()
						continue
					}
					// The test may straddle an epoch change (of an hour): try both epochs.
					e := n.currentEpoch()
					u, _, path, err := n.tryDeliver(s, sphinx.NodeID(alpha.node.Identity), bytes.Clone(f.Body), e)
					if err != nil {
						u, _, path, err = n.tryDeliver(s, sphinx.NodeID(alpha.node.Identity), f.Body, e-1)
					}
					mu.Lock()
					if err != nil || len(path) != 5 {
						bad++
					} else {
						kinds[u.Recipient.Service]++
					}
					mu.Unlock()
				case wire.CmdRetrieve:
					mu.Lock()
					retrieves++
					mu.Unlock()
					if err := c.WriteFrame(&wire.Frame{Cmd: wire.CmdEmpty, Seq: f.Seq}); err != nil {
						return
					}
				}
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := mem.Listen(alpha.node.Addresses[0])
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithCancel(context.Background())
	sdone := make(chan struct{})
	go func() { defer close(sdone); srv.Serve(sctx, ln) }()
	defer func() { scancel(); <-sdone }()

	e := n.engine(t.TempDir(), func(c *Config) { c.Transport = mem; c.RetrieveInterval = 50 * time.Millisecond })
	id, err := e.Send(context.Background(), Destination{Domain: "beta.example", Recipient: "bob"}, []byte("over the link"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	const run = 4 * time.Second
	time.Sleep(run)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ls := e.LinkState()
	st, _ := e.Status(id)
	e.Close()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("provider saw %v, %d retrieves; engine %+v", kinds, retrieves, ls)
	if bad != 0 {
		t.Fatalf("%d packets of the wrong size or route length", bad)
	}
	if kinds["mailbox"] != 1 {
		t.Fatalf("%d fragments reached the mailbox service, want 1", kinds["mailbox"])
	}
	if st.Transmissions != 1 || st.State != StateSending {
		t.Fatalf("status %+v", st)
	}
	// Rates: each count within 5 standard deviations of a Poisson mean (the slots' binomial
	// counts vary less) over the link's
	// lifetime (the link comes up within a few milliseconds of Run).
	secs := run.Seconds()
	check := func(name string, got int, rate float64) {
		want := rate * secs
		if math.Abs(float64(got)-want) > 5*math.Sqrt(want)+2 {
			t.Errorf("%s: %d packets in %.0f s, want about %.0f", name, got, secs, want)
		}
	}
	check("lambda_P slots (fragment or drop)", int(ls.RealPackets+ls.SendDrops), 10)
	check("loops", kinds["loop"], 5)
	check("drops", int(ls.Drops), 5)
	// Every packet the engine counted reached the provider, except at most the one or two still
	// in flight on the link when Run was cancelled.
	mismatch := func(sent, seen int) bool { return sent-seen < 0 || sent-seen > 2 }
	if mismatch(int(ls.SendDrops+ls.Drops), kinds["drop"]) || mismatch(int(ls.Loops), kinds["loop"]) {
		t.Fatalf("provider saw %v, engine counted %+v", kinds, ls)
	}
	if retrieves < int(secs/0.05)/2 {
		t.Fatalf("%d retrieve exchanges in %.0f s at 50 ms", retrieves, secs)
	}
}

// currentEpoch is the epoch now (the clock is after the origin, so there is no error).
func (n *localNet) currentEpoch() pki.Epoch {
	c, _ := pki.NewClock(n.params.EpochLength)
	e, _, _ := c.Now()
	return e
}

// Two SendOnce calls with one idempotency key, the engine closed and reopened between them
// (a mailproxy killed before its 250, the mail program resubmitting), queue one message: the
// second returns the first's id and stores nothing. The key outlives nothing but the message:
// after Forget, the key queues a new message. An over-long key is refused.
func TestSendOnceAcrossReopen(t *testing.T) {
	n := newLocalNet(t)
	dir := t.TempDir()
	ctx := context.Background()
	dst := Destination{Domain: "beta.example", Recipient: "bob"}
	key := []byte("alice\x00bob@beta.example\x00<m1@here>")
	e := n.engine(dir, nil)
	id, existed, err := e.SendOnce(ctx, dst, []byte("first"), key)
	if err != nil || existed {
		t.Fatalf("first SendOnce: existed %v, %v", existed, err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = n.engine(dir, nil)
	id2, existed, err := e.SendOnce(ctx, dst, []byte("again, maybe other bytes"), key)
	if err != nil || !existed || id2 != id {
		t.Fatalf("second SendOnce: id %s (first %s), existed %v, %v", id2, id, existed, err)
	}
	list, err := e.List()
	if err != nil || len(list) != 1 {
		t.Fatalf("%d messages queued (%v), want 1", len(list), err)
	}
	other, existed, err := e.SendOnce(ctx, dst, []byte("other"), []byte("another key"))
	if err != nil || existed || other == id {
		t.Fatalf("other key: %s existed %v, %v", other, existed, err)
	}
	if _, _, err := e.SendOnce(ctx, dst, []byte("x"), make([]byte, MaxIdempotencyKey+1)); err == nil {
		t.Fatal("over-long idempotency key accepted")
	}
	// A finished and forgotten message frees its key.
	if err := e.st.failMessage(id, "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := e.Forget(id); err != nil {
		t.Fatal(err)
	}
	id3, existed, err := e.SendOnce(ctx, dst, []byte("first"), key)
	if err != nil || existed || id3 == id {
		t.Fatalf("after Forget: %s existed %v, %v", id3, existed, err)
	}
	e.Close()
}

// A consensus without the destination's provider (provider down for a while) makes its message
// wait, not fail, and does not hold up the message behind it; the message fails only once it
// is older than the queue lifetime. The domain counts as recently seen meanwhile.
func TestProviderAwayWaits(t *testing.T) {
	n := newLocalNet(t)
	e := n.engine(t.TempDir(), func(c *Config) { c.QueueLifetime = time.Hour })
	defer e.Close()
	ctx := context.Background()
	toBeta, err := e.Send(ctx, Destination{Domain: "beta.example", Recipient: "bob"}, []byte("waits"))
	if err != nil {
		t.Fatal(err)
	}
	toAlpha, err := e.Send(ctx, Destination{Domain: "alpha.example", Recipient: "carol"}, []byte("goes"))
	if err != nil {
		t.Fatal(err)
	}
	v := n.view(e)
	doc := *v.doc
	doc.Nodes = slices.DeleteFunc(slices.Clone(doc.Nodes), func(nd pki.Node) bool { return slices.Contains(nd.Domains, "beta.example") })
	away := &view{doc: &doc, sph: v.sph, self: v.self}
	now := time.Now()
	sf := n.sendOne(e, away, now)
	if sf.frag.ID != toAlpha {
		t.Fatalf("sent a fragment of %s, want the alpha message %s first", sf.frag.ID, toAlpha)
	}
	if _, real, err := e.realOrDrop(away, now.Add(time.Second)); err != nil || real {
		t.Fatalf("beta away: real packet %v, %v; want a drop", real, err)
	}
	if st, _ := e.Status(toBeta); st.State != StateQueued {
		t.Fatalf("beta message while beta is away: %+v, want queued", st)
	}
	if last, recent, err := e.DomainSeen("beta.example"); err != nil || !recent || last.IsZero() {
		t.Fatalf("DomainSeen(beta) = %v %v %v, want recent", last, recent, err)
	}
	if _, recent, _ := e.DomainSeen("never.example"); recent {
		t.Fatal("a domain never listed counts as recent")
	}
	// Past the queue lifetime, the message fails.
	e.realOrDrop(away, now.Add(time.Hour+time.Minute))
	st, _ := e.Status(toBeta)
	if st.State != StateFailed || !strings.Contains(st.Reason, "queue lifetime") {
		t.Fatalf("beta message after the queue lifetime: %+v, want failed", st)
	}
}

// The items of one retrieve exchange and the sequence number past them commit in one
// transaction (docs/spec/client.md section 6): when the exchange cannot be applied, none of
// its items took effect and the sequence number stays, so all of them are fetched again and
// applied once; an applied exchange survives a restart with its sequence number.
func TestExchangeCommitsTogether(t *testing.T) {
	n := newLocalNet(t)
	dir := t.TempDir()
	e := n.engine(dir, nil)
	capacity := FragmentCapacity(n.params.Geometry)
	id, err := e.Send(context.Background(), Destination{Domain: "beta.example", Recipient: "bob"}, randomData(2*capacity+1))
	if err != nil {
		t.Fatal(err)
	}
	v := n.view(e)
	var acks []*wire.Frame
	for i := range 3 {
		sf := n.sendOne(e, v, time.Now())
		ack := &Ack{ID: sf.frag.ID, Index: sf.frag.Index, Status: AckStored}
		u, _ := n.ackThroughSURB(v.sph, sf.surb, ack.Marshal(), v.doc.Epoch)
		acks = append(acks, &wire.Frame{Cmd: wire.CmdAck, Seq: uint32(5 + i), SURBID: *u.SURBID, Body: u.Payload})
	}
	// Two ACKs, then an answer no retrieve can bring: the whole exchange is refused.
	bad := append(slices.Clone(acks[:2]), &wire.Frame{Cmd: wire.CmdMail, Seq: 7})
	if err := e.applyItems(v.sph, bad, 8); err == nil {
		t.Fatal("an exchange with a mail frame among the replies applied")
	}
	if st, _ := e.Status(id); st.Acknowledged != 0 {
		t.Fatalf("after the failed exchange: %d fragments acknowledged, want 0", st.Acknowledged)
	}
	if seq, _ := e.st.seq(); seq != 0 {
		t.Fatalf("after the failed exchange: next seq %d, want 0", seq)
	}
	// Fetched again, the first two apply once; the crash-like reopen keeps them and the number.
	if err := e.applyItems(v.sph, acks[:2], 7); err != nil {
		t.Fatal(err)
	}
	e.Close()
	e = n.engine(dir, nil)
	defer e.Close()
	v = n.view(e)
	if st, _ := e.Status(id); st.Acknowledged != 2 || st.State != StateSending {
		t.Fatalf("after the exchange and a reopen: %+v", st)
	}
	if seq, _ := e.st.seq(); seq != 7 {
		t.Fatalf("after the exchange and a reopen: next seq %d, want 7", seq)
	}
	// The last ACK with a repeat of the second (a provider that lost its delete) in one exchange.
	if err := e.applyItems(v.sph, []*wire.Frame{acks[1], acks[2]}, 8); err != nil {
		t.Fatal(err)
	}
	if st, _ := e.Status(id); st.State != StateDelivered || st.Acknowledged != 3 {
		t.Fatalf("after the last exchange: %+v", st)
	}
	if ls := e.LinkState(); ls.Acks != 1 || ls.UnknownReplies != 1 {
		t.Fatalf("link counters after the reopen %+v, want 1 ack and 1 unknown reply", ls)
	}
}

// RetrieveBatch: 0 is the default of one answer per exchange; beyond 1 to wire.MaxRetrieveBatch
// the engine refuses to start, naming the setting.
func TestRetrieveBatchConfig(t *testing.T) {
	n := newLocalNet(t)
	for _, bad := range []int{-1, wire.MaxRetrieveBatch + 1, 1000} {
		lk, _ := keys.GenerateLinkKey(rand.Reader)
		_, err := New(Config{DataDir: t.TempDir(), User: "alice", Domain: "alpha.example", LinkKey: lk, PKI: n.pkiClient(), RetrieveBatch: bad})
		if err == nil || !strings.Contains(err.Error(), "retrieve batch") {
			t.Errorf("RetrieveBatch %d: %v, want an error naming the retrieve batch", bad, err)
		}
	}
	for batch, want := range map[int]int{0: DefaultRetrieveBatch, 1: 1, wire.MaxRetrieveBatch: wire.MaxRetrieveBatch} {
		e := n.engine(t.TempDir(), func(c *Config) { c.RetrieveBatch = batch })
		if e.cfg.RetrieveBatch != want {
			t.Errorf("RetrieveBatch %d became %d, want %d", batch, e.cfg.RetrieveBatch, want)
		}
		e.Close()
	}
}
