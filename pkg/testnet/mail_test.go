package testnet

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/wire"
)

// fragmentPacket builds one mail fragment for the mailbox service of b, with a SURB-ACK back to
// the sender's queue at a.
func (c *loopClient) fragmentPacket(doc *pki.Document, a, b *pki.Node, rcpt string, f *client.Fragment) ([]byte, [sphinx.SURBIDSize]byte) {
	t := c.t
	e := doc.Epoch
	var id [sphinx.SURBIDSize]byte
	rand.Read(id[:])
	back := []sphinx.Hop{hopOf(t, &doc.Layer(1)[0], e), hopOf(t, &doc.Layer(2)[0], e), hopOf(t, &doc.Layer(3)[0], e), hopOf(t, a, e)}
	surb, rk, err := c.s.NewSURB(rand.Reader, back, sphinx.Recipient{Service: "queue", ID: c.user}, id)
	if err != nil {
		t.Fatal(err)
	}
	c.keys[id] = rk
	env, err := service.EncodeEnvelope(c.s.Geometry().PayloadSize, c.s.Geometry().SURBSize(), surb, f.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	var route []sphinx.Hop
	for _, n := range fullRoute(doc, a, b) {
		route = append(route, hopOf(t, n, e))
	}
	pkt, err := c.s.NewPacket(rand.Reader, route, sphinx.Recipient{Service: "mailbox", ID: rcpt}, env)
	if err != nil {
		t.Fatal(err)
	}
	return pkt, id
}

// acks retrieves until n ACKs came back and returns them.
func (c *loopClient) acks(n int, timeout time.Duration) []*client.Ack {
	t := c.t
	var out []*client.Ack
	deadline := time.Now().Add(timeout)
	for len(out) < n && time.Now().Before(deadline) {
		answers, err := c.conn.Retrieve(wire.CmdRetrieve, c.seq, 1, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		f := answers[0]
		if f.Cmd != wire.CmdAck {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		c.seq = f.Seq + 1
		reply, err := c.s.ReadReply(c.keys[f.SURBID], f.Body)
		if err != nil {
			t.Fatal(err)
		}
		_, data, err := service.DecodeEnvelope(reply, c.s.Geometry().SURBSize())
		if err != nil {
			t.Fatal(err)
		}
		ack, err := client.ParseAck(data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ack)
	}
	if len(out) < n {
		t.Fatalf("%d of %d ACKs came back", len(out), n)
	}
	return out
}

const imapReadScript = `
import imaplib, ssl, sys, json
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
m = imaplib.IMAP4(host, port)
m.starttls(ssl_context=ctx)
m.login(user, pw)
m.select("INBOX")
typ, data = m.search(None, "ALL")
out = []
for num in data[0].split():
    typ, msg = m.fetch(num, "(RFC822)")
    out.append(msg[0][1].decode("latin-1"))
m.logout()
print(json.dumps(out))
`

// imapMessages reads every message of a user's INBOX with Python's imaplib over STARTTLS.
func imapMessages(t *testing.T, provider *Node, user, password string) []string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 missing: apt-get install -y python3")
	}
	script := filepath.Join(t.TempDir(), "read.py")
	os.WriteFile(script, []byte(imapReadScript), 0o644)
	host, port, _ := strings.Cut(provider.IMAP, ":")
	out, err := exec.Command("python3", script, host, port, user, password).CombinedOutput()
	if err != nil {
		t.Fatalf("imaplib: %v\n%s", err, out)
	}
	var msgs []string
	if err := json.Unmarshal(out, &msgs); err != nil {
		t.Fatalf("imaplib output: %v\n%s", err, out)
	}
	return msgs
}

// A mail of several fragments from alice at alpha to bob at beta through provider, three mixes
// and provider into bob's built-in mailbox, each fragment acknowledged through its SURB, one
// fragment retransmitted; bob reads it exactly once, intact, with Python's imaplib.
func TestMailThroughMixnetToIMAP(t *testing.T) {
	n := startNet(t, 5*time.Second)
	alpha, beta := n.Node("provider-alpha"), n.Node("provider-beta")
	aliceKey := addUser(t, n, alpha, "alice")
	addUser(t, n, beta, "bob")
	if err := n.SetPassword(beta, "bob", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	pc, _ := n.PKIClient()
	doc, err := pc.Current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	s, _ := sphinx.New(n.Parameters().Geometry)
	a, b := provider(t, doc, "alpha.localhost"), provider(t, doc, "beta.localhost")
	conn := dialAs(t, n, aliceKey, a)
	defer conn.Close()
	c := &loopClient{t: t, s: s, user: "alice", conn: conn, keys: map[[sphinx.SURBIDSize]byte][]byte{}}

	body := strings.Repeat("Metadata stays with the mixnet. ", 1500) // about 48 KB: 4 fragments
	msg := fmt.Sprintf("From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: through the mixnet\r\nMessage-ID: <%d@alpha.localhost>\r\n\r\n%s\r\n", time.Now().UnixNano(), body)
	var id client.MessageID
	rand.Read(id[:])
	frags, err := client.Split(id, []byte(msg), client.FragmentCapacity(n.Parameters().Geometry))
	if err != nil {
		t.Fatal(err)
	}
	if len(frags) < 3 {
		t.Fatalf("test mail is only %d fragments", len(frags))
	}
	for i, f := range frags {
		pkt, _ := c.fragmentPacket(doc, a, b, "bob", f)
		send(t, conn, pkt)
		if i == 1 { // a retransmission: the same fragment again on a fresh route and SURB
			pkt, _ := c.fragmentPacket(doc, a, b, "bob", f)
			send(t, conn, pkt)
		}
	}
	acks := c.acks(len(frags)+1, 30*time.Second)
	seen := map[uint16]bool{}
	for _, ack := range acks {
		if ack.ID != id || ack.Status != client.AckStored {
			t.Fatalf("ack %+v", ack)
		}
		seen[ack.Index] = true
	}
	if len(seen) != len(frags) {
		t.Fatalf("acks for %d distinct fragments, want %d", len(seen), len(frags))
	}

	var got []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got = imapMessages(t, beta, "bob", "correct horse battery"); len(got) > 0 {
			break
		}
	}
	if len(got) != 1 {
		t.Fatalf("bob's INBOX holds %d messages, want exactly 1", len(got))
	}
	if got[0] != msg {
		t.Fatalf("message changed on the way: got %d bytes, want %d", len(got[0]), len(msg))
	}

	// A fragment for a user who does not exist is refused through the SURB.
	var id2 client.MessageID
	rand.Read(id2[:])
	f2, _ := client.Split(id2, []byte("To: nobody\r\n\r\nx\r\n"), client.FragmentCapacity(n.Parameters().Geometry))
	pkt, _ := c.fragmentPacket(doc, a, b, "nobody", f2[0])
	send(t, conn, pkt)
	if ack := c.acks(1, 20*time.Second)[0]; ack.ID != id2 || ack.Status != client.AckUnknownRecipient {
		t.Fatalf("ack for an unknown recipient: %+v", ack)
	}
}

// SIGKILL of the exit provider after it acknowledged fragments: the rest of the message
// arrives after the restart, a fragment retransmitted because its ACK "was lost" is not stored
// twice, and the message lands exactly once, intact.
func TestMailSurvivesExitProviderKill(t *testing.T) {
	n := startNet(t, 5*time.Second)
	alpha, beta := n.Node("provider-alpha"), n.Node("provider-beta")
	aliceKey := addUser(t, n, alpha, "alice")
	addUser(t, n, beta, "bob")
	if err := n.SetPassword(beta, "bob", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	pc, _ := n.PKIClient()
	s, _ := sphinx.New(n.Parameters().Geometry)
	doc, err := pc.Current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	a, b := provider(t, doc, "alpha.localhost"), provider(t, doc, "beta.localhost")
	conn := dialAs(t, n, aliceKey, a)
	defer conn.Close()
	c := &loopClient{t: t, s: s, user: "alice", conn: conn, keys: map[[sphinx.SURBIDSize]byte][]byte{}}

	msg := "From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: kill -9\r\n\r\n" + strings.Repeat("survives. ", 4000) + "\r\n"
	var id client.MessageID
	rand.Read(id[:])
	frags, _ := client.Split(id, []byte(msg), client.FragmentCapacity(n.Parameters().Geometry))
	if len(frags) != 3 {
		t.Fatalf("test mail is %d fragments, want 3", len(frags))
	}
	for _, f := range frags[:2] {
		pkt, _ := c.fragmentPacket(doc, a, b, "bob", f)
		send(t, conn, pkt)
	}
	c.acks(2, 30*time.Second)

	if err := n.Kill(beta); err != nil {
		t.Fatal(err)
	}
	if err := n.Restart(beta); err != nil {
		t.Fatal(err)
	}
	doc, err = pc.Current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	a, b = provider(t, doc, "alpha.localhost"), provider(t, doc, "beta.localhost")
	for _, f := range []*client.Fragment{frags[2], frags[0]} {
		pkt, _ := c.fragmentPacket(doc, a, b, "bob", f)
		send(t, conn, pkt)
	}
	for _, ack := range c.acks(2, 45*time.Second) {
		if ack.ID != id || ack.Status != client.AckStored {
			t.Fatalf("ack after restart: %+v", ack)
		}
	}
	var got []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if got = imapMessages(t, beta, "bob", "correct horse battery"); len(got) > 0 {
			break
		}
	}
	time.Sleep(time.Second) // a duplicate delivery would show up by now
	if got = imapMessages(t, beta, "bob", "correct horse battery"); len(got) != 1 || got[0] != msg {
		t.Fatalf("bob's INBOX holds %d messages (want exactly 1, intact)", len(got))
	}
}
