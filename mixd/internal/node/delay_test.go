package node

import (
	"context"
	"crypto/rand"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/mixd/internal/provider"
	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/wire"
)

// A sender picks every hop's delay. Mallory asks her provider to hold a packet for 2^32-1 ms
// (49 days), far above the consensus's max_delay; kept in the scheduler's heap, a few hundred
// thousand such packets fill it and every honest packet after them is dropped. The provider
// must drop the packet at once and count it, and bob's loops must still come back.
func TestOverlongDelayIsDropped(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a network")
	}
	tn := newTestNet(t)
	dir := t.TempDir()
	for _, name := range []string{"mix1", "mix2", "mix3"} {
		tn.start(name, "mix", dir+"/"+name)
	}
	provA := tn.start("alpha", "provider", dir+"/alpha")
	tn.start("beta", "provider", dir+"/beta")
	users := map[string]*keys.LinkPrivateKey{}
	for _, u := range []string{"mallory", "bob"} {
		users[u], _ = keys.GenerateLinkKey(rand.Reader)
		if err := provA.Store().AddUser(provider.User{Name: u, LinkKey: users[u].Public()}); err != nil {
			t.Fatal(err)
		}
	}
	pc, _ := pki.NewClient(pki.ClientConfig{URLs: []string{tn.dir.URL}, Authorities: []keys.IdentityPublicKey{tn.auth}, Threshold: 1, EpochLength: tn.params.EpochLength})
	doc := tn.waitDocument(pc, 5)
	// Start at an epoch's beginning, so that the packets built with its keys are all unwrapped
	// before the keys expire (3 s epochs here).
	time.Sleep(time.Until(pc.Clock().End(doc.Epoch)) + 100*time.Millisecond)
	doc = tn.waitDocument(pc, 5)
	a, _ := doc.Node(provA.Identity())
	b, _ := doc.Node(tn.nodes["beta"].Identity())
	s, _ := sphinx.New(tn.geo)
	dial := func(k *keys.LinkPrivateKey) *wire.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := wire.Dial(ctx, wire.DialConfig{Geometry: tn.geo, Key: k, Remote: a.Link, Addr: a.Addresses[0], Transport: tn.mem})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	mc := dial(users["mallory"])
	mix := func(l uint8) *pki.Node { return &doc.Layer(l)[0] }
	const overlong = math.MaxUint32
	for _, delay := range []uint32{overlong, uint32(tn.params.MaxDelay/time.Millisecond) + 1} {
		first := hop(t, a, doc.Epoch)
		first.DelayMS = delay
		route := []sphinx.Hop{first, hop(t, mix(1), doc.Epoch), hop(t, mix(2), doc.Epoch), hop(t, mix(3), doc.Epoch), hop(t, b, doc.Epoch)}
		env, err := service.EncodeEnvelope(tn.geo.PayloadSize, tn.geo.SURBSize(), nil, []byte("hold me"))
		if err != nil {
			t.Fatal(err)
		}
		pkt, err := s.NewPacket(rand.Reader, route, sphinx.Recipient{Service: "loop", ID: "echo"}, env)
		if err != nil {
			t.Fatal(err)
		}
		if err := mc.WriteFrame(&wire.Frame{Cmd: wire.CmdSendPacket, Body: pkt}); err != nil {
			t.Fatal(err)
		}
	}

	// Honest traffic after the attack: bob's loops use delays within the maximum.
	c := &testClient{t: t, s: s, user: "bob", conn: dial(users["bob"]), pkic: pc, keys: map[[sphinx.SURBIDSize]byte][]byte{}}
	ids := map[[sphinx.SURBIDSize]byte]string{}
	for i := range 10 {
		data := fmt.Sprintf("bob %d", i)
		ids[c.sendLoop(doc, a, b, []byte(data))] = data
	}
	c.collect(ids, 15*time.Second)

	// Bob's packets, sent after mallory's on the same node, are all through: mallory's were
	// unwrapped before them, so they are counted by now or held.
	if held := provA.sched.Len(); held != 0 {
		t.Errorf("the provider's scheduler holds %d packets after the honest traffic is through; want 0 (the over-long delays were kept)", held)
	}
	if got := metricValue(t, provA, "mixd_packets_dropped_total", map[string]string{"reason": "delay_too_long"}); got != 2 {
		t.Errorf("mixd_packets_dropped_total{reason=delay_too_long} = %v, want 2", got)
	}
}
