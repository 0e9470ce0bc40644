package node

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/mailbox"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/provider"
	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/sealmail"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/wire"
)

// mailNet is a network of three mixes, provider beta (alice's) and provider alpha with the
// real mailbox service over the embedded mail store and the link backend, as mixd builds it:
// bob and carol are alpha's users.
type mailNet struct {
	tn          *testNet
	alpha       *Node
	svc         *mailbox.Service
	mail        *mailstore.Store
	pc          *pki.Client
	doc         *pki.Document
	a, b        *pki.Node // alpha and beta in doc
	s           *sphinx.Sphinx
	keys        map[string]*keys.LinkPrivateKey
	alice       *testClient
	maxTotal    int
	fragmentCap int
}

func newMailNet(t *testing.T) *mailNet {
	tn := newTestNet(t)
	dir := t.TempDir()
	for _, name := range []string{"mix1", "mix2", "mix3"} {
		tn.start(name, "mix", dir+"/"+name)
	}
	beta := tn.start("beta", "provider", dir+"/beta")

	adir := filepath.Join(dir, "alpha")
	ps, err := provider.OpenStore(filepath.Join(t.TempDir(), "provider.db"))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := mailstore.Open(filepath.Join(t.TempDir(), "mail.db"))
	if err != nil {
		t.Fatal(err)
	}
	lb, err := mailbox.NewLinkBackend(mailbox.LinkConfig{Store: ps, ChunkSize: tn.geo.PacketSize(), Next: mailbox.NewStoreBackend(ms)})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := mailbox.New(mailbox.Config{Path: filepath.Join(t.TempDir(), "mailbox.db"), Geometry: tn.geo, Backend: lb, RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last first: these after the node (registered by startWith) has stopped.
	t.Cleanup(func() { ps.Close(); ms.Close(); svc.Close() })
	alpha := tn.startWith("alpha", "provider", adir, Options{Services: []service.Service{svc}, Store: ps})

	mn := &mailNet{tn: tn, alpha: alpha, svc: svc, mail: ms, keys: map[string]*keys.LinkPrivateKey{}, fragmentCap: client.FragmentCapacity(tn.geo), maxTotal: 1 << 30}
	for _, u := range []struct {
		name string
		p    *Node
	}{{"bob", alpha}, {"carol", alpha}, {"alice", beta}} {
		k, _ := keys.GenerateLinkKey(rand.Reader)
		mn.keys[u.name] = k
		if err := u.p.Store().AddUser(provider.User{Name: u.name, LinkKey: k.Public()}); err != nil {
			t.Fatal(err)
		}
		if u.p == alpha {
			if err := ms.CreateUser(u.name, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	mn.pc, _ = pki.NewClient(pki.ClientConfig{URLs: []string{tn.dir.URL}, Authorities: []keys.IdentityPublicKey{tn.auth}, Threshold: 1, EpochLength: tn.params.EpochLength})
	mn.doc = tn.waitDocument(mn.pc, 5)
	mn.a, _ = mn.doc.Node(alpha.Identity())
	mn.b, _ = mn.doc.Node(beta.Identity())
	mn.s, _ = sphinx.New(tn.geo)
	mn.alice = &testClient{t: t, s: mn.s, user: "alice", conn: mn.dial(t, "alice", mn.b), pkic: mn.pc, keys: map[[sphinx.SURBIDSize]byte][]byte{}}
	return mn
}

// dial opens user's client link to the provider p.
func (mn *mailNet) dial(t *testing.T, user string, p *pki.Node) *wire.Conn {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wire.Dial(ctx, wire.DialConfig{Geometry: mn.tn.geo, Key: mn.keys[user], Remote: p.Link, Addr: p.Addresses[0], Transport: mn.tn.mem})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sendMail has alice send msg to user at alpha through the mixnet, fragment by fragment, and
// waits for every fragment's ack, which must say stored.
func (mn *mailNet) sendMail(t *testing.T, user string, msg []byte) {
	var id client.MessageID
	rand.Read(id[:])
	frags, err := client.Split(id, msg, mn.fragmentCap)
	if err != nil {
		t.Fatal(err)
	}
	// The document may have moved on since the network started; take the one of now. On a
	// loaded machine a round of packets can outlast its epoch's keys on the way (all seven
	// ACKs missing, seen with two test packages running): up to three rounds, each with the
	// document of the moment; the mailbox service deduplicates the fragments (same message id
	// and index), and replies to an earlier round are skipped.
	mn.alice.collectRounds(mn.tn, mn.pc, func(doc *pki.Document) map[[sphinx.SURBIDSize]byte]string {
		a, _ := doc.Node(mn.alpha.Identity())
		b, _ := doc.Node(mn.b.Identity)
		want := map[[sphinx.SURBIDSize]byte]string{}
		for _, f := range frags {
			ack := client.Ack{ID: id, Index: f.Index, Status: client.AckStored}
			// Alice's packets enter at her provider (beta) and end at alpha's mailbox service.
			want[mn.alice.sendTo(doc, b, a, sphinx.Recipient{Service: mailbox.Name, ID: user}, f.Marshal())] = string(ack.Marshal())
		}
		return want
	}, 30*time.Second)
}

// retrieveMail sends one retrieve-mail frame and returns the answer.
func retrieveMail(t *testing.T, c *wire.Conn, seq uint32) *wire.Frame {
	t.Helper()
	if err := c.WriteFrame(&wire.Frame{Cmd: wire.CmdRetrieveMail, Seq: seq, QueueHint: 1}); err != nil {
		t.Fatal(err)
	}
	f, err := c.ReadFrameTimeout(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// fetchMails reads the user's mail queue through the link until it holds n complete mails
// (within a deadline), opens each with the user's link key and returns them with the next seq.
func (mn *mailNet) fetchMails(t *testing.T, c *wire.Conn, user string, seq uint32, n int) ([][]byte, uint32) {
	t.Helper()
	var out [][]byte
	var sealed []byte
	deadline := time.Now().Add(30 * time.Second)
	for len(out) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d mails fetched through the link", len(out), n)
		}
		f := retrieveMail(t, c, seq)
		switch f.Cmd {
		case wire.CmdEmpty:
			if f.Seq != seq {
				t.Fatalf("empty answer echoes %d, want %d", f.Seq, seq)
			}
			time.Sleep(50 * time.Millisecond)
			continue
		case wire.CmdMail:
		default:
			t.Fatalf("answer %v to retrieve-mail", f.Cmd)
		}
		if f.Seq < seq {
			t.Fatalf("mail item %d sent for a retrieve-mail from %d", f.Seq, seq)
		}
		seq = f.Seq + 1
		ch, err := sealmail.ParseChunk(f.Body, mn.tn.geo.PacketSize(), mn.maxTotal)
		if err != nil {
			t.Fatal(err)
		}
		if int(ch.Index) != 0 && sealed == nil {
			t.Fatalf("chunk %d of %d without the ones before it", ch.Index, ch.Count)
		}
		sealed = append(sealed, ch.Data...)
		if ch.Index == ch.Count-1 {
			msg, err := sealmail.Open(mn.keys[user], ch.ID, sealed)
			if err != nil {
				t.Fatal(err)
			}
			out, sealed = append(out, msg), nil
		}
	}
	return out, seq
}

func mailMessage(size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: alice@beta.example\r\nTo: bob@alpha.example\r\nSubject: through the link\r\n\r\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "line %06d of a mail that the provider holds only sealed\r\n", i)
	}
	return b.Bytes()
}

// TestMailThroughLink: bob's client reads through the link (issue 20). Its first retrieve-mail
// marks him; a mail alice sends through the mixnet is delivered by the real mailbox service
// into his mail queue, and the chunks bob fetches over the link open with his link key to the
// mail. Carol, whose client never sent a retrieve-mail, still gets her mail in the IMAP store.
func TestMailThroughLink(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a network")
	}
	mn := newMailNet(t)
	bob := mn.dial(t, "bob", mn.a)
	if f := retrieveMail(t, bob, 0); f.Cmd != wire.CmdEmpty || f.Seq != 0 {
		t.Fatalf("first retrieve-mail: %v seq %d, want empty 0", f.Cmd, f.Seq)
	}
	if u, _ := mn.alpha.Store().User("bob"); !u.ReadsViaLink {
		t.Fatal("bob's retrieve-mail was answered before he was marked")
	}
	if u, _ := mn.alpha.Store().User("carol"); u.ReadsViaLink {
		t.Fatal("carol is marked")
	}
	if v := metricValue(t, mn.alpha, "mixd_users_reading_via_link", nil); v != 1 {
		t.Fatalf("mixd_users_reading_via_link = %v, want 1", v)
	}

	msg := mailMessage(6 * mn.fragmentCap)
	mn.sendMail(t, "bob", msg)
	got, seq := mn.fetchMails(t, bob, "bob", 0, 1)
	if !bytes.Equal(got[0], msg) {
		t.Fatal("the mail bob opened differs from the one alice sent")
	}
	if f := retrieveMail(t, bob, seq); f.Cmd != wire.CmdEmpty || f.Seq != seq {
		t.Fatalf("after the last chunk: %v seq %d, want empty %d", f.Cmd, f.Seq, seq)
	}
	if v := metricValue(t, mn.alpha, "mixd_mail_items_served_total", nil); v != float64(seq-1) {
		t.Fatalf("mixd_mail_items_served_total = %v, want %d", v, seq-1)
	}
	if snap, err := mn.mail.Snapshot("bob", mailstore.Inbox); err != nil || len(snap.Messages) != 0 {
		t.Fatalf("bob's IMAP INBOX holds %d messages (%v), want none", len(snap.Messages), err)
	}
	// Bob's plain retrieve is unchanged: his queue of replies is empty.
	if err := bob.WriteFrame(&wire.Frame{Cmd: wire.CmdRetrieve, Seq: 0, QueueHint: 1}); err != nil {
		t.Fatal(err)
	}
	if f, err := bob.ReadFrameTimeout(10 * time.Second); err != nil || f.Cmd != wire.CmdEmpty {
		t.Fatalf("plain retrieve: %v %v, want empty", f, err)
	}

	carolMsg := mailMessage(2 * mn.fragmentCap)
	mn.sendMail(t, "carol", carolMsg)
	deadline := time.Now().Add(30 * time.Second)
	for {
		snap, err := mn.mail.Snapshot("carol", mailstore.Inbox)
		if err != nil {
			t.Fatal(err)
		}
		if len(snap.Messages) == 1 {
			msgs, err := mn.mail.Read("carol", mailstore.Inbox, []uint32{snap.Messages[0].UID}, true, 1<<30)
			if err != nil || !bytes.Equal(msgs[0].Body, carolMsg) {
				t.Fatalf("carol's mail in the IMAP store is not the one sent (%v)", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("carol's mail never reached the IMAP store")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n, _ := mn.alpha.Store().MailQueueLen("carol"); n != 0 {
		t.Fatalf("carol's mail queue holds %d items", n)
	}
}

// noSURB is a Replier for a sender that gives no SURB (its fragments are not acknowledged).
type noSURB struct{}

func (noSURB) CanReply() bool                      { return false }
func (noSURB) Reply(context.Context, []byte) error { return fmt.Errorf("no SURB") }

// TestMailFloodKeepsRepliesApart is an attack test: anyone can send bob mail up to his quota,
// so mallory fills his mail queue with hundreds of chunks; a reply that reaches bob's queue
// after them is still what his next plain retrieve gets, and the flood is still fetched whole
// through the link afterwards (the two queues are apart, wire.md section 7.1).
func TestMailFloodKeepsRepliesApart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a network")
	}
	mn := newMailNet(t)
	bob := mn.dial(t, "bob", mn.a)
	if f := retrieveMail(t, bob, 0); f.Cmd != wire.CmdEmpty {
		t.Fatalf("first retrieve-mail: %v", f.Cmd)
	}
	// Mallory's fragments go straight to the real mailbox service, as they would arrive from
	// the mixnet's last hop.
	const flood = 3
	var floodMsgs [][]byte
	for i := range flood {
		msg := mailMessage(100 * mn.tn.geo.PacketSize())
		floodMsgs = append(floodMsgs, msg)
		var id client.MessageID
		id[0] = byte(i + 1)
		frags, err := client.Split(id, msg, mn.fragmentCap)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frags {
			if err := mn.svc.Deliver(context.Background(), &service.Request{Recipient: "bob", Data: f.Marshal()}, noSURB{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	var queued int
	for queued < flood*100 {
		if time.Now().After(deadline) {
			t.Fatalf("%d chunks in bob's mail queue, want at least %d", queued, flood*100)
		}
		time.Sleep(50 * time.Millisecond)
		queued, _ = mn.alpha.Store().MailQueueLen("bob")
	}

	c := &testClient{t: t, s: mn.s, user: "bob", conn: bob, pkic: mn.pc, keys: map[[sphinx.SURBIDSize]byte][]byte{}}
	// Up to three rounds, each with the document of the moment: on a loaded machine a loop can
	// outlast its epoch's keys on the way (seen in CI with two test packages running).
	rounds := 0
	c.collectRounds(mn.tn, mn.pc, func(doc *pki.Document) map[[sphinx.SURBIDSize]byte]string {
		rounds++
		a, _ := doc.Node(mn.alpha.Identity())
		b, _ := doc.Node(mn.b.Identity)
		return map[[sphinx.SURBIDSize]byte]string{c.sendLoop(doc, a, b, []byte("behind the flood")): "behind the flood"}
	}, 30*time.Second)
	// One plain retrieve per answer: bob's reply queue holds the loops' replies and none of
	// the flood, so the reply that ended the collection is at most item number rounds.
	if c.seq < 2 || int(c.seq-1) > rounds {
		t.Fatalf("the reply was item %d of bob's queue after %d rounds, want at most %d", c.seq-1, rounds, rounds)
	}
	got, _ := mn.fetchMails(t, bob, "bob", 0, flood)
	for i := range got {
		if !bytes.Equal(got[i], floodMsgs[i]) {
			t.Fatalf("flood mail %d differs", i)
		}
	}
}
