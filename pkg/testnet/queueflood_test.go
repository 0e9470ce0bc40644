package testnet

import (
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/client"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
)

// TestQueueFloodDoesNotDelayAcks is the attack of issue 13 finding 6 through the real
// binaries: mallory, a user of alpha, sends 600 packets through the mixnet to the `queue`
// service of bob at beta, each a whole one-fragment message of a full fragment, which anyone can
// do without an account at beta. Then bob's client engine, configured as mailproxy configures it
// (it consumes no queue messages), starts and sends a three-fragment mail to alice. Every
// fragment must be acknowledged at its first transmission (the ACKs do not wait behind the
// junk), and bob's client must keep none of the junk.
func TestQueueFloodDoesNotDelayAcks(t *testing.T) {
	n := startNet(t, 5*time.Second)
	alpha, beta := n.Node("provider-alpha"), n.Node("provider-beta")
	addUser(t, n, alpha, "alice")
	malloryKey := addUser(t, n, alpha, "mallory")
	bobKey := addUser(t, n, beta, "bob")
	pc, err := n.PKIClient()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := pc.Current(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	g := n.Parameters().Geometry
	s, _ := sphinx.New(g)
	a, b := provider(t, doc, "alpha.localhost"), provider(t, doc, "beta.localhost")
	conn := dialAs(t, n, malloryKey, a)
	defer conn.Close()

	// The flood, paced below the provider's per-user rate (50/s) so that alpha forwards all of it.
	const flood = 600
	capacity := client.FragmentCapacity(g)
	for i := range flood {
		if i%100 == 0 {
			// A long flood outlives the epoch the packets were built for.
			if doc, err = pc.Current(t.Context()); err != nil {
				t.Fatal(err)
			}
			a, b = provider(t, doc, "alpha.localhost"), provider(t, doc, "beta.localhost")
		}
		var id client.MessageID
		rand.Read(id[:])
		junk := make([]byte, capacity)
		rand.Read(junk)
		f := client.Fragment{ID: id, Count: 1, TotalLength: uint32(capacity), Data: junk}
		env, err := service.EncodeEnvelope(g.PayloadSize, g.SURBSize(), nil, f.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		var route []sphinx.Hop
		for _, nd := range fullRoute(doc, a, b) {
			route = append(route, hopOf(t, nd, doc.Epoch))
		}
		pkt, err := s.NewPacket(rand.Reader, route, sphinx.Recipient{Service: "queue", ID: "bob"}, env)
		if err != nil {
			t.Fatal(err)
		}
		send(t, conn, pkt)
		time.Sleep(25 * time.Millisecond)
	}
	// Let the last packets through the mixes (a mean delay of 20 ms per hop) before bob starts.
	time.Sleep(3 * time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pdone := make(chan struct{})
	go func() { defer close(pdone); pc.Run(ctx) }()
	defer func() { cancel(); <-pdone }()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	bob, err := client.New(client.Config{DataDir: dir, User: "bob", Domain: "beta.localhost", LinkKey: bobKey, PKI: pc, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	rdone := make(chan error, 1)
	go func() { rdone <- bob.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-rdone; err != nil {
			t.Errorf("bob's engine: %v", err)
		}
		bob.Close()
	}()

	msg := "From: bob@beta.localhost\r\nTo: alice@alpha.localhost\r\nSubject: after the flood\r\n\r\n" + strings.Repeat("ACKs first. ", 3000) + "\r\n"
	id, err := bob.Send(ctx, client.Destination{Domain: "alpha.localhost", Recipient: "alice"}, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	var st client.Status
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		if st, err = bob.Status(id); err != nil {
			t.Fatal(err)
		}
		if st.State.Finished() || time.Now().After(deadline) {
			break
		}
	}
	ls := bob.LinkState()
	t.Logf("bob's mail: %s, %d fragments, %d transmissions; bob's engine: %d retrieves, %d queue messages, %d ACKs", st.State, st.Fragments, st.Transmissions, ls.Retrieves, ls.Messages, ls.Acks)
	if st.State != client.StateDelivered {
		t.Fatalf("bob's mail is %s (%s), want delivered", st.State, st.Reason)
	}
	if st.Fragments < 3 || st.Transmissions != st.Fragments {
		t.Errorf("bob's mail of %d fragments took %d transmissions: its ACKs waited behind the flood", st.Fragments, st.Transmissions)
	}
	if r, err := bob.Received(); err != nil || len(r) != 0 {
		t.Errorf("bob's client keeps %d junk messages (%v); it consumes none", len(r), err)
	}
	fi, err := os.Stat(filepath.Join(dir, "client.db"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 4<<20 {
		t.Errorf("bob's client.db is %d bytes after the flood", fi.Size())
	}
}
