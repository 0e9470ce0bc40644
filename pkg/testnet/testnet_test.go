package testnet

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/panoramix-mixnet/panoramix/pkg/keys"
	"github.com/panoramix-mixnet/panoramix/pkg/pki"
	"github.com/panoramix-mixnet/panoramix/pkg/service"
	"github.com/panoramix-mixnet/panoramix/pkg/sphinx"
	"github.com/panoramix-mixnet/panoramix/pkg/wire"
)

var binDir string

func TestMain(m *testing.M) {
	code := func() int {
		flag.Parse()
		if testing.Short() {
			return m.Run()
		}
		repo, err := RepoRoot()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		dir, err := os.MkdirTemp("", "panoramix-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		// mixctl too: the vote tests run it, in parallel with each other; mailproxy for the
		// domain takeover test.
		if err := Build(context.Background(), repo, dir, append(slices.Clone(Programs), "mixctl", "mailproxy")...); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

func startNet(t *testing.T, epoch time.Duration) *Net {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the real binaries")
	}
	p := pki.DefaultParameters()
	p.EpochLength = epoch
	p.MeanDelay = 20 * time.Millisecond
	p.MaxDelay = 200 * time.Millisecond
	p.LambdaM = 2
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return launch(t, ctx, Options{Parameters: &p, LogLevel: "debug"})
}

// launch starts a network from the binaries of TestMain (opts.Dir a fresh temporary directory),
// stops it when the test ends (with the tails of every log when the test failed), and waits
// under ctx until the consensus lists every node.
func launch(t testing.TB, ctx context.Context, opts Options) *Net {
	t.Helper()
	opts.Dir, opts.BinDir = t.TempDir(), binDir
	n, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			for _, nd := range n.Nodes {
				if b, err := os.ReadFile(nd.Log()); err == nil && len(b) > 0 {
					t.Logf("--- %s log (tail) ---\n%s", nd.Name, tail(b, 3000))
				}
			}
			if b, err := os.ReadFile(n.dir.Log); err == nil {
				t.Logf("--- directory log (tail) ---\n%s", tail(b, 3000))
			}
		}
	})
	if _, err := n.WaitConsensus(ctx); err != nil {
		t.Fatal(err)
	}
	return n
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func addUser(t *testing.T, n *Net, provider *Node, name string) *keys.LinkPrivateKey {
	t.Helper()
	k, err := n.AddUser(provider, name, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// loopClient sends loop packets with SURB-ACKs and reads the echoes, from the packet format
// alone (the client engine of pkg/client comes with issue 6).
type loopClient struct {
	t    *testing.T
	s    *sphinx.Sphinx
	user string
	conn *wire.Conn
	keys map[[sphinx.SURBIDSize]byte][]byte
	seq  uint32
}

func hopOf(t *testing.T, n *pki.Node, e pki.Epoch) sphinx.Hop {
	k, ok := n.SphinxKey(e)
	if !ok {
		t.Fatalf("node %s has no key for epoch %d", n.Identity, e)
	}
	return sphinx.Hop{ID: sphinx.NodeID(n.Identity), PublicKey: k, DelayMS: 10}
}

func provider(t *testing.T, doc *pki.Document, domain string) *pki.Node {
	p, ok := doc.Provider(domain)
	if !ok {
		t.Fatalf("no provider for %s", domain)
	}
	return p
}

// packet builds a packet along fwd to the loop service at its last hop, carrying a SURB back
// through one mix per layer to the user's provider a.
func (c *loopClient) packet(doc *pki.Document, fwd []*pki.Node, a *pki.Node, data string) ([]byte, [sphinx.SURBIDSize]byte) {
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
	env, err := service.EncodeEnvelope(c.s.Geometry().PayloadSize, c.s.Geometry().SURBSize(), surb, []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	var route []sphinx.Hop
	for _, n := range fwd {
		route = append(route, hopOf(t, n, e))
	}
	pkt, err := c.s.NewPacket(rand.Reader, route, sphinx.Recipient{Service: "loop", ID: "echo"}, env)
	if err != nil {
		t.Fatal(err)
	}
	return pkt, id
}

func fullRoute(doc *pki.Document, a, b *pki.Node) []*pki.Node {
	return []*pki.Node{a, &doc.Layer(1)[0], &doc.Layer(2)[0], &doc.Layer(3)[0], b}
}

func send(t *testing.T, conn *wire.Conn, pkt []byte) {
	if err := conn.WriteFrame(&wire.Frame{Cmd: wire.CmdSendPacket, Body: pkt}); err != nil {
		t.Fatal(err)
	}
}

// collect retrieves replies until every id in want has come back or the timeout passes; it
// returns the ids still missing and fails on any reply it did not expect.
func (c *loopClient) collect(want map[[sphinx.SURBIDSize]byte]string, timeout time.Duration) int {
	t := c.t
	deadline := time.Now().Add(timeout)
	for len(want) > 0 && time.Now().Before(deadline) {
		if err := c.conn.WriteFrame(&wire.Frame{Cmd: wire.CmdRetrieve, Seq: c.seq, QueueHint: 1}); err != nil {
			t.Fatal(err)
		}
		f, err := c.conn.ReadFrameTimeout(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		switch f.Cmd {
		case wire.CmdEmpty:
			time.Sleep(50 * time.Millisecond)
		case wire.CmdAck:
			c.seq = f.Seq + 1
			data, ok := want[f.SURBID]
			if !ok {
				t.Fatalf("a reply came back for a SURB that was not expected (a replay got through?)")
			}
			reply, err := c.s.ReadReply(c.keys[f.SURBID], f.Body)
			if err != nil {
				t.Fatal(err)
			}
			_, got, err := service.DecodeEnvelope(reply, c.s.Geometry().SURBSize())
			if err != nil || string(got) != data {
				t.Fatalf("echo %q, want %q (%v)", got, data, err)
			}
			delete(want, f.SURBID)
		default:
			t.Fatalf("unexpected answer %v", f.Cmd)
		}
	}
	return len(want)
}

func metric(t *testing.T, nd *Node, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + nd.Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func dialAs(t *testing.T, n *Net, key *keys.LinkPrivateKey, to *pki.Node) *wire.Conn {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := wire.Dial(ctx, wire.DialConfig{Geometry: n.Parameters().Geometry, Key: key, Remote: to.Link, Addr: to.Addresses[0]})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The acceptance test of issue 4: packets from a client through provider, three mixes and
// provider to the loop service, every reply back through its SURB, across an epoch change; then
// a mix killed with SIGKILL and restarted refuses a replay of a packet it already processed.
func TestLoopThroughRealBinaries(t *testing.T) {
	n := startNet(t, 5*time.Second)
	alpha := n.Node("provider-alpha")
	aliceKey := addUser(t, n, alpha, "alice")
	pc, _ := n.PKIClient()
	s, _ := sphinx.New(n.Parameters().Geometry)

	doc, err := pc.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a := provider(t, doc, "alpha.localhost")
	conn := dialAs(t, n, aliceKey, a)
	defer conn.Close()
	c := &loopClient{t: t, s: s, user: "alice", conn: conn, keys: map[[sphinx.SURBIDSize]byte][]byte{}}

	for round := range 2 {
		doc, err := pc.Current(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		a, b := provider(t, doc, "alpha.localhost"), provider(t, doc, "beta.localhost")
		want := map[[sphinx.SURBIDSize]byte]string{}
		for i := range 20 {
			data := fmt.Sprintf("epoch %d round %d ping %d", doc.Epoch, round, i)
			pkt, id := c.packet(doc, fullRoute(doc, a, b), a, data)
			send(t, conn, pkt)
			want[id] = data
		}
		if missing := c.collect(want, 20*time.Second); missing > 0 {
			t.Fatalf("round %d: %d of 20 replies missing", round, missing)
		}
		if round == 0 {
			time.Sleep(time.Until(pc.Clock().End(doc.Epoch)) + 200*time.Millisecond)
		}
	}

	// Replay at a mix across SIGKILL: talk to the layer-1 mix as provider alpha does (with its
	// link key from its data directory), so the same packet reaches the mix twice.
	doc, err = pc.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	a, b := provider(t, doc, "alpha.localhost"), provider(t, doc, "beta.localhost")
	l1 := &doc.Layer(1)[0]
	var mix *Node
	for _, nd := range n.Nodes {
		if nd.Identity == l1.Identity {
			mix = nd
		}
	}
	alphaLink, err := keys.LoadLinkKey(filepath.Join(alpha.DataDir, "link.key"))
	if err != nil {
		t.Fatal(err)
	}
	route := fullRoute(doc, a, b)[1:]
	pkt, id := c.packet(doc, route, a, "before the kill")
	mconn := dialAs(t, n, alphaLink, l1)
	send(t, mconn, bytes.Clone(pkt))
	if missing := c.collect(map[[sphinx.SURBIDSize]byte]string{id: "before the kill"}, 10*time.Second); missing > 0 {
		t.Fatal("packet sent straight to the mix did not come back")
	}
	mconn.Close()
	if err := n.Kill(mix); err != nil {
		t.Fatal(err)
	}
	if err := n.Restart(mix); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var mconn2 *wire.Conn
	for mconn2 == nil && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		mconn2, _ = wire.Dial(ctx, wire.DialConfig{Geometry: n.Parameters().Geometry, Key: alphaLink, Remote: l1.Link, Addr: l1.Addresses[0]})
		cancel()
		if mconn2 == nil {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if mconn2 == nil {
		t.Fatal("restarted mix does not accept links")
	}
	defer mconn2.Close()
	send(t, mconn2, pkt)
	waitMetric(t, mix, "mixd_replay_hits_total", 1, 10*time.Second)
	// No reply may come back for the replayed packet: collect fails on an unexpected reply.
	c.collect(map[[sphinx.SURBIDSize]byte]string{{0xff}: "never"}, 2*time.Second)

	// The restarted mix still carries fresh traffic.
	pkt, id = c.packet(doc, fullRoute(doc, a, b), a, "after the restart")
	send(t, conn, pkt)
	if missing := c.collect(map[[sphinx.SURBIDSize]byte]string{id: "after the restart"}, 15*time.Second); missing > 0 {
		t.Fatal("no reply through the restarted mix")
	}
}

func waitMetric(t *testing.T, nd *Node, name string, want float64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if metric(t, nd, name) >= want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s on %s stayed below %v", name, nd.Name, want)
}
