package testnet

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/panoramix-mixnet/panoramix/pkg/pki"
)

// Issue 13, finding 1: a node the directory approved as a mix runs as a provider of
// beta.localhost, with an identity that sorts below the real provider's (a client that picks the
// first provider of a domain in identity order picks it). It creates its own bob. alice sends to
// bob@beta.localhost through her mailproxy: the mail reaches the real bob, never mallory, and
// the directory refuses mallory's descriptor and says why.
func TestDomainTakeoverByApprovedMix(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binaries")
	}
	p := pki.DefaultParameters()
	p.EpochLength = 5 * time.Second
	p.MeanDelay = 20 * time.Millisecond
	p.MaxDelay = 200 * time.Millisecond
	p.LambdaP, p.LambdaL, p.LambdaD, p.LambdaM = 10, 2, 2, 2
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	n := launch(t, ctx, Options{Parameters: &p, LogLevel: "debug", Extra: []ExtraNode{{
		Name: "mallory", Role: "provider", Domain: "beta.localhost",
		ApprovedRole: "mix", IdentityBelow: "provider-beta",
	}}})
	beta, mallory := n.Node("provider-beta"), n.Node("mallory")
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(mallory.Log()); err == nil {
				t.Logf("--- mallory log (tail) ---\n%s", tail(b, 3000))
			}
		}
	})
	addUser(t, n, beta, "bob")
	if err := n.SetPassword(beta, "bob", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	addUser(t, n, mallory, "bob")
	if err := n.SetPassword(mallory, "bob", "mallory's catch"); err != nil {
		t.Fatal(err)
	}

	// Wait until the attack has had its chance: mallory is in the consensus, or the directory
	// has refused its descriptor.
	pc, err := n.PKIClient()
	if err != nil {
		t.Fatal(err)
	}
	refusal := func() bool {
		b, _ := os.ReadFile(n.dir.Log)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "descriptor refused") && strings.Contains(l, mallory.Identity.String()) {
				return true
			}
		}
		return false
	}
	var doc *pki.Document
	for {
		if doc, err = pc.Current(ctx); err != nil {
			t.Fatal(err)
		}
		if _, in := doc.Node(mallory.Identity); in || refusal() {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("mallory is neither in the consensus nor refused by the directory")
		case <-time.After(200 * time.Millisecond):
		}
	}
	if _, in := doc.Node(mallory.Identity); in {
		t.Errorf("mallory, approved as a mix, is in the consensus as a %s of %v", nodeRole(doc, mallory), nodeDomains(doc, mallory))
	}

	alice, err := n.StartMailproxy(ctx, "alice@alpha.localhost", "alice password",
		MailproxyOptions{AckSlack: 2 * time.Second, RetrieveInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	msg := "From: alice@alpha.localhost\r\nTo: bob@beta.localhost\r\nSubject: for bob only\r\nMessage-ID: <takeover@alpha.localhost>\r\n\r\nNot for mallory.\r\n"
	c, err := smtp.Dial(alice.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("alice@alpha.localhost", []string{"bob@beta.localhost"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	c.Close()

	var real, stolen []string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		real = imapMessages(t, beta, "bob", "correct horse battery")
		stolen = imapMessages(t, mallory, "bob", "mallory's catch")
		if len(real)+len(stolen) > 0 {
			break
		}
	}
	time.Sleep(2 * time.Second) // a copy to the other one would show up by now
	real = imapMessages(t, beta, "bob", "correct horse battery")
	stolen = imapMessages(t, mallory, "bob", "mallory's catch")
	if len(stolen) != 0 {
		t.Errorf("mallory's bob holds %d messages: the mail for bob@beta.localhost went to the node approved as a mix", len(stolen))
	}
	if len(real) != 1 || !strings.HasSuffix(real[0], "\r\n\r\nNot for mallory.\r\n") {
		t.Errorf("the real bob's INBOX holds %d messages, want exactly the one alice sent", len(real))
	}
	if !refusal() {
		t.Errorf("the directory log has no \"descriptor refused\" line for mallory (%s)", mallory.Identity)
	}
}

func nodeRole(d *pki.Document, nd *Node) string {
	if x, ok := d.Node(nd.Identity); ok {
		return x.Role.String()
	}
	return "?"
}

func nodeDomains(d *pki.Document, nd *Node) []string {
	if x, ok := d.Node(nd.Identity); ok {
		return x.Domains
	}
	return nil
}
