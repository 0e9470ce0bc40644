package mailbox

import (
	"bytes"
	"crypto/rand"
	"path/filepath"
	"testing"

	"github.com/panoramix-mixnet/panoramix/internal/mailstore"
	"github.com/panoramix-mixnet/panoramix/mixd/internal/provider"
	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/sealmail"
)

// linkSetup is a provider with the embedded mail store and the link backend in front of it:
// bob and tiny (a quota of 1000 bytes in both stores) read through the link, carol does not.
type linkSetup struct {
	mail    *mailstore.Store
	prov    *provider.Store
	backend *LinkBackend
	keys    map[string]*keys.LinkPrivateKey
}

var testChunkSize = testGeometry.PacketSize()

func newLinkSetup(t *testing.T) *linkSetup {
	t.Helper()
	st := newMailstore(t)
	if err := st.CreateUser("carol", 0); err != nil {
		t.Fatal(err)
	}
	ps, err := provider.OpenStore(filepath.Join(t.TempDir(), "provider.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ps.Close() })
	ls := &linkSetup{mail: st, prov: ps, keys: map[string]*keys.LinkPrivateKey{}}
	for _, u := range []provider.User{{Name: "bob"}, {Name: "tiny", QuotaBytes: 1000}, {Name: "carol"}} {
		k, err := keys.GenerateLinkKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ls.keys[u.Name] = k
		u.LinkKey = k.Public()
		if err := ps.AddUser(u); err != nil {
			t.Fatal(err)
		}
		if u.Name != "carol" {
			if err := ps.SetReadsViaLink(u.Name, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ls.backend, err = NewLinkBackend(LinkConfig{Store: ps, ChunkSize: testChunkSize, Next: NewStoreBackend(st)}); err != nil {
		t.Fatal(err)
	}
	return ls
}

// heldMail reads the user's mail queue to its end and opens every mail in it with the user's
// link key, in the order queued.
func (ls *linkSetup) heldMail(t *testing.T, user string) [][]byte {
	t.Helper()
	var out [][]byte
	var sealed []byte
	var from uint64
	for {
		it, _, err := ls.prov.FetchMail(user, from)
		if err != nil {
			t.Fatal(err)
		}
		if it == nil {
			if sealed != nil {
				t.Fatal("the mail queue ends inside a mail")
			}
			return out
		}
		from = it.Seq + 1
		c, err := sealmail.ParseChunk(it.Chunk, testChunkSize, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		sealed = append(sealed, c.Data...)
		if c.Index == c.Count-1 {
			msg, err := sealmail.Open(ls.keys[user], c.ID, sealed)
			if err != nil {
				t.Fatal(err)
			}
			out, sealed = append(out, msg), nil
		}
	}
}

// Mail for a user who reads through the link is sealed to the user's key and held in the mail
// queue; a user who does not still gets it in the IMAP store.
func TestLinkUserMailHeld(t *testing.T) {
	ls := newLinkSetup(t)
	s := newService(t, testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), ls.backend))
	msgs := map[string][]byte{"bob": testMessage(t, 5*testCapacity), "carol": testMessage(t, 2*testCapacity)}
	for user, msg := range msgs {
		for _, f := range fragments(t, newID(t), msg) {
			sendStored(t, s, user, f)
		}
	}
	stop := run(t, s)
	waitFor(t, "delivery", func() bool { return metricValue(s.m.delivered) == 2 })
	stop()
	if got := ls.heldMail(t, "bob"); len(got) != 1 || !bytes.Equal(got[0], msgs["bob"]) {
		t.Fatalf("bob's mail queue holds %d mails, want his one, intact", len(got))
	}
	if got := inbox(t, ls.mail, "bob"); len(got) != 0 {
		t.Fatalf("%d mails for bob in the IMAP store", len(got))
	}
	if got := inbox(t, ls.mail, "carol"); len(got) != 1 || !bytes.Equal(got[0], msgs["carol"]) {
		t.Fatalf("carol's INBOX holds %d mails, want hers, intact", len(got))
	}
	if n, _ := ls.prov.MailQueueLen("carol"); n != 0 {
		t.Fatalf("carol's mail queue holds %d items", n)
	}
	// A user neither store knows is unknown; one only the provider knows, with the mark, exists.
	if ok, err := ls.backend.UserExists(t.Context(), "nobody"); ok || err != nil {
		t.Fatalf("unknown user exists: %v %v", ok, err)
	}
	if err := ls.mail.DeleteUser("bob"); err != nil {
		t.Fatal(err)
	}
	if ok, err := ls.backend.UserExists(t.Context(), "bob"); !ok || err != nil {
		t.Fatalf("link user without an IMAP account: exists %v %v", ok, err)
	}
}

// A crash between the mail queue's commit and the service's record of the delivery queues the
// mail once (the delivery key is the mail's id).
func TestLinkCrashBetweenQueueAndBookkeeping(t *testing.T) {
	ls := newLinkSetup(t)
	cfg := testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), ls.backend)
	s := newService(t, cfg)
	id := newID(t)
	msg := testMessage(t, 3*testCapacity)
	for _, f := range fragments(t, id, msg) {
		sendStored(t, s, "bob", f)
	}
	if err := ls.backend.DeliverOnce(t.Context(), "bob", id[:], msg); err != nil {
		t.Fatal(err)
	}
	s, _ = crash(t, s, cfg)
	stop := run(t, s)
	waitFor(t, "the outbox to drain", func() bool { return metricValue(s.m.outbox) == 0 })
	stop()
	if got := ls.heldMail(t, "bob"); len(got) != 1 || !bytes.Equal(got[0], msg) {
		t.Fatalf("%d mails held, want exactly one, intact", len(got))
	}
	if err := ls.backend.DeliverOnce(t.Context(), "bob", id[:4], msg); err == nil {
		t.Fatal("a delivery key of 4 bytes was accepted")
	}
}

// The quota of a link user counts the mail waiting for the client: a message that cannot fit
// is refused before any fragment is stored, and one that stops fitting before delivery bounces
// (the sender's next ack says over quota), as with the IMAP store.
func TestLinkOverQuota(t *testing.T) {
	ls := newLinkSetup(t)
	s := newService(t, testConfig(t, filepath.Join(t.TempDir(), "mailbox.db"), ls.backend))
	// 3 fragments' worth is over tiny's 1000 bytes.
	for i, f := range fragments(t, newID(t), testMessage(t, 3*testCapacity)) {
		if a := send(t, s, "tiny", f); a == nil || a.Status != client.AckOverQuota {
			t.Fatalf("fragment %d: ack %+v, want over quota", i, a)
		}
	}
	if n := count(t, s, bucketFrags); n != 0 {
		t.Fatalf("%d fragments stored for a user over quota", n)
	}
	// A message that fits is taken; then other mail fills the queue before its delivery.
	msg := testMessage(t, 500)
	frags := fragments(t, newID(t), msg)
	for _, f := range frags {
		sendStored(t, s, "tiny", f)
	}
	if err := ls.prov.EnqueueMail("tiny", [16]byte{1}, [][]byte{make([]byte, 600)}, DefaultExpiry); err != nil {
		t.Fatal(err)
	}
	stop := run(t, s)
	waitFor(t, "the outcome", func() bool { return metricValue(s.m.outbox) == 0 })
	stop()
	if n, _ := ls.prov.MailQueueLen("tiny"); n != 1 {
		t.Fatalf("tiny's mail queue holds %d items, want only the 600 bytes", n)
	}
	if a := send(t, s, "tiny", frags[0]); a == nil || a.Status != client.AckOverQuota {
		t.Fatalf("retransmission of the mail that did not fit: ack %+v, want over quota", a)
	}
	if got := metricValue(s.m.failures.WithLabelValues(reasonOverQuota)); got != 2 {
		t.Errorf("over quota failures %v, want 2", got)
	}
	if got := ChunkedSize(400, testChunkSize); got != 400+sealmail.Overhead+sealmail.HeaderSize {
		t.Fatalf("ChunkedSize(400) = %d", got)
	}
	if got := ChunkedSize(int64(sealmail.Capacity(testChunkSize)), testChunkSize); got != int64(sealmail.Capacity(testChunkSize))+sealmail.Overhead+2*sealmail.HeaderSize {
		t.Fatalf("ChunkedSize of one chunk's capacity = %d, want two chunks' headers", got)
	}
}

func TestNewLinkBackendRefusesBadConfig(t *testing.T) {
	ls := newLinkSetup(t)
	next := NewStoreBackend(ls.mail)
	for _, cfg := range []LinkConfig{
		{ChunkSize: testChunkSize, Next: next},
		{Store: ls.prov, ChunkSize: testChunkSize},
		{Store: ls.prov, ChunkSize: sealmail.HeaderSize, Next: next},
		{Store: ls.prov, ChunkSize: testChunkSize, Next: next, Expiry: -1},
	} {
		if _, err := NewLinkBackend(cfg); err == nil {
			t.Errorf("accepted %+v", cfg)
		}
	}
	if _, err := NewLinkBackend(LinkConfig{Store: ls.prov, ChunkSize: testChunkSize, Next: next}); err != nil {
		t.Fatal(err)
	}
	var _ OnceBackend = (*LinkBackend)(nil)
	var _ QuotaChecker = (*LinkBackend)(nil)
}
